"""Reading tables from files: CSV (plain or gzipped), Parquet, Stata, SAS and Excel, with bounded input.

One reader for the patient loader (:func:`rp2pr_eval.load_patients`) and the extract import
(:func:`rp2pr_eval.import_extract`), so both accept the same formats and fail the same way: every
problem is a :class:`~rp2pr_eval.errors.DataError` naming the file and what was expected (unknown file
type, empty, truncated or corrupt file, wrong delimiter, not UTF-8, too large, too many rows).

Formats and the library that reads them (no reader is written here):

========================  ==========================================================
``.csv``, ``.txt``        pandas ``read_csv`` (UTF-8, comma-separated)
``.csv.gz``               the same after gzip decompression (bounded)
``.parquet``, ``.pq``     pandas ``read_parquet`` (pyarrow)
``.dta``                  pyreadstat ``read_dta`` (Stata 8–15 and later)
``.sas7bdat``             pyreadstat ``read_sas7bdat``
``.xpt``                  pyreadstat ``read_xport`` (SAS transport, v5/v8)
``.xlsx``                 pandas ``read_excel`` with openpyxl (first sheet)
========================  ==========================================================

pyreadstat is used for the Stata and SAS formats rather than pandas' own ``read_stata``/``read_sas``
because it reads the header alone (``metadataonly``), a subset of columns and a bounded number of
rows for all three, and returns text as text (pandas' SAS reader returns bytes).

Bounds: ``max_bytes`` is checked on the file size before anything is read (and on the decompressed
size of a gzipped CSV, so a small compressed file cannot expand without limit); ``max_rows`` is
checked by reading at most ``max_rows + 1`` rows.
"""
from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from rp2pr_eval.errors import DataError
from rp2pr_eval.files import check_input_file, limited_gzip, max_input_bytes

#: File name endings and the format each names (longest endings first when matching).
FORMATS: dict[str, str] = {
    ".csv.gz": "csv", ".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".dta": "stata", ".sas7bdat": "sas7bdat", ".xpt": "xport", ".xlsx": "excel",
}
_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "stata": "Stata .dta", "sas7bdat": "SAS .sas7bdat",
                 "xport": "SAS transport .xpt", "excel": "Excel .xlsx"}
#: Default bounds of :func:`read_table`: 2 GiB on disk (or decompressed), 10 million rows.
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_ROWS = 10_000_000


def file_format(path: str | Path) -> str:
    """The format of a file from its name: ``csv``, ``parquet``, ``stata``, ``sas7bdat``, ``xport`` or ``excel``.

    Raises
    ------
    DataError
        For any other ending (the message lists the valid ones).
    """
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    valid = ", ".join(FORMATS)
    raise DataError(f"{path}: unknown file type; expected one of {valid}")


