"""Importing a raw extract with a mapping file: exact round trips, every error a user can meet, the quality report."""
from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import rp2pr_eval as rp
from rp2pr_eval.cli import main
from tests.conftest import BUNDLED, ROOT

pytestmark = pytest.mark.fixture
RAW = ROOT / "data" / "synthetic" / "raw"
BUNDLED_EFFECTS = {"active_treatment": 0.3, "cns_seen": 0.4, "nsclc_resection": 0.25}
SMALL = {"n_pairs": 6, "n_treated_pairs": 2, "volume_median": 40, "volume_clip": (25, 60)}


@pytest.fixture(scope="module")
def small_trial() -> pd.DataFrame:
    return rp.simulate_nlca(seed=31, **SMALL)


@pytest.fixture(scope="module")
def small_raw(small_trial, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    rp.write_raw_extract(small_trial, folder, seed=4)
    return folder


@pytest.fixture()
def raw(small_raw, tmp_path) -> Path:
    """A fresh copy of the small raw extract that a test may break."""
    folder = tmp_path / "raw"
    shutil.copytree(small_raw, folder)
    return folder


def edit_mapping(folder: Path, change) -> Path:
    path = folder / "mapping.yaml"
    mapping = yaml.safe_load(path.read_text())
    change(mapping)
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def read_extract(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "nlca_extract.csv.gz", dtype=str, keep_default_na=False)


def write_extract(folder: Path, frame: pd.DataFrame, name: str = "nlca_extract.csv.gz") -> Path:
    path = folder / name
    text = frame.to_csv(index=False, lineterminator="\n")
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def edit_allocation(folder: Path, change) -> None:
    path = folder / "allocation.csv"
    frame = pd.read_csv(path, dtype=str)
    frame = change(frame)
    frame.to_csv(path, index=False)


# ------------------------------------------------------------------------------------------- round trips


def test_bundled_raw_extract_imports_to_the_generators_table_exactly():
    """data/synthetic/raw gives back simulate_nlca's frame (values, column order, dtypes) and the bundled CSV."""
    imported = rp.import_extract(RAW / "mapping.yaml")
    expected = rp.simulate_nlca(seed=20100401, effects=BUNDLED_EFFECTS)
    pd.testing.assert_frame_equal(imported, expected)
    text = gzip.decompress(BUNDLED.read_bytes()).decode()
    assert imported.to_csv(index=False, lineterminator="\n", float_format="%.6g") == text


@pytest.mark.parametrize("seed, kwargs, design", [
    (2, {"n_pairs": 20, "n_treated_pairs": 7}, None),
    (9, SMALL, rp.StudyDesign(pre_years=(2005, 2006, 2007), during_years=(2008,), post_years=(2009, 2010),
                              intervention_arm="peer review", control_arm="usual care", n_treated_pairs=2)),
    (13, {"n_pairs": 8, "n_treated_pairs": 3, "volume_median": 30, "volume_clip": (10, 40)},
     rp.StudyDesign(pre_years=(2011,), during_years=(), post_years=(2012, 2013), n_treated_pairs=3)),
])
def test_round_trip_for_other_seeds_and_designs(tmp_path, seed, kwargs, design):
    trial = rp.simulate_nlca(seed=seed, design=design, effects={"sclc_chemo": 0.5}, **kwargs)
    files = rp.write_raw_extract(trial, tmp_path, seed=seed, design=design)
    pd.testing.assert_frame_equal(rp.import_extract(files.mapping, design=design), trial)


def test_shipped_raw_files_regenerate_byte_for_byte(tmp_path):
    """data/synthetic/raw/README.md gives this command; the three files must match the committed ones."""
    code = main(["simulate", "--seed", "20100401", "--effect", "active_treatment=0.3", "--effect", "cns_seen=0.4",
                 "--effect", "nsclc_resection=0.25", "--raw", str(tmp_path)])
    assert code == 0
    for name in ("nlca_extract.csv.gz", "allocation.csv", "mapping.yaml"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == \
            hashlib.sha256((RAW / name).read_bytes()).hexdigest(), name


def test_raw_layout_is_audit_like(small_raw, small_trial):
    extract = read_extract(small_raw)
    assert all(c == c.upper() for c in extract.columns)
    assert not {"PAIR", "ARM", "pair_id", "arm", "AUDIT_YEAR"} & set(extract.columns)
    assert set(extract["SEX"]) == {"1", "2"} and "9" in set(extract["PERF_STATUS"])
    assert set(extract["STAGE"]) <= {"1A", "1B", "2A", "2B", "3A", "3B", "4", "X"}
    assert extract["TRUST_CODE"].str.fullmatch(r"R[0-9A-Z]{2}").all()
    seen = pd.to_datetime(extract["DATE_FIRST_SEEN"], format="%d/%m/%Y")
    assert (seen.dt.year.to_numpy() == small_trial["audit_year"].to_numpy()).all()
    referral = pd.to_datetime(extract["DATE_REFERRAL"], format="%d/%m/%Y")
    treated = pd.to_datetime(extract["DATE_FIRST_TREATMENT"], format="%d/%m/%Y")
    wait = (treated - referral).dt.days.to_numpy(dtype=float, na_value=np.nan)
    np.testing.assert_array_equal(wait, small_trial["days_referral_to_treatment"].to_numpy())
    assert ((referral <= seen) | referral.isna()).all()
    death = pd.to_datetime(extract["DATE_DEATH_OR_CENSOR"], format="%d/%m/%Y")
    censored = extract["VITAL_STATUS"] == "A"
    assert death[censored].between("2014-12-29", "2014-12-31").all()   # end of follow-up: the year after 2013
    allocation = pd.read_csv(small_raw / "allocation.csv", dtype=str)
    assert list(allocation.columns) == ["TRUST_CODE", "PAIR", "ARM"] and set(allocation["ARM"]) == {"I", "C"}


@pytest.mark.parametrize("suffix", [".dta", ".sas7bdat", ".xpt", ".xlsx", ".parquet"])
def test_other_source_formats_give_the_same_table(raw, small_trial, suffix):
    """Stata, SAS, Excel and Parquet extracts, with numeric codes and date-typed fields, import identically."""
    import pyreadstat

    frame = read_extract(raw)
    if suffix == ".xlsx":  # openpyxl is slow: two patients per trust and year (every trust keeps both periods)
        keep = small_trial.groupby(["trust_id", "audit_year"]).head(2).index
        frame, small_trial = frame.loc[keep].reset_index(drop=True), small_trial.loc[keep].reset_index(drop=True)
    typed = frame.copy()
    for column in ("AGE", "IMD_QUINTILE", "SEX", "PERF_STATUS"):       # numbers where a statistician's file has them
        typed[column] = pd.to_numeric(typed[column]).astype(float)
    for column in ("DATE_FIRST_SEEN", "DATE_REFERRAL", "DATE_FIRST_TREATMENT", "DATE_DEATH_OR_CENSOR"):
        typed[column] = pd.to_datetime(typed[column].replace("", None), format="%d/%m/%Y").astype("datetime64[ns]")
    for column in typed.columns:
        if typed[column].dtype == object or pd.api.types.is_string_dtype(typed[column].dtype):
            typed[column] = typed[column].astype(object)
    path = raw / f"extract{suffix}"
    if suffix == ".dta":
        pyreadstat.write_dta(typed, str(path))
    elif suffix == ".sas7bdat":
        pyreadstat.write_sas7bdat(typed, str(path))
    elif suffix == ".xpt":
        pyreadstat.write_xport(typed, str(path), file_format_version=8)
    elif suffix == ".xlsx":
        typed.to_excel(path, index=False)
    else:
        typed.to_parquet(path, index=False)
    edit_mapping(raw, lambda m: m.update(source=path.name))
    pd.testing.assert_frame_equal(rp.import_extract(raw / "mapping.yaml"), small_trial)


def test_financial_year_is_april_to_march_named_by_its_first_year(raw, small_trial):
    frame = read_extract(raw)
    # move every first-seen date to 1 April of its year, and 3 rows of the first trust-year to 31 March after it
    year = pd.to_datetime(frame["DATE_FIRST_SEEN"], format="%d/%m/%Y").dt.year
    frame["DATE_FIRST_SEEN"] = "01/04/" + year.astype(str)
    frame.loc[:2, "DATE_FIRST_SEEN"] = "31/03/" + (year[:3] + 1).astype(str)
    write_extract(raw, frame)
    edit_mapping(raw, lambda m: m.update(audit_year={"from_date": "DATE_FIRST_SEEN", "year": "financial"}))
    edit_mapping(raw, lambda m: m["outcomes"].pop("survival_days") and m["outcomes"].pop("died"))
    imported = rp.import_extract(raw / "mapping.yaml")
    np.testing.assert_array_equal(imported["audit_year"], small_trial["audit_year"])
    edit_mapping(raw, lambda m: m["audit_year"].update(year="calendar"))
    assert rp.import_extract(raw / "mapping.yaml")["audit_year"].iloc[0] == small_trial["audit_year"].iloc[0] + 1


def test_audit_year_from_a_year_field(raw, small_trial):
    frame = read_extract(raw)
    frame["YEAR"] = small_trial["audit_year"].astype(str)
    write_extract(raw, frame)
    edit_mapping(raw, lambda m: m.update(audit_year="YEAR"))
    np.testing.assert_array_equal(rp.import_extract(raw / "mapping.yaml")["audit_year"], small_trial["audit_year"])


def test_outcome_outside_its_eligible_group_becomes_missing(raw, small_trial):
    frame = read_extract(raw)
    sclc = np.flatnonzero(small_trial["histology"].to_numpy() == "SCLC")[:3]
    frame.loc[sclc, "SURGERY"] = "1"                 # a resection recorded for SCLC patients
    write_extract(raw, frame)
    result = rp.import_with_quality(raw / "mapping.yaml")
    assert result.patients["nsclc_resection"].iloc[sclc].isna().all()
    codes = result.quality.codes
    assert codes.query("column == 'nsclc_resection' and code == '1'")["rows"].item() == \
        int((small_trial["nsclc_resection"] == 1).sum()) + 3


# ------------------------------------------------------------------------------------------- mapping errors


@pytest.mark.parametrize("change, pattern", [
    (lambda m: m.update(colums={}), r"mapping: unknown key 'colums'; valid keys are source, allocation"),
    (lambda m: m.pop("columns"), r"required key\(s\) columns missing"),
    (lambda m: m["columns"].pop("sex"), r"columns: required contract column\(s\) sex not mapped"),
    (lambda m: m["columns"].update(sexx="SEX"), r"columns: unknown contract column 'sexx'"),
    (lambda m: m["columns"].update(arm="ARM"), r"'arm' comes from the allocation list"),
    (lambda m: m["outcomes"].update(resection={"from": "SURGERY"}), r"outcomes.resection: unknown outcome 'resection'"),
    (lambda m: m["outcomes"]["mdt_discussed"].update(code={1: 1}), r"outcomes.mdt_discussed: unknown key 'code'"),
    (lambda m: m["outcomes"]["mdt_discussed"].update(days_between=["A", "B"]), r"give exactly one of 'from'"),
    (lambda m: m["codes"]["sex"].update({1: "Male"}), r"codes.sex\['1'\]: value 'Male' is not valid for 'sex'; expected 'F' or 'M'"),
    (lambda m: m["codes"].update(sex={"yes": "M", True: "F"}), r"code True must be text or a number \(YAML reads yes/no"),
    (lambda m: m["codes"].update(audit_year={1: 1}), r"codes: unknown column 'audit_year' \(audit_year is a year field"),
    (lambda m: m["codes"].update(age={"U": None}), r"codes.age\['U'\]: value null \(missing\) is not allowed for 'age'"),
    (lambda m: m["codes"].update(mdt_discussed={1: 1}), r"an outcome's codes go under outcomes.mdt_discussed.codes"),
    (lambda m: m["outcomes"]["mdt_discussed"]["codes"].update({1: 2}), r"value 2 is not valid for 'mdt_discussed'; expected 0, 1 or null"),
    (lambda m: m.update(date_format="%d/%m"), r"does not hold day, month and year"),
    (lambda m: m.update(date_format="dd/mm/yyyy"), r"expected a strptime date format"),
    (lambda m: m["audit_year"].update(year="fiscal"), r"audit_year.year: 'fiscal' is not valid; expected 'calendar' or 'financial'"),
    (lambda m: m.update(source="missing.csv"), r"source: file 'missing.csv' not found"),
    (lambda m: m.update(source="extract.docx"), r"source: .*unknown file type"),
    (lambda m: m["outcomes"].pop("died"), r"survival needs both 'survival_days' and 'died'"),
    (lambda m: m["outcomes"].pop("days_referral_to_treatment"), r"outcomes.treated_within_62d.of: 'days_referral_to_treatment' is not mapped"),
    (lambda m: m["columns"].pop("bronchoscopy"), r"outcomes.ct_before_bronch: its eligible group \(had bronchoscopy\) needs bronchoscopy"),
    (lambda m: m["outcomes"]["mdt_discussed"].update({"from": 3}), r"outcomes.mdt_discussed.from: expected the name of a raw field"),
    (lambda m: m["outcomes"].update(active_treatment={"days_between": ["A", "B"]}), r"days_between makes a number of days"),
    (lambda m: m["extra_columns"].update(age="AGE"), r"'age' is a contract column"),
    (lambda m: m.update(drop={"years": True}), r"drop: unknown key 'years'"),
    (lambda m: m.update(drop={"years_outside_design": "yes"}), r"drop.years_outside_design: expected true or false"),
])
def test_mapping_errors_name_the_file_and_key(raw, change, pattern):
    path = edit_mapping(raw, change)
    with pytest.raises(rp.ParameterError, match=pattern) as info:
        rp.import_extract(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_mapping_file_errors(tmp_path):
    with pytest.raises(rp.ParameterError, match="mapping file not found"):
        rp.import_extract(tmp_path / "none.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(rp.ParameterError, match="the mapping file is empty"):
        rp.import_extract(tmp_path / "empty.yaml")
    (tmp_path / "bad.yaml").write_text("source: [a\ncolumns: {")
    with pytest.raises(rp.ParameterError, match="not valid YAML"):
        rp.import_extract(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(rp.ParameterError, match="expected a mapping with keys source"):
        rp.import_extract(tmp_path / "list.yaml")
    with pytest.raises(rp.ParameterError, match="mapping must be the path"):
        rp.import_extract(42)


# ------------------------------------------------------------------------------------------- data errors


def test_field_missing_from_the_extract_is_named_with_where_it_is_used(raw):
    path = edit_mapping(raw, lambda m: m["columns"].update(sex="GENDER"))
    with pytest.raises(rp.DataError, match=r"field\(s\) named in .*mapping.yaml not found in the extract: 'GENDER' "
                                           r"\(columns.sex\); the extract has AGE, ANY_TREATMENT"):
        rp.import_extract(path)


def test_unmapped_code_names_field_code_and_row_count(raw):
    frame = read_extract(raw)
    frame.loc[[3, 8, 20], "SEX"] = "9"
    frame.loc[5, "SEX"] = "U"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"field 'SEX' \(-> sex\): code\(s\) '9' \(3 rows\), 'U' \(1 row\) not in "
                                           r"the mapping's codes \('1', '2'\)"):
        rp.import_extract(raw / "mapping.yaml")


def test_unmapped_outcome_code_is_never_turned_into_missing(raw):
    frame = read_extract(raw)
    frame.loc[[1, 2], "MDT_DISCUSSED"] = "8"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"field 'MDT_DISCUSSED' \(-> mdt_discussed\): code\(s\) '8' \(2 rows\)"):
        rp.import_extract(raw / "mapping.yaml")


def test_blank_in_a_coded_field_needs_a_null_entry(raw):
    frame = read_extract(raw)
    frame.loc[[0, 1, 2, 3], "PERF_STATUS"] = ""
    frame.loc[[4], "MDT_DISCUSSED"] = ""
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"field 'PERF_STATUS' \(-> performance_status\) is blank in 4 rows and "
                                           r"codes.performance_status has no entry for a blank"):
        rp.import_extract(raw / "mapping.yaml")
    edit_mapping(raw, lambda m: m["codes"]["performance_status"].update({None: None}))
    with pytest.raises(rp.DataError, match=r"2 problems: field 'MDT_DISCUSSED' \(-> mdt_discussed\) is blank in 1 "
                                           r"rows of its eligible group.* \| field 'PERF_STATUS' \(-> ps_recorded\) is "
                                           r"blank in 4 rows"):
        rp.import_extract(raw / "mapping.yaml")
    edit_mapping(raw, lambda m: (m["outcomes"]["mdt_discussed"]["codes"].update({None: None}),
                                 m["outcomes"]["ps_recorded"]["codes"].update({None: 0})))
    imported = rp.import_extract(raw / "mapping.yaml")
    assert imported["performance_status"].iloc[:4].isna().all() and pd.isna(imported["mdt_discussed"].iloc[4])


def test_dates_that_do_not_parse_are_counted(raw):
    frame = read_extract(raw)
    frame.loc[[0, 1], "DATE_FIRST_SEEN"] = "31/02/2009"
    frame.loc[[2], "DATE_FIRST_SEEN"] = "2009-01-05"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"field 'DATE_FIRST_SEEN' \(-> audit_year\): value\(s\) '31/02/2009' "
                                           r"\(2 rows\), '2009-01-05' \(1 row\) do not parse as dates with format "
                                           r"'%d/%m/%Y'"):
        rp.import_extract(raw / "mapping.yaml")


def test_treatment_before_referral_is_refused(raw):
    frame = read_extract(raw)
    row = int(np.flatnonzero(frame["DATE_FIRST_TREATMENT"].to_numpy() != "")[0])
    frame.loc[row, "DATE_REFERRAL"] = "31/12/2099"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"'DATE_REFERRAL' -> 'DATE_FIRST_TREATMENT' \(-> days_referral_to_treatment\): "
                                           r"the end date is before the start date in 1 rows"):
        rp.import_extract(raw / "mapping.yaml")


