"""Readers for the run-folder audit: any file becomes tables and text, or is reported unreadable.

:func:`read_content` turns one file into :class:`Content` — the tables it
shows (header and rows of cells) and the prose it shows — whatever its type:
CSV/TSV (also gzip-compressed), Parquet, Excel, JSON (including the run's
results), notebooks (only what the outputs and Markdown cells show; code and
images are not read), Markdown (pipe tables and prose), HTML (tables, and the
text outside them; scripts and styles skipped), LaTeX (``tabular``
environments and prose), SVG (text, titles and the comments in which
Matplotlib keeps the text it draws as paths), NumPy ``.npy`` (no pickles),
plain text, and any other file that decodes as text. Images (PNG, JPEG, GIF,
PDF) are not read.

Nothing here trusts the file: sizes are checked before reading
(``max_bytes``, also for what a gzip or Excel file decompresses to), nothing
is evaluated or unpickled, XML entities are not expanded, and every failure
(binary garbage, truncated gzip, invalid JSON or notebook, wrong encoding,
too deep nesting, permission denied) becomes :class:`Unreadable` with a
one-line reason. The parsers are the standard library's (``csv``,
``json``, ``html.parser``, ``gzip``, ``zipfile``) plus pyarrow, openpyxl
(through pandas) and NumPy; the small table extractors on top of them for
HTML, Markdown, LaTeX and aligned text are written here because no library
extracts tables *and* the surrounding text leniently from possibly broken
markup.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

#: Default limit on the bytes the audit reads from one file (and on what it decompresses to).
MAX_BYTES = 64 * 1024 * 1024
#: Suffixes that are images: not read.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".pdf", ".webp", ".bmp", ".tif", ".tiff", ".ico"})
#: ``schema`` values of JSON files that hold model output only (counts are not audited, ids are).
MODEL_SCHEMAS = frozenset({"rp2pr_eval.effects", "rp2pr_eval.power"})
#: Keys of ``<outcome>.extras.json`` that hold model output (the rest, the figures' panels, is audited).
#: ``sensitivity`` is the referee's checks (sets, effects, leave-one-pair-out estimates); its per-trust points
#: (``sensitivity_points``) are audited.
MODEL_KEYS = frozenset({"event_study", "randomisation", "trust_effects", "skipped", "sensitivity"})
_MAX_CELLS = 5_000_000


class Unreadable(Exception):
    """The file cannot be audited; the message says why in one line."""


@dataclass
class Table:
    """One table a file shows: where it is, its header and rows of cells (numbers or strings)."""

    where: str
    header: list[Any]
    rows: list[list[Any]]
    #: Model output (effects, the event study, randomisation draws): counts are not audited, ids are.
    model_output: bool = False


@dataclass
class Content:
    """What one file shows."""

    tables: list[Table] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)   # (where, prose)
    #: True when the whole file is model output (counts not audited; ids are).
    model_output: bool = False
    #: Problems found while reading that do not stop the audit (e.g. not UTF-8).
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# bytes and text
# ---------------------------------------------------------------------------


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise Unreadable(f"too large to audit ({size:,} bytes > {max_bytes:,})")
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unreadable(f"too large to audit (more than {max_bytes:,} bytes)")
    return data


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip data, refusing more than ``max_bytes`` of output (a gzip bomb) or a broken stream."""
    out = bytearray()
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    rest = data
    try:
        while rest:
            out += stream.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise Unreadable(f"decompresses to more than {max_bytes:,} bytes (a gzip bomb?)")
            if stream.unconsumed_tail:
                rest = stream.unconsumed_tail
            elif stream.eof and stream.unused_data[:2] == b"\x1f\x8b":   # a further gzip member
                rest = stream.unused_data
                stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                rest = b""
    except zlib.error as exc:
        raise Unreadable(f"not a valid gzip stream ({exc})") from None
    if not stream.eof:
        raise Unreadable("truncated gzip stream (it ends before its last block)")
    return bytes(out)


def decode(data: bytes, notes: list[str]) -> str:
    """UTF-8 text; other bytes are read as Latin-1 and noted; NUL bytes mean binary: unreadable."""
    if b"\x00" in data[:65536]:
        raise Unreadable("binary content (NUL bytes) in a file of a text type")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        notes.append(f"not valid UTF-8 (byte {exc.start}); audited as Latin-1")
        return data.decode("latin-1")


# ---------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------


def _csv(text: str, delimiter: str, where: str) -> Table:
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = [row for row in reader]
    except csv.Error as exc:
        raise Unreadable(f"not valid CSV ({exc})") from None
    rows = [r for r in rows if r]
    if not rows:
        return Table(where, [], [])
    return Table(where, rows[0], rows[1:])


