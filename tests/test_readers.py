"""load_patients reads Stata, SAS and Excel files as well as CSV and Parquet; the shared reader's bounds and errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import rp2pr_eval as rp
from rp2pr_eval.data.readers import file_format, read_columns, read_table

pytestmark = pytest.mark.fixture


@pytest.fixture(scope="module")
def contract_table() -> pd.DataFrame:
    return rp.simulate_nlca(seed=8, n_pairs=4, n_treated_pairs=1, volume_median=20, volume_clip=(10, 30))


def _for_writer(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable integers as floats, text as Python objects (what Stata, SAS and Excel files hold)."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.Int64Dtype):
            out[column] = out[column].astype(float)
        elif pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].astype(object)
    return out


@pytest.mark.parametrize("suffix", [".dta", ".sas7bdat", ".xpt", ".xlsx"])
def test_load_patients_reads_stata_sas_and_excel(contract_table, tmp_path, suffix):
    import pyreadstat

    path = tmp_path / f"patients{suffix}"
    frame = _for_writer(contract_table)
    if suffix == ".dta":
        pyreadstat.write_dta(frame, str(path))
    elif suffix == ".sas7bdat":
        pyreadstat.write_sas7bdat(frame, str(path))
    elif suffix == ".xpt":
        pyreadstat.write_xport(frame, str(path), file_format_version=8)
    else:
        frame.to_excel(path, index=False)
    loaded = rp.load_patients(path)
    assert list(loaded.columns) == list(contract_table.columns) and len(loaded) == len(contract_table)
    for column in contract_table.columns:
        want, got = contract_table[column], loaded[column]
        if pd.api.types.is_numeric_dtype(want.dtype):
            np.testing.assert_array_equal(pd.to_numeric(got).to_numpy(dtype=float, na_value=np.nan),
                                          want.to_numpy(dtype=float, na_value=np.nan), err_msg=column)
        else:  # text: a missing stage stays missing (Stata and SAS store it as an empty string)
            assert got.isna().tolist() == want.isna().tolist(), column
            assert got.dropna().astype(str).tolist() == want.dropna().astype(str).tolist(), column
    assert rp.trust_panel(loaded, "active_treatment")["numerator"].tolist() == \
        rp.trust_panel(contract_table, "active_treatment")["numerator"].tolist()


def test_contract_errors_in_a_stata_file_name_the_file(contract_table, tmp_path):
    import pyreadstat

    frame = _for_writer(contract_table)
    frame.loc[0, "age"] = 200
    pyreadstat.write_dta(frame, str(tmp_path / "bad.dta"))
    with pytest.raises(rp.DataError, match=r"bad\.dta: column 'age' out of range"):
        rp.load_patients(tmp_path / "bad.dta")


@pytest.mark.parametrize("name, content, pattern", [
    ("p.dta", b"patient_id,trust_id\nN1,T1\n", r"not a valid Stata .dta file"),
    ("p.xpt", b"\x00" * 100, r"not a valid SAS transport .xpt file"),
    ("p.sas7bdat", b"not sas", r"not a valid SAS .sas7bdat file"),
    ("p.xlsx", b"a,b\n1,2\n", r"not a valid Excel .xlsx workbook \(not a zip archive"),
    ("p.parquet", b"PAR1", r"could not read Parquet"),
    ("p.dta", b"", r"the file is empty"),
])
def test_wrong_type_and_corrupt_files(tmp_path, name, content, pattern):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(rp.DataError, match=pattern):
        rp.load_patients(tmp_path / name)


def test_truncated_stata_file(contract_table, tmp_path):
    import pyreadstat

    pyreadstat.write_dta(_for_writer(contract_table), str(tmp_path / "full.dta"))
    (tmp_path / "cut.dta").write_bytes((tmp_path / "full.dta").read_bytes()[:2000])
    with pytest.raises(rp.DataError, match=r"cut\.dta: not a valid Stata .dta file"):
        rp.load_patients(tmp_path / "cut.dta")


def test_bounds_and_header_only_reads(contract_table, tmp_path):
    path = rp.save_patients(contract_table, tmp_path / "p.csv.gz")
    with pytest.raises(rp.DataError, match=r"more than 10 rows, over the limit \(max_rows\)"):
        rp.load_patients(path, max_rows=10)
    with pytest.raises(rp.DataError, match=r"over the limit of 0 MiB \(max_bytes\)"):
        rp.load_patients(path, max_bytes=100)
    assert read_columns(path) == list(contract_table.columns)
    assert len(read_table(path, columns=["trust_id", "age"], all_text=True).columns) == 2
    (tmp_path / "dup.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(rp.DataError, match=r"duplicated column name\(s\) \['a'\]"):
        read_columns(tmp_path / "dup.csv")
    assert [file_format(n) for n in ("x.CSV.GZ", "x.pq", "x.XPT", "x.sas7bdat")] == ["csv", "parquet", "xport", "sas7bdat"]
    with pytest.raises(rp.DataError, match="is a folder"):
        rp.load_patients(tmp_path)
