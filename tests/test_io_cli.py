"""Loading files and the foundation CLI commands: clear one-line errors, non-zero exits."""
from __future__ import annotations

import gzip

import pytest

import rp2pr_eval as rp
from rp2pr_eval.cli import main

pytestmark = pytest.mark.fixture


def test_roundtrip_csv_gz_and_parquet(small_patients, tmp_path):
    for name in ("p.csv.gz", "p.csv", "p.parquet"):
        path = rp.save_patients(small_patients, tmp_path / name)
        back = rp.load_patients(path)
        assert len(back) == len(small_patients)
        assert back["trust_id"].tolist() == small_patients["trust_id"].tolist()
        assert back.attrs["truth"] == small_patients.attrs["truth"]
        assert back["performance_status"].isna().sum() == small_patients["performance_status"].isna().sum()


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", "the file is empty"),
        (b"patient_id;trust_id;arm\nN1;T1;control\n", "semicolon-delimited"),
        (b"patient_id\tarm\nN1\tcontrol\n", "tab-delimited"),
        (b"patient_id,trust_id\n", "header but no rows"),
        (b"patient_id,trust_id\nN\xe91,T1\n", r"not UTF-8 text \(invalid byte 0xe9 on line 2\)"),
        (b"patient_id,trust_id\nN1,T1\n", r"required column\(s\) .* missing"),
    ],
)
def test_bad_files(tmp_path, content, pattern):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(rp.DataError, match=pattern):
        rp.load_patients(path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(rp.DataError, match="file not found"):
        rp.load_patients(tmp_path / "none.csv")
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(rp.DataError, match=r"unknown file type; expected one of .*\.dta, \.sas7bdat, \.xpt, \.xlsx"):
        rp.load_patients(tmp_path / "x.docx")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(rp.DataError, match="not a valid Excel .xlsx workbook"):
        rp.load_patients(tmp_path / "x.xlsx")
    (tmp_path / "y.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(rp.DataError, match="not a valid gzip file"):
        rp.load_patients(tmp_path / "y.csv.gz")


def test_loader_error_names_the_file(small_patients, tmp_path):
    bad = small_patients.copy()
    bad.loc[bad.index[3], "age"] = 200
    path = rp.save_patients(bad, tmp_path / "bad.csv")
    with pytest.raises(rp.DataError, match=r"bad\.csv: column 'age' out of range"):
        rp.load_patients(path)


def test_cli_validate_data_ok_and_error(small_patients, tmp_path, capsys):
    good = rp.save_patients(small_patients, tmp_path / "good.csv.gz")
    assert main(["validate-data", str(good)]) == 0
    assert "valid — " in capsys.readouterr().out
    (tmp_path / "bad.csv").write_bytes(b"a;b\n1;2\n")
    code = main(["validate-data", str(tmp_path / "bad.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rp2pr-eval: error:") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(rp.DataError):
        main(["validate-data", str(tmp_path / "bad.csv"), "--debug"])


def test_cli_bad_flags_and_help(capsys):
    assert main(["simulate"]) == 2               # --out is required
    assert main(["no-such-command"]) == 2
    assert main(["--help"]) == 0
    assert "simulate" in capsys.readouterr().out


def test_cli_simulate_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "s.csv.gz"
    assert main(["simulate", "--out", str(out), "--pairs", "4", "--treated-pairs", "1"]) == 0
    assert main(["simulate", "--out", str(out), "--pairs", "4", "--treated-pairs", "1"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "t.csv"), "--effect", "cns_seen"]) == 2