class _HTML(HTMLParser):
    """Tables (cells as text) and the text outside them; script, style and attributes are ignored."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.stack: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.text: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "table":
            self.stack.append([])
        elif tag == "tr" and self.stack:
            self.stack[-1].append([])
        elif tag in ("td", "th") and self.stack:
            if not self.stack[-1]:
                self.stack[-1].append([])
            self.cell = []
            self.stack[-1][-1].append("")
        elif tag in ("br", "p", "div", "li", "h1", "h2", "h3", "h4", "tr"):
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("td", "th") and self.stack and self.cell is not None:
            self.stack[-1][-1][-1] = " ".join("".join(self.cell).split())
            self.cell = None
        elif tag == "table" and self.stack:
            self.tables.append(self.stack.pop())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.cell is not None:
            self.cell.append(data)
        elif not self.stack:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:  # Matplotlib's SVG keeps drawn text in comments
        if not self.skip:
            self.text.append("\n" + data + "\n")


def _markup(text: str, where: str, content: Content) -> None:
    parser = _HTML()
    try:
        parser.feed(text)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything else is a broken file
        raise Unreadable(f"not parseable as HTML/XML ({type(exc).__name__})") from None
    while parser.stack:  # unclosed tables still count
        parser.tables.append(parser.stack.pop())
    for i, rows in enumerate(parser.tables, start=1):
        rows = [r for r in rows if r]
        if rows:
            content.tables.append(_header_split(f"{where}table {i}", rows))
    content.texts.append((where or "text", "".join(parser.text)))


def _header_split(where: str, rows: list[list[Any]]) -> Table:
    """First row is the header; a pandas display puts the index name on a second header row."""
    header, body = list(rows[0]), [list(r) for r in rows[1:]]
    if body and len(body[0]) and all(c == "" for c in body[0][1:]) and len(body) > 1:
        header[0] = header[0] or body[0][0]
        body = body[1:]
    return Table(where, header, body)


_PIPE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _split_pipe(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def _markdown(text: str, where: str, content: Content) -> None:
    lines = text.splitlines()
    prose: list[str] = []
    i, n_tables = 0, 0
    while i < len(lines):
        if i + 1 < len(lines) and "|" in lines[i] and _PIPE_SEP.match(lines[i + 1]):
            header = _split_pipe(lines[i])
            rows = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_split_pipe(lines[i]))
                i += 1
            n_tables += 1
            content.tables.append(Table(f"{where}table {n_tables}", header, rows))
            continue
        prose.append(lines[i])
        i += 1
    body = "\n".join(prose)
    if "<table" in body.lower() or "<svg" in body.lower():
        _markup(body, f"{where}HTML ", content)
    else:
        content.texts.append((where or "text", body))


_TEX_ENV = re.compile(r"\\begin\{(tabular\*?|longtable|tabularx|array)\}(.*?)\\end\{\1\}", re.DOTALL)
_TEX_UNESCAPE = [(r"\textless{}", "<"), (r"\textgreater{}", ">"), (r"\%", "%"), (r"\_", "_"), (r"\#", "#"),
                 (r"\$", "$"), (r"\{", "{"), (r"\}", "}"), (r"\textbackslash{}", "\\"), ("{}", "")]


def _tex_cell(cell: str) -> str:
    cell = re.sub(r"\\(toprule|midrule|bottomrule|hline|cline\{[^}]*\}|endhead|endfirsthead|endfoot|endlastfoot)",
                  "", cell)
    cell = re.sub(r"\\(textbf|textit|emph|multicolumn\{[^}]*\}\{[^}]*\}|multirow\{[^}]*\}\{[^}]*\})\{", "{", cell)
    for a, b in _TEX_UNESCAPE:
        cell = cell.replace(a, b)
    return " ".join(cell.replace("{", "").replace("}", "").split())


def _latex(text: str, where: str, content: Content) -> None:
    for i, match in enumerate(_TEX_ENV.finditer(text), start=1):
        body = match.group(2)
        body = re.sub(r"^\s*\{[^{}]*(\{[^{}]*\}[^{}]*)*\}", "", body, count=1)  # the column spec
        rows = []
        for line in re.split(r"\\\\", body):
            cells = [_tex_cell(c) for c in re.split(r"(?<!\\)&", line)]
            if any(cells):
                rows.append(cells)
        if rows:
            content.tables.append(Table(f"{where}tabular {i}", rows[0], rows[1:]))
    prose = _TEX_ENV.sub(" ", text)
    content.texts.append((where or "text", _tex_cell(prose.replace("\\\\", "\n"))))


def text_tables(text: str, where: str) -> list[Table]:
    """Aligned plain-text tables (a printed DataFrame): blocks whose lines split on 2+ spaces alike."""
    tables: list[Table] = []
    block: list[list[str]] = []

    def flush() -> None:
        if len(block) >= 2:
            width = len(block[0])
            body = [r for r in block[1:] if len(r) in (width, width + 1)]
            if width >= 1 and len(body) >= max(1, (len(block) - 1) * 0.6):
                header = block[0]
                rows = [r if len(r) == width + 1 else [""] + r for r in body]
                tables.append(Table(f"{where}text table {len(tables) + 1}", [""] + header, rows))
        block.clear()

    for line in text.splitlines():
        fields = [f for f in re.split(r"\s{2,}", line.strip()) if f]
        if len(fields) >= 2 or (block and len(fields) >= 1 and len(line) - len(line.lstrip()) > 1):
            block.append(fields)
        else:
            flush()
    flush()
    return tables


def _json_tables(value: Any, path: str, content: Content, depth: int = 0) -> None:
    """Lists of records become tables, mappings of scalars one-row tables; recursion into the rest."""
    if depth > 60:
        raise Unreadable("JSON nested too deeply to audit")
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list))}
        lists = {k: v for k, v in value.items() if isinstance(v, list) and v and all(
            not isinstance(x, (dict, list)) for x in v)}
        if scalars:
            content.tables.append(Table(path or "JSON", list(scalars), [list(scalars.values())]))
        for k, v in lists.items():
            content.tables.append(Table(f"{path}.{k}" if path else str(k), [k], [[x] for x in v]))
        for k, v in value.items():
            if isinstance(v, (dict, list)) and k not in lists:
                _json_tables(v, f"{path}.{k}" if path else str(k), content, depth + 1)
    elif isinstance(value, list):
        records = [v for v in value if isinstance(v, dict)]
        if records and len(records) == len(value):
            keys: list[str] = []
            for r in records:
                keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
            if keys:
                content.tables.append(Table(path or "JSON", keys, [[r.get(k) for k in keys] for r in records]))
            for i, r in enumerate(records):
                for k, v in r.items():
                    if isinstance(v, (dict, list)):
                        _json_tables(v, f"{path}[{i}].{k}", content, depth + 1)
        else:
            for i, v in enumerate(value):
                if isinstance(v, (dict, list)):
                    _json_tables(v, f"{path}[{i}]", content, depth + 1)
                elif isinstance(v, str):
                    content.texts.append((f"{path}[{i}]", v))
    elif isinstance(value, str):
        content.texts.append((path, value))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise Unreadable(f"not valid JSON ({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})"
                         ) from None


def _json(text: str, content: Content, name: str) -> None:
    data = _loads(text)
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, str) and schema in MODEL_SCHEMAS:
        content.model_output = True
    extras = schema == "rp2pr_eval.outcome_extras" or (schema is None and name.endswith(".extras.json"))
    if isinstance(data, dict) and extras:
        model = Content()
        _json_tables({k: v for k, v in data.items() if k in MODEL_KEYS}, "", model)
        for table in model.tables:
            table.model_output = True
        content.tables += model.tables
        content.texts += model.texts
        _json_tables({k: v for k, v in data.items() if k not in MODEL_KEYS}, "", content)
        return
    _json_tables(data, "", content)


def _join(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _notebook(text: str, content: Content) -> None:
    book = _loads(text)
    if not isinstance(book, dict) or not isinstance(book.get("cells"), list):
        raise Unreadable("not a notebook (no list of cells)")
    for n, cell in enumerate(book["cells"], start=1):
        if not isinstance(cell, dict):
            raise Unreadable(f"not a notebook (cell {n} is not an object)")
        if cell.get("cell_type") == "markdown":
            _markdown(_join(cell.get("source")), f"cell {n} (Markdown) ", content)
            continue
        outputs = cell.get("outputs") or []
        if not isinstance(outputs, list):
            raise Unreadable(f"not a notebook (outputs of cell {n} are not a list)")
        for m, out in enumerate(outputs, start=1):
            if not isinstance(out, dict):
                continue
            where = f"cell {n} output {m} "
            if "text" in out:
                stream = _join(out.get("text"))
                content.tables += text_tables(stream, where)
                content.texts.append((where, stream))
            if out.get("output_type") == "error":
                content.texts.append((where, "\n".join(str(t) for t in out.get("traceback") or [])))
            data = out.get("data") or {}
            if not isinstance(data, dict):
                continue
            if "text/html" in data:
                _markup(_join(data["text/html"]), where, content)
            if "text/markdown" in data:
                _markdown(_join(data["text/markdown"]), where, content)
            if "text/latex" in data:
                _latex(_join(data["text/latex"]), where, content)
            if "application/json" in data:
                _json_tables(data["application/json"], where.strip(), content)
            if "text/plain" in data and not ({"text/html", "text/markdown"} & set(data)):
                plain = _join(data["text/plain"])
                content.tables += text_tables(plain, where)
                content.texts.append((where, plain))


def _parquet(path: Path, max_bytes: int, content: Content) -> None:
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > max_bytes or meta.num_rows * max(1, meta.num_columns) > _MAX_CELLS:
            raise Unreadable(f"too large to audit ({meta.num_rows:,} rows, {size:,} bytes uncompressed)")
        frame = pq.read_table(path).to_pandas()
    except Unreadable:
        raise
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise Unreadable(f"not a readable Parquet file ({type(exc).__name__})") from None
    _frame(frame, "", content)


def _frame(frame: Any, where: str, content: Content) -> None:
    frame = frame.reset_index() if not _default_index(frame) else frame
    header = [str(c) for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    content.tables.append(Table(where, header, rows))


def _default_index(frame: Any) -> bool:
    import pandas as pd

    return isinstance(frame.index, pd.RangeIndex) and frame.index.name is None


def _excel(data: bytes, max_bytes: int, content: Content) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            total = sum(i.file_size for i in z.infolist())
        if total > max_bytes:
            raise Unreadable(f"decompresses to more than {max_bytes:,} bytes")
        import pandas as pd

        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, header=None, dtype=object)
    except Unreadable:
        raise
    except Exception as exc:
        raise Unreadable(f"not a readable Excel file ({type(exc).__name__})") from None
    for name, sheet in sheets.items():
        rows = sheet.where(sheet.notna(), None).to_numpy().tolist()
        if rows:
            content.tables.append(Table(f"sheet {name!r} ", [str(c) if c is not None else "" for c in rows[0]],
                                        rows[1:]))


def _npy(data: bytes, content: Content, name: str) -> None:
    import numpy as np

    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise Unreadable(f"not a readable NumPy array without pickles ({type(exc).__name__})") from None
    if not isinstance(array, np.ndarray):
        raise Unreadable("not a single NumPy array")
    flat = array.ravel()
    if flat.dtype.kind in "US":
        content.texts.append(("array", " ".join(str(x) for x in flat[:1_000_000])))
    elif name.endswith(".ri_draws.npy"):
        content.model_output = True   # the randomisation draws: model output
    elif flat.dtype.kind in "iub" or (flat.dtype.kind == "f" and np.all(np.mod(flat[np.isfinite(flat)], 1) == 0)):
        content.tables.append(Table("array", ["values"], [[x] for x in flat[:1_000_000].tolist()]))


def read_content(path: Path, *, max_bytes: int = MAX_BYTES) -> Content | None:
    """What the file shows; ``None`` for an image (not read). Raises :class:`Unreadable`."""
    name = path.name.lower()
    suffixes = [s for s in path.suffixes[-2:]]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix in IMAGE_SUFFIXES:
        return None
    content = Content()
    try:
        if suffix == ".parquet" or suffix == ".pq":
            _parquet(path, max_bytes, content)
            return content
        data = _read_bytes(path, max_bytes)
    except OSError as exc:
        raise Unreadable(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if suffix in (".gz", ".gzip"):
        data = gunzip(data, max_bytes)
        name = name[: -len(suffix)]
        suffix = Path(name).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        _excel(data, max_bytes, content)
        return content
    if suffix == ".npy":
        _npy(data, content, name)
        return content
    text = decode(data, content.notes)
    if suffix in (".csv", ".tsv", ".tab"):
        content.tables.append(_csv(text, "\t" if suffix in (".tsv", ".tab") else ",", ""))
    elif suffix == ".ipynb":
        _notebook(text, content)
    elif suffix in (".json", ".geojson"):
        _json(text, content, name)
    elif suffix in (".html", ".htm", ".svg", ".xml", ".xhtml"):
        _markup(text, "", content)
    elif suffix in (".md", ".markdown"):
        _markdown(text, "", content)
    elif suffix in (".tex", ".latex"):
        _latex(text, "", content)
    else:   # .txt, .log and anything else that decodes as text
        content.tables += text_tables(text, "")
        content.texts.append(("text", text))
    return content


__all__ = ["IMAGE_SUFFIXES", "MAX_BYTES", "MODEL_KEYS", "MODEL_SCHEMAS", "Content", "Table", "Unreadable",
           "decode", "gunzip", "read_content", "text_tables"]
