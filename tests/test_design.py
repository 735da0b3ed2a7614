"""StudyDesign defaults and YAML errors (fixture tests)."""
from __future__ import annotations

import pytest

import rp2pr_eval as rp
from tests.conftest import ROOT

pytestmark = pytest.mark.fixture


def test_yaml_defaults_equal_the_contract():
    design = rp.StudyDesign.from_yaml(ROOT / "parameters" / "design.yaml")
    assert design == rp.StudyDesign()
    assert design.pre_years == (2008, 2009) and design.during_years == (2010, 2011) and design.post_years == (2012, 2013)
    assert design.cluster == "pair_id"
    assert design.period_of(2009) == "pre" and design.period_of(2010) == "during" and design.period_of(2013) == "post"
    assert design.period_of(2007) is None


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("pre_yeers: [2008]\n", r"unknown key\(s\) 'pre_yeers'"),
        ("seed: 'abc'\n", r"key 'seed' must be int"),
        ("pre_years: [2008, 'x']\n", r"pre_years must be a list of integer years"),
        ("pre_years: [2012]\npost_years: [2008]\nduring_years: []\n", r"pre year must come before every post year"),
        ("disclosure: secret\n", r"disclosure='secret' is not valid"),
        ("pairing_indicators: active_treatment\n", r"'pairing_indicators' must be a list"),
        ("pre_years: [2008\n", r"not valid YAML"),
        ("- 1\n- 2\n", r"expected a mapping"),
    ],
)
def test_yaml_errors_name_file_and_key(tmp_path, text, pattern):
    path = tmp_path / "design.yaml"
    path.write_text(text)
    with pytest.raises(rp.ParameterError, match=pattern) as info:
        rp.StudyDesign.from_yaml(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(rp.ParameterError, match="design file not found"):
        rp.StudyDesign.from_yaml(tmp_path / "nope.yaml")


def test_overlapping_periods_refused():
    with pytest.raises(rp.ParameterError, match="more than one period"):
        rp.StudyDesign(pre_years=(2008, 2009), during_years=(2009,), post_years=(2012,))


def test_to_dict_is_json_native():
    d = rp.StudyDesign().to_dict()
    assert d["pre_years"] == [2008, 2009] and isinstance(d["pairing_indicators"], list)
    assert rp.StudyDesign.from_dict(d) == rp.StudyDesign()