def _check_file(path: Path, max_bytes: int | None) -> str:
    """The file's format, after checking that it exists, is a file, is not empty and is within the bound."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a data file ({', '.join(FORMATS)})")
    fmt = file_format(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and one row per patient")
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{path}: the file is {size / 1024**2:,.0f} MiB, over the limit of "
                        f"{max_bytes / 1024**2:,.0f} MiB (max_bytes); raise the limit (max_bytes= or the environment "
                        "variable RP2PR_EVAL_MAX_INPUT_BYTES) to read it")
    check_input_file(path, limit=1 << 62, what="data file")     # sparse (mostly unallocated) files
    return fmt


def _csv_text(path: Path, max_bytes: int | None) -> str:
    """The decoded text of a CSV file (gzip-decompressed with a bound), or DataError."""
    if path.name.lower().endswith(".gz"):
        try:                                  # corrupt, truncated or bomb-like streams are refused
            with limited_gzip(path, limit=max_bytes if max_bytes is not None else max_input_bytes()) as fh:
                raw = fh.read()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from None
    else:
        raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; expected a header row and one row per patient")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} on line {line}); "
                        "save the file as UTF-8") from None
    header = text.split("\n", 1)[0]
    if "," not in header:
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header:
                raise DataError(f"{path}: the header is {name}-delimited; expected comma-separated values")
        if "\x00" in header:
            raise DataError(f"{path}: does not look like CSV text (binary content in the header)")
        raise DataError(f"{path}: the header has a single column {header[:60]!r}; expected comma-separated values")
    return text


def _csv_header(path: Path) -> list[str]:
    """The column names on the first line of a CSV file, reading only that line (at most 1 MiB)."""
    import csv

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            line = fh.readline(1 << 20)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from None
    try:
        header = line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte 0x{line[exc.start]:02x} on line 1); "
                        "save the file as UTF-8") from None
    if not header.strip():
        raise DataError(f"{path}: the file is empty or its first line is blank; expected a header row")
    if "\x00" in header:
        raise DataError(f"{path}: does not look like CSV text (binary content in the header)")
    if "," not in header:
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header:
                raise DataError(f"{path}: the header is {name}-delimited; expected comma-separated values")
    names = [c.strip() for c in next(csv.reader([header]))]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise DataError(f"{path}: duplicated column name(s) {dup}")
    return names


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_csv(path: Path, *, text_columns: Sequence[str] | None, all_text: bool, columns: Sequence[str] | None,
              max_rows: int | None, max_bytes: int | None) -> pd.DataFrame:
    text = _csv_text(path, max_bytes)
    if all_text:
        # pyarrow's multi-threaded parser: five times faster than the C parser for text columns
        # (500,000 rows × 21 fields: 0.6 s instead of 3 s); the row bound is checked after the read,
        # which max_bytes has bounded already
        try:
            return pd.read_csv(io.BytesIO(text.encode("utf-8")), dtype=str, keep_default_na=False, na_values=[""],
                               usecols=None if columns is None else list(columns), engine="pyarrow")
        except Exception as exc:  # pyarrow.lib.ArrowInvalid and friends
            raise DataError(f"{path}: could not parse as CSV ({_first_line(exc)})") from None
    dtype = {c: "str" for c in (text_columns or ())}
    try:
        return pd.read_csv(io.StringIO(text), dtype=dtype, keep_default_na=False, na_values=[""],
                           usecols=None if columns is None else list(columns),
                           nrows=None if max_rows is None else max_rows + 1)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: could not parse as CSV ({_first_line(exc)})") from None


def _read_parquet(path: Path, *, columns, max_rows, header_only) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        names = meta.schema_arrow.names
        if header_only:
            return pd.DataFrame(columns=names)
        if max_rows is not None and meta.metadata.num_rows > max_rows:
            _too_many(path, max_rows)
        return pd.read_parquet(path, columns=None if columns is None else list(columns))
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: could not read Parquet ({_first_line(exc)})") from None


def _read_readstat(path: Path, fmt: str, *, columns, max_rows, header_only) -> pd.DataFrame:
    import pyreadstat

    reader = {"stata": pyreadstat.read_dta, "sas7bdat": pyreadstat.read_sas7bdat, "xport": pyreadstat.read_xport}[fmt]
    kwargs: dict[str, object] = {}
    if header_only:
        kwargs["metadataonly"] = True
    else:
        if columns is not None:
            kwargs["usecols"] = list(columns)
        if max_rows is not None:
            kwargs["row_limit"] = max_rows + 1
    try:
        frame, meta = reader(str(path), **kwargs)
    except Exception as exc:  # pyreadstat.ReadstatError and friends
        raise DataError(f"{path}: not a valid {_FORMAT_NAMES[fmt]} file ({_first_line(exc)})") from None
    if header_only:
        return pd.DataFrame(columns=list(meta.column_names))
    return frame


def _read_excel(path: Path, *, text_columns, all_text, columns, max_rows, header_only) -> pd.DataFrame:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid Excel .xlsx workbook (not a zip archive: truncated, corrupt or "
                        "another format renamed)")
    dtype: object = object if all_text else ({c: "str" for c in text_columns} if text_columns else None)
    try:
        return pd.read_excel(path, sheet_name=0, engine="openpyxl", dtype=dtype,
                             usecols=None if columns is None else list(columns),
                             nrows=0 if header_only else (None if max_rows is None else max_rows + 1))
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        raise DataError(f"{path}: not a valid Excel .xlsx workbook ({_first_line(exc)})") from None


def _too_many(path: Path, max_rows: int) -> None:
    raise DataError(f"{path}: more than {max_rows:,} rows, over the limit (max_rows); raise the limit to read it")


def read_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    text_columns: Sequence[str] | None = None,
    all_text: bool = False,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> pd.DataFrame:
    """Read a data file into a DataFrame (format from the file name; see the module docstring).

    Parameters
    ----------
    path
        The file.
    columns
        Read only these columns (all by default); they must exist (see :func:`read_columns`).
    text_columns
        CSV and Excel: read these columns as text, never as numbers (identifiers, labels).
    all_text
        CSV: read every column as text (the import converts each field itself, naming it in errors);
        Excel: keep cells as stored (no type guessing across a column).
    max_rows, max_bytes
        Bounds on the rows and on the file size (decompressed size for ``.csv.gz``); ``None``: no bound.

    Returns
    -------
    pandas.DataFrame
        As stored; at least one row.

    Raises
    ------
    DataError
        File missing, a folder, empty, of an unknown type, corrupt or truncated, wrongly delimited, not
        UTF-8, over a bound, or with a header but no rows.
    """
    path = Path(path)
    if max_bytes == DEFAULT_MAX_BYTES:        # the default bound: RP2PR_EVAL_MAX_INPUT_BYTES may change it
        max_bytes = max_input_bytes()
    fmt = _check_file(path, max_bytes)
    if fmt == "csv":
        frame = _read_csv(path, text_columns=text_columns, all_text=all_text, columns=columns, max_rows=max_rows,
                          max_bytes=max_bytes)
    elif fmt == "parquet":
        frame = _read_parquet(path, columns=columns, max_rows=max_rows, header_only=False)
    elif fmt == "excel":
        frame = _read_excel(path, text_columns=text_columns, all_text=all_text, columns=columns, max_rows=max_rows,
                            header_only=False)
    else:
        frame = _read_readstat(path, fmt, columns=columns, max_rows=max_rows, header_only=False)
    if max_rows is not None and len(frame) > max_rows:
        _too_many(path, max_rows)
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return frame


def read_columns(path: str | Path, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> list[str]:
    """The column names of a data file, read from its header alone where the format allows.

    CSV: the first line (a gzipped file is decompressed); Parquet: the schema; Stata and SAS: the
    metadata; Excel: the first row of the first sheet.
    """
    path = Path(path)
    if max_bytes == DEFAULT_MAX_BYTES:        # the default bound: RP2PR_EVAL_MAX_INPUT_BYTES may change it
        max_bytes = max_input_bytes()
    fmt = _check_file(path, max_bytes)
    if fmt == "csv":
        return _csv_header(path)
    if fmt == "parquet":
        frame = _read_parquet(path, columns=None, max_rows=None, header_only=True)
    elif fmt == "excel":
        frame = _read_excel(path, text_columns=None, all_text=True, columns=None, max_rows=None, header_only=True)
    else:
        frame = _read_readstat(path, fmt, columns=None, max_rows=None, header_only=True)
    names = [str(c) for c in frame.columns]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise DataError(f"{path}: duplicated column name(s) {dup}")
    return names


__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ROWS", "FORMATS", "file_format", "read_columns", "read_table"]