def test_numbers_and_ranges_are_checked_by_field(raw):
    frame = read_extract(raw)
    frame.loc[[0, 1], "AGE"] = "abc"
    frame.loc[[2, 3, 4], "IMD_QUINTILE"] = "7"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"2 problems: field 'AGE' \(-> age\): value\(s\) 'abc' \(2 rows\) are not "
                                           r"numbers[^|]* \| field 'IMD_QUINTILE' \(-> imd_quintile\): value\(s\) '7' \(3 rows\) "
                                           r"are not integer 1"):
        rp.import_extract(raw / "mapping.yaml")


def test_allocation_missing_a_trust_is_refused_by_its_pair(raw):
    code = read_extract(raw)["TRUST_CODE"].iloc[0]
    edit_allocation(raw, lambda a: a.loc[a["TRUST_CODE"] != code])
    with pytest.raises(rp.DataError, match=r"allocation allocation.csv: pair\(s\) P\d\d \(only trust T\d+\) have one "
                                           r"trust; choose in the mapping incomplete_pairs: drop .* or incomplete_pairs: "
                                           r"keep .*, or pass incomplete_pairs="):
        rp.import_extract(raw / "mapping.yaml")


def _lose_a_trust(raw: Path, small_trial: pd.DataFrame) -> tuple[str, str, str]:
    """The second trust of the first pair leaves: gone from the allocation and from the extract."""
    codes = yaml.safe_load((raw / "mapping.yaml").read_text())["codes"]["trust_id"]
    code_of = {v: k for k, v in codes.items()}
    pair = sorted(small_trial["pair_id"].unique())[0]
    kept, lost = sorted(small_trial.loc[small_trial["pair_id"] == pair, "trust_id"].unique())
    edit_allocation(raw, lambda a: a.loc[a["TRUST_CODE"] != code_of[lost]])
    frame = read_extract(raw)
    write_extract(raw, frame.loc[frame["TRUST_CODE"] != code_of[lost]])
    return pair, kept, lost


