"""Disclosure preset and threshold are validated when the design is read, before anything runs (issue 13).

On the code before issue 13, ``disclosure_threshold: 1`` silently turned disclosure control off and
``0`` crashed the run at its last step (the audit), after every notebook had run.
"""
from __future__ import annotations

import shutil
import warnings

import pytest

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from rp2pr_eval.pipeline.config import load_run_config
from rp2pr_eval.presentation.disclosure import DisclosurePolicy, policy_for_design
from tests.conftest import ROOT

pytestmark = pytest.mark.fixture


def _design_file(tmp_path, text: str):
    path = tmp_path / "design.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("disclosure_threshold: 1\n", r"disclosure_threshold must be an integer >= 2 .*1 would turn disclosure "
                                      r"control off\), got 1$"),
        ("disclosure_threshold: 0\n", r"disclosure_threshold must be an integer >= 2 .*got 0$"),
        ("disclosure_threshold: -3\n", r"disclosure_threshold must be an integer >= 2 .*got -3$"),
        ("disclosure_threshold: 2.5\n", r"key 'disclosure_threshold' must be int, got float 2.5"),
        ("disclosure_threshold: '5'\n", r"key 'disclosure_threshold' must be int, got str '5'"),
        ("disclosure_threshold: true\n", r"key 'disclosure_threshold' must be int, got bool True"),
        ("disclosure: hes_legacy\ndisclosure_threshold: 5\n",
         r"key 'disclosure_threshold' = 5 contradicts disclosure='hes_legacy', which fixes k = 6"),
        ("disclosure: nhsd_2018\ndisclosure_threshold: 10\n",
         r"key 'disclosure_threshold' = 10 contradicts disclosure='nhsd_2018', which fixes k = 8"),
        ("disclosure: Threshold\n", r"disclosure='Threshold' is not valid; expected one of"),
    ],
)
def test_bad_disclosure_settings_are_one_line_errors_naming_file_and_key(tmp_path, text, pattern):
    path = _design_file(tmp_path, text)
    with pytest.raises(rp.ParameterError, match=pattern) as info:
        rp.StudyDesign.from_yaml(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "disclosure" in message


def test_a_threshold_below_the_default_warns_naming_the_file(tmp_path):
    path = _design_file(tmp_path, "disclosure_threshold: 3\n")
    with pytest.warns(UserWarning, match=r"design.yaml: disclosure_threshold=3 is below the 'threshold' preset's "
                                         r"default 5: counts 3-4 will be shown"):
        design = rp.StudyDesign.from_yaml(path)
    assert policy_for_design(design) == DisclosurePolicy.from_preset(threshold=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the default and larger thresholds do not warn
        rp.StudyDesign.from_yaml(_design_file(tmp_path, "disclosure_threshold: 5\n"))
        rp.StudyDesign.from_yaml(_design_file(tmp_path, "disclosure_threshold: 11\n"))


def test_fixed_presets_take_their_own_threshold():
    assert rp.StudyDesign(disclosure="hes_legacy").disclosure_threshold == 6
    assert rp.StudyDesign(disclosure="nhsd_2018").disclosure_threshold == 8
    assert rp.StudyDesign(disclosure="nhsd_2018", disclosure_threshold=8).disclosure_threshold == 8
    design = rp.StudyDesign(disclosure="hes_legacy")
    assert rp.StudyDesign.from_dict(design.to_dict()) == design   # round trip through a manifest
    with pytest.raises(rp.ParameterError, match="contradicts disclosure='hes_legacy'"):
        rp.StudyDesign(disclosure="hes_legacy", disclosure_threshold=7)
    with pytest.raises(rp.ParameterError, match="integer >= 2"):
        rp.StudyDesign(disclosure_threshold=1)


def test_the_run_stops_before_anything_runs(tmp_path, capsys):
    params = tmp_path / "params"
    shutil.copytree(ROOT / "parameters", params)
    run_yaml = (params / "run.yaml").read_text().replace("data: ../data/", f"data: {ROOT}/data/")
    (params / "run.yaml").write_text(run_yaml + f"out: {tmp_path / 'out'}\n")
    for value in ("1", "0"):
        text = (ROOT / "parameters" / "design.yaml").read_text().replace("disclosure_threshold: 5",
                                                                         f"disclosure_threshold: {value}")
        (params / "design.yaml").write_text(text)
        with pytest.raises(rp.ParameterError, match=f"design.yaml: disclosure_threshold must be an integer >= 2"):
            load_run_config(params)
        assert main(["run", "--params", str(params), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "disclosure_threshold must be an integer >= 2" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()
