"""Run parameters: layered YAML validated into frozen objects before anything runs (fixture tests)."""
from __future__ import annotations

import shutil

import pytest
import yaml

import rp2pr_eval as rp
from rp2pr_eval.pipeline.config import AnalysisSettings, load_run_config
from tests.conftest import ROOT

pytestmark = pytest.mark.fixture


@pytest.fixture()
def params(tmp_path):
    dest = tmp_path / "parameters"
    shutil.copytree(ROOT / "parameters", dest)
    return dest


def _edit(path, **changes):
    values = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if "." in key:
            section, sub = key.split(".")
            values.setdefault(section, {})[sub] = value
        else:
            values[key] = value
    path.write_text(yaml.safe_dump(values))


def test_bundled_parameters_load_and_layer():
    config = load_run_config(ROOT / "parameters")
    assert config.outcomes == tuple(rp.OUTCOMES)
    assert config.primary_outcomes == rp.PRIMARY_OUTCOMES
    assert config.analysis.ri_draws == 10_000 and config.analysis.boot_draws == 9_999
    assert config.analysis.gee_cov_struct == "block_exchangeable"
    assert config.settings_for("sclc_chemo").covariates == ("age", "performance_status")   # per-outcome layer
    assert config.settings_for("sclc_chemo").ri_draws == 10_000                          # base underneath
    assert config.settings_for("survival_days").estimators == ("did_cox",)
    params = config.settings_for("active_treatment").to_parameters()
    assert isinstance(params["covariates"], list) and params == AnalysisSettings().to_parameters()


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"outcomes": ["active_treatment", "activ_treatment"]}, r"run.yaml: key 'outcomes' has unknown outcome 'activ_treatment'"),
        ({"jobz": 2}, r"run.yaml: unknown key 'jobz'"),
        ({"jobs": "two"}, r"run.yaml: key 'jobs' must be int"),
        ({"analysis.ri_drawz": 10}, r"run.yaml: unknown key analysis.'ri_drawz'"),
        ({"analysis.vcov": "HC3"}, r"run.yaml: key analysis.'vcov' = 'HC3' is not valid"),
        ({"analysis.gee_cov_struct": "ar1"}, r"run.yaml: key analysis.'gee_cov_struct' = 'ar1' is not valid"),
        ({"analysis.estimators": ["ancova", "ols"]}, r"estimators has unknown estimator 'ols'"),
        ({"analysis.ri_draws": 0}, r"analysis.ri_draws must be ≥ 1"),
        ({"notebooks": ["99_extra"]}, r"unknown notebook '99_extra'"),
        ({"power.n_sims": 1.5}, r"key power.'n_sims' must be int"),
        ({"analysis": [1, 2]}, r"key 'analysis' must be a mapping"),
    ],
)
def test_run_yaml_errors_name_file_and_key(params, change, pattern):
    _edit(params / "run.yaml", **change)
    with pytest.raises(rp.ParameterError, match=pattern):
        load_run_config(params)


def test_outcome_file_errors(params):
    (params / "outcomes" / "sclc_chemo.yaml").write_text("covariatez: [age]\n")
    with pytest.raises(rp.ParameterError, match=r"sclc_chemo.yaml: unknown key 'covariatez'"):
        load_run_config(params)
    (params / "outcomes" / "sclc_chemo.yaml").write_text("covariates: age\n")
    with pytest.raises(rp.ParameterError, match=r"sclc_chemo.yaml: key 'covariates' must be a list of strings"):
        load_run_config(params)
    (params / "outcomes" / "sclc_chemo.yaml").unlink()
    (params / "outcomes" / "sclc_chemoo.yaml").write_text("ri_draws: 10\n")
    with pytest.raises(rp.ParameterError, match=r"sclc_chemoo.yaml: file name 'sclc_chemoo' is not an outcome"):
        load_run_config(params)


def test_malformed_and_missing_files(params, tmp_path):
    (params / "run.yaml").write_text("outcomes: [a, b\n")
    with pytest.raises(rp.ParameterError, match=r"run.yaml: not valid YAML"):
        load_run_config(params)
    (params / "run.yaml").unlink()
    with pytest.raises(rp.ParameterError, match=r"run.yaml: parameter file not found"):
        load_run_config(params)
    with pytest.raises(rp.ParameterError, match="parameter folder not found"):
        load_run_config(tmp_path / "nowhere")


def test_design_errors_surface_through_the_run_config(params):
    (params / "design.yaml").write_text("pre_years: [2008]\nclusterr: pair_id\n")
    with pytest.raises(rp.ParameterError, match=r"design.yaml: unknown key\(s\) 'clusterr'"):
        load_run_config(params)


def test_command_line_overrides_are_validated(params):
    config = load_run_config(params)
    assert config.with_overrides(outcomes=("cns_seen",), jobs=1).outcomes == ("cns_seen",)
    with pytest.raises(rp.ParameterError, match="unknown outcome 'cns'"):
        config.with_overrides(outcomes=("cns",))
    with pytest.raises(rp.ParameterError, match="--jobs must be ≥ 1"):
        config.with_overrides(jobs=0)