def test_a_pair_that_lost_a_trust_is_an_error_naming_it_unless_the_mapping_chooses(raw, small_trial):
    pair, kept, lost = _lose_a_trust(raw, small_trial)
    with pytest.raises(rp.DataError, match=rf"pair\(s\) {pair} \(only trust {kept}\) have one trust; choose"):
        rp.import_extract(raw / "mapping.yaml")
    # keep: the pair stays as a one-trust cluster; the table is the generator's without the lost trust
    edit_mapping(raw, lambda m: m.update(incomplete_pairs="keep"))
    result = rp.import_with_quality(raw / "mapping.yaml")
    expected = small_trial.loc[small_trial["trust_id"] != lost].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.patients, expected)
    assert result.quality.n_kept == result.quality.n_read == len(expected)
    rp.validate_patients(result.patients, incomplete_pairs="keep")
    with pytest.raises(rp.DataError, match=pair):      # the estimators still need the choice made explicitly
        rp.validate_patients(result.patients)
    # drop: the pair's remaining patients are left out, with a row of the quality report saying why
    edit_mapping(raw, lambda m: m.update(incomplete_pairs="drop"))
    result = rp.import_with_quality(raw / "mapping.yaml")
    expected = small_trial.loc[small_trial["pair_id"] != pair].reset_index(drop=True)
    pd.testing.assert_frame_equal(result.patients, expected)
    n_kept_trust = int((small_trial["trust_id"] == kept).sum())
    rows = result.quality.rows.set_index("reason")["rows"]
    assert rows[f"trust {kept}: pair {pair} has one trust (incomplete_pairs: drop)"] == n_kept_trust > 0
    assert result.quality.n_read - result.quality.n_kept == n_kept_trust
    assert pair not in set(result.quality.pairs["pair_id"])


def test_the_incomplete_pairs_keyword_overrides_the_mapping_and_is_checked(raw, small_trial):
    pair, kept, lost = _lose_a_trust(raw, small_trial)
    edit_mapping(raw, lambda m: m.update(incomplete_pairs="keep"))
    dropped = rp.import_extract(raw / "mapping.yaml", incomplete_pairs="drop")
    assert pair not in set(dropped["pair_id"]) and len(dropped) == int((small_trial["pair_id"] != pair).sum())
    with pytest.raises(ValueError, match=r"incomplete_pairs.*'drop'.*'keep'"):
        rp.import_extract(raw / "mapping.yaml", incomplete_pairs="ignore")
    edit_mapping(raw, lambda m: m.update(incomplete_pairs="yes"))
    with pytest.raises(rp.ParameterError, match=r"incomplete_pairs.*'yes' is not valid; expected 'drop'"):
        rp.import_extract(raw / "mapping.yaml")


def test_unknown_and_absent_trusts_are_reported_by_name(small_raw, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(small_raw, folder)
    frame = read_extract(folder)
    frame.loc[:9, "TRUST_CODE"] = "RZZ"
    write_extract(folder, frame)
    edit_mapping(folder, lambda m: m["codes"]["trust_id"].update(RZZ="T999"))
    with pytest.raises(rp.DataError, match=r"trust\(s\) RZZ \(-> T999\) \(10 patients\) of field 'TRUST_CODE' are not "
                                           r"in the allocation allocation.csv"):
        rp.import_extract(folder / "mapping.yaml")
    edit_mapping(folder, lambda m: m.update(drop={"trusts_not_in_allocation": True}))
    result = rp.import_with_quality(folder / "mapping.yaml")
    assert result.quality.n_read - result.quality.n_kept == 10
    assert "trust RZZ (-> T999) not in the allocation" in set(result.quality.rows["reason"])
    # every patient of one trust moved away: the allocation lists a trust without patients
    frame = read_extract(small_raw)
    gone = frame["TRUST_CODE"].iloc[-1]
    other = frame["TRUST_CODE"].iloc[0]
    frame.loc[frame["TRUST_CODE"] == gone, "TRUST_CODE"] = other
    write_extract(folder, frame)
    edit_mapping(folder, lambda m: m.update(drop={}))
    label = yaml.safe_load((folder / "mapping.yaml").read_text())["codes"]["trust_id"][gone]
    with pytest.raises(rp.DataError, match=rf"trust\(s\) {gone} \(-> {label}\) of the allocation allocation.csv have no "
                                           r"patients in the extract"):
        rp.import_extract(folder / "mapping.yaml")


@pytest.mark.parametrize("change, pattern", [
    (lambda a: a.assign(ARM=np.where(np.arange(len(a)) == 0, "X", a["ARM"])),
     r"field 'ARM' \(-> arm\): code\(s\) 'X' \(1 row\) not in the mapping's codes \('I', 'C'\); add them"),
    (lambda a: pd.concat([a, a.iloc[[0]]]), r"trust\(s\) T\d+ are listed more than once"),
    (lambda a: a.assign(ARM=np.where(a["PAIR"] == a["PAIR"].iloc[0],
                                     np.where(np.arange(len(a)) == 0, "I", "C"), a["ARM"])),
     r"pair\(s\) P\d\d \(T\d+: intervention, T\d+: control\) have trusts in two arms"),
    (lambda a: a.assign(PAIR=np.where(np.arange(len(a)) == 0, "P99", a["PAIR"])),
     r"pair\(s\) P\d\d \(only trust T\d+\), P99 \(only trust T\d+\) have one trust; choose"),
    (lambda a: a.assign(PAIR=np.where(np.arange(len(a)) == 0, "", a["PAIR"])), r"column 'PAIR' \(-> pair_id\) is blank in 1 row\(s\) \(file line\(s\) 2\)"),
    (lambda a: a.rename(columns={"ARM": "GROUP"}), r"column\(s\) 'ARM' \(for arm\) not found; it has TRUST_CODE, PAIR, GROUP"),
])
def test_allocation_errors(raw, change, pattern):
    edit_allocation(raw, change)
    with pytest.raises(rp.DataError, match=r"allocation allocation.csv: " + pattern):
        rp.import_extract(raw / "mapping.yaml")


def test_arm_labels_must_be_the_designs(raw):
    edit_mapping(raw, lambda m: m["codes"].update(arm={"I": "treatment", "C": "control"}))
    with pytest.raises(rp.DataError, match=r"arm value\(s\) 'treatment' \(4 rows\) are not the design's arms "
                                           r"\['intervention', 'control'\]"):
        rp.import_extract(raw / "mapping.yaml")


def test_allocation_columns_and_codes_map_another_layout(raw, small_trial):
    edit_allocation(raw, lambda a: a.rename(columns={"TRUST_CODE": "ORG", "PAIR": "PAIR_NO", "ARM": "GROUP"})
                    .assign(GROUP=lambda d: d["GROUP"].map({"I": "1", "C": "0"})))
    edit_mapping(raw, lambda m: (m.update(allocation_columns={"trust_id": "ORG", "pair_id": "PAIR_NO", "arm": "GROUP"}),
                                 m["codes"].update(arm={1: "intervention", 0: "control"})))
    pd.testing.assert_frame_equal(rp.import_extract(raw / "mapping.yaml"), small_trial)


def test_years_outside_the_design_are_an_error_or_dropped_and_counted(raw, small_trial):
    frame = read_extract(raw)
    frame.loc[[0, 1, 2], "DATE_FIRST_SEEN"] = "15/06/2007"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"audit_year \(from 'DATE_FIRST_SEEN'\) is outside the design years "
                                           r"2008–2013 in '2007' \(3 rows\); set drop"):
        rp.import_extract(raw / "mapping.yaml")
    edit_mapping(raw, lambda m: m.update(drop={"years_outside_design": True}))
    result = rp.import_with_quality(raw / "mapping.yaml")
    assert len(result.patients) == len(small_trial) - 3
    rows = result.quality.rows.set_index("reason")["rows"]
    assert rows["audit year 2007 outside the design 2008–2013"] == 3
    assert rows["rows in the extract"] == len(small_trial) and rows["rows in the patient table"] == len(small_trial) - 3


def test_rows_where_drops_named_codes(raw, small_trial):
    edit_mapping(raw, lambda m: m.update(drop={"rows_where": {"HISTOLOGY": [2]}}))
    result = rp.import_with_quality(raw / "mapping.yaml")
    n_sclc = int((small_trial["histology"] == "SCLC").sum())
    assert len(result.patients) == len(small_trial) - n_sclc and "SCLC" not in set(result.patients["histology"])
    assert result.quality.rows.set_index("reason")["rows"]["HISTOLOGY is '2' (drop.rows_where)"] == n_sclc


def test_contract_breaches_the_field_checks_cannot_see_are_named(raw):
    frame = read_extract(raw)
    frame.loc[1, "PATIENT_ID"] = frame.loc[0, "PATIENT_ID"]
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"nlca_extract.csv.gz: the imported table breaks the data contract: column "
                                           r"'patient_id' has duplicated ids: N0000001"):
        rp.import_extract(raw / "mapping.yaml")


def test_cli_import_with_a_design_file(tmp_path, capsys):
    design = rp.StudyDesign(pre_years=(2005, 2006), during_years=(), post_years=(2007,), n_treated_pairs=2)
    trial = rp.simulate_nlca(seed=5, design=design, **SMALL)
    files = rp.write_raw_extract(trial, tmp_path / "raw", design=design)
    (tmp_path / "design.yaml").write_text(yaml.safe_dump(design.to_dict()))
    out = tmp_path / "p.parquet"
    assert main(["import", str(files.mapping), "--out", str(out)]) == 2          # default design: years outside
    assert "outside the design years 2008–2013" in capsys.readouterr().err
    assert main(["import", str(files.mapping), "--out", str(out), "--design", str(tmp_path / "design.yaml")]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), trial)


def test_multiple_field_problems_are_reported_at_once(raw):
    frame = read_extract(raw)
    frame.loc[0, "SEX"] = "3"
    frame.loc[1, "STAGE"] = "5"
    frame.loc[2, "HISTOLOGY"] = "0"
    write_extract(raw, frame)
    with pytest.raises(rp.DataError, match=r"3 problems: field 'SEX' \(-> sex\): code\(s\) '3' \(1 row\)[^|]* \| "
                                           r"field 'STAGE'[^|]*'5' \(1 row\)[^|]* \| field 'HISTOLOGY'[^|]*'0' \(1 row\)[^|]*$"):
        rp.import_extract(raw / "mapping.yaml")


@pytest.mark.parametrize("content, name, pattern", [
    (b"", "nlca_extract.csv.gz", r"the file is empty"),
    (None, "nlca_extract.csv.gz", r"not a valid gzip file"),                 # truncated gzip
    (b"PATIENT_ID;TRUST_CODE\nN1;R01\n", "extract.csv", r"semicolon-delimited"),
    (b"hello world", "extract.dta", r"not a valid Stata .dta file"),        # wrong file type behind the name
    (b"PK\x03\x04 broken", "extract.xlsx", r"not a valid Excel .xlsx workbook"),
    (b"PAR1 broken", "extract.parquet", r"could not read Parquet"),
    (b"x", "extract.sas7bdat", r"not a valid SAS .sas7bdat file"),
])
def test_corrupt_truncated_empty_and_wrong_type_sources(raw, content, name, pattern):
    path = raw / name
    if content is None:
        path.write_bytes((raw / "nlca_extract.csv.gz").read_bytes()[:500])
    else:
        path.write_bytes(content)
    edit_mapping(raw, lambda m: m.update(source=name))
    with pytest.raises(rp.DataError, match=pattern):
        rp.import_extract(raw / "mapping.yaml")


def test_header_only_and_bounds(raw):
    write_extract(raw, read_extract(raw).iloc[:0])
    with pytest.raises(rp.DataError, match="the file has a header but no rows"):
        rp.import_extract(raw / "mapping.yaml")


def test_input_is_bounded(small_raw, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(small_raw, folder)
    with pytest.raises(rp.DataError, match=r"more than 100 rows, over the limit \(max_rows\)"):
        rp.import_extract(folder / "mapping.yaml", max_rows=100)
    with pytest.raises(rp.DataError, match=r"over the limit of 0 MiB \(max_bytes\)"):
        rp.import_extract(folder / "mapping.yaml", max_bytes=1000)
    size = (folder / "nlca_extract.csv.gz").stat().st_size
    with pytest.raises(rp.DataError, match=r"decompresses to more than"):
        rp.import_extract(folder / "mapping.yaml", max_bytes=size + 10)


# ------------------------------------------------------------------------------------------- the quality report


def test_quality_frames_count_exactly_and_the_report_suppresses_small_counts(raw, small_trial, tmp_path):
    frame = read_extract(raw)
    frame.loc[[0, 1], "STAGE"] = "1C"                                   # a rare code, seen in 2 rows
    write_extract(raw, frame)
    edit_mapping(raw, lambda m: m["codes"]["stage"].update({"1C": "I"}) or
                 m["outcomes"]["stage_recorded"]["codes"].update({"1C": 1}))
    result = rp.import_with_quality(raw / "mapping.yaml")
    quality = result.quality
    codes = quality.codes.set_index(["column", "code"])["rows"]
    assert codes[("stage", "1C")] == 2
    assert codes[("sex", "1")] == int((small_trial["sex"] == "M").sum())
    comp = quality.completeness.set_index(["column", "trust_id", "audit_year"])
    ps = small_trial.groupby(["trust_id", "audit_year"])["performance_status"]
    t, y = small_trial["trust_id"].iloc[0], int(small_trial["audit_year"].iloc[0])
    assert comp.loc[("performance_status", t, y), "recorded"] == ps.count()[(t, y)]
    assert comp.loc[("performance_status", t, y), "eligible"] == ps.size()[(t, y)]
    eligible = small_trial.loc[(small_trial.trust_id == t) & (small_trial.audit_year == y), "histology"] == "NSCLC"
    assert comp.loc[("nsclc_resection", t, y), "eligible"] == int(eligible.sum())
    assert quality.arms.set_index("arm")["trusts"].to_dict() == {"control": 8, "intervention": 4}

    written = rp.write_quality_report(quality, tmp_path / "report")
    policy = rp.tables.disclosure_policy()
    shown = pd.read_csv(written["codes"], dtype=str)
    row = shown.loc[(shown["column"] == "stage") & (shown["code"] == "1C")]
    assert row["rows"].item() == "<5"
    stage = shown.loc[shown["column"] == "stage"]
    assert (stage["rows"] == "*").sum() >= 1                        # secondary suppression against the total
    from rp2pr_eval.presentation.disclosure import check_disclosure

    for name, counts in (("rows", ["rows"]), ("codes", ["rows"]), ("pairs", ["patients"]), ("arms", ["patients"]),
                         ("completeness", ["eligible", "recorded", "missing"])):
        table = pd.read_csv(written[name], dtype=str, keep_default_na=False)
        assert check_disclosure(table, policy=policy, count_columns=counts) == [], name
    comp_shown = pd.read_csv(written["completeness"], dtype=str)
    hidden = comp_shown["missing"] == "<5"
    assert hidden.any() and (comp_shown.loc[hidden, "percent_recorded"] == "*").all()
    page = written["html"].read_text()
    assert "Import data-quality report" in page and "T001" in page and "&lt;5" in page
    with pytest.raises(rp.ParameterError, match="exists; pass overwrite=True"):
        rp.write_quality_report(quality, tmp_path / "report")


# ------------------------------------------------------------------------------------------- command line


def test_cli_import_writes_table_and_report_and_fails_in_one_line(small_raw, small_trial, tmp_path, capsys):
    out = tmp_path / "out" / "patients.csv.gz"
    assert main(["import", str(small_raw / "mapping.yaml"), "--out", str(out)]) == 0
    assert "imported" in capsys.readouterr().out
    back = rp.load_patients(out)
    assert back["patient_id"].tolist() == small_trial["patient_id"].tolist()
    assert (tmp_path / "out" / "patients_quality" / "quality.html").is_file()
    assert main(["import", str(small_raw / "mapping.yaml"), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["import", str(small_raw / "mapping.yaml"), "--out", str(out), "--force", "--report",
                 str(tmp_path / "q")]) == 0
    assert (tmp_path / "q" / "quality_codes.csv").is_file()


def test_cli_import_error_leaves_nothing_behind(raw, tmp_path, capsys):
    frame = read_extract(raw)
    frame.loc[0, "SEX"] = "3"
    write_extract(raw, frame)
    out = tmp_path / "o" / "p.csv.gz"
    assert main(["import", str(raw / "mapping.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rp2pr-eval: error: ") and err.count("\n") == 1 and "code(s) '3' (1 row)" in err
    assert not out.exists() and not (tmp_path / "o").exists()
    with pytest.raises(rp.DataError):
        main(["import", str(raw / "mapping.yaml"), "--out", str(out), "--debug"])
    assert main(["import", str(raw / "mapping.yaml"), "--out", str(tmp_path / "p.xlsx")]) == 2
    assert "expected a .csv, .csv.gz or .parquet" in capsys.readouterr().err


def test_interrupted_write_leaves_no_half_written_file(small_trial, tmp_path, monkeypatch):
    """save_patients writes aside and renames: a failure mid-write leaves neither the target nor the temporary."""
    import os

    target = tmp_path / "p.csv"
    target.write_text("previous\n")

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        rp.save_patients(small_trial, target)
    monkeypatch.undo()
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


@pytest.mark.notebook
def test_import_notebook_runs_from_another_folder_and_writes_the_report(small_raw, small_trial, tmp_path):
    """notebooks/05_import_example.ipynb on a small raw extract, executed with a working directory outside the repo."""
    import papermill as pm

    report = tmp_path / "report"
    pm.execute_notebook(str(ROOT / "notebooks" / "05_import_example.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"mapping_path": str(small_raw / "mapping.yaml"), "report_dir": str(report)},
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    rows = pd.read_csv(report / "quality_rows.csv").set_index("reason")["rows"]
    assert rows["rows in the patient table"] == len(small_trial) == rows["rows in the extract"]
    arms = pd.read_csv(report / "quality_arms.csv").set_index("arm")
    assert arms.loc["intervention", "trusts"] == 4 and arms.loc["Total", "patients"] == len(small_trial)


def test_cli_simulate_needs_out_or_raw(tmp_path, capsys):
    assert main(["simulate", "--pairs", "3", "--treated-pairs", "1"]) == 2
    assert "give either --out FILE" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "a.csv"), "--raw", str(tmp_path / "r")]) == 2
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mapping.yaml").write_text("x")
    assert main(["simulate", "--pairs", "3", "--treated-pairs", "1", "--raw", str(tmp_path / "r")]) == 2
    assert "mapping.yaml exist(s); pass --force to overwrite" in capsys.readouterr().err
