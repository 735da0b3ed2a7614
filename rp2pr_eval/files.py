"""Files written whole or not at all, and inputs read within bounds.

Every file the package writes goes through :func:`atomic_path` (or the two helpers on top of it):
the content is written to a hidden temporary file beside the target (same folder, so the final
``os.replace`` is atomic on POSIX and Windows) and renamed onto the target only when complete. An
interrupted write (Ctrl-C, ``kill``, a full disk, an exception) leaves the previous file untouched and
removes the temporary one; only a hard kill (SIGKILL, power loss) can leave a hidden
``.<name>.<pid>.tmp`` behind, never a truncated file under the real name.

Inputs are bounded (:func:`check_input_file`, :func:`limited_gzip`): a file larger than the limit, a
gzip stream that expands beyond it (a "gzip bomb"), or a sparse file of zeros is refused with a
one-line error instead of exhausting memory or disk.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import reprlib
import zlib
from collections.abc import Iterator
from pathlib import Path

from rp2pr_eval.errors import DataError, ParameterError

#: Largest input file read by default (bytes on disk, and bytes after decompression); override with the
#: environment variable ``RP2PR_EVAL_MAX_INPUT_BYTES`` (e.g. for a national extract larger than 2 GiB).
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3
#: Largest parameter (YAML/JSON) file read.
MAX_PARAMETER_BYTES = 1024**2

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = 6
_SHORT.maxdict = 6
_SHORT.maxlevel = 2


def short_repr(value: object) -> str:
    """A bounded ``repr`` for error messages (at most ~60 characters, two levels of nesting).

    A hostile value (a YAML "billion laughs" structure, a megabyte string) is quoted as a short
    excerpt instead of being expanded into the message.
    """
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def max_input_bytes() -> int:
    """The input size limit in force (:data:`DEFAULT_MAX_INPUT_BYTES` unless the environment overrides it)."""
    raw = os.environ.get("RP2PR_EVAL_MAX_INPUT_BYTES")
    if raw is None:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ParameterError(f"RP2PR_EVAL_MAX_INPUT_BYTES={short_repr(raw)} is not a whole number of bytes") from None
    if value <= 0:
        raise ParameterError(f"RP2PR_EVAL_MAX_INPUT_BYTES={value} must be positive")
    return value


def check_input_file(path: str | Path, *, limit: int | None = None, what: str = "input file") -> Path:
    """Refuse a missing, non-regular, oversized or sparse (mostly unallocated) input file.

    Raises
    ------
    DataError
        Naming the file and the limit.
    """
    path = Path(path)
    limit = max_input_bytes() if limit is None else limit
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not path.is_file():
        raise DataError(f"{path}: {what} is not a regular file")
    if st.st_size > limit:
        raise DataError(f"{path}: {what} is {st.st_size / 1024**2:,.0f} MiB, over the limit of "
                        f"{limit / 1024**2:,.0f} MiB (set RP2PR_EVAL_MAX_INPUT_BYTES to read it)")
    blocks = getattr(st, "st_blocks", None)
    if blocks is not None and st.st_size > 16 * 1024**2 and blocks * 512 < st.st_size // 8:
        raise DataError(f"{path}: {what} is a sparse file ({st.st_size / 1024**2:,.0f} MiB of which "
                        f"{blocks * 512 / 1024**2:,.0f} MiB on disk): not a data extract")
    return path


class _LimitedReader(io.RawIOBase):
    """A binary stream that raises :class:`DataError` once more than ``limit`` bytes were read."""

    def __init__(self, raw, limit: int, name: str) -> None:
        self._raw, self._limit, self._name, self._seen = raw, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self._raw.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self._name}: not a valid gzip file: corrupt or truncated ({exc})") from None
        self._seen += n or 0
        if self._seen > self._limit:
            raise DataError(f"{self._name}: decompresses to more than {self._limit / 1024**2:,.0f} MiB, over the "
                            "limit (a damaged or hostile file?); raise the limit (max_bytes= or the environment "
                            "variable RP2PR_EVAL_MAX_INPUT_BYTES) to read it")
        return n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        super().close()


def limited_gzip(path: str | Path, *, limit: int | None = None) -> io.BufferedReader:
    """Open a ``.gz`` file for reading, refusing corrupt streams and output beyond ``limit`` bytes."""
    path = Path(path)
    limit = max_input_bytes() if limit is None else limit
    return io.BufferedReader(_LimitedReader(gzip.open(path, "rb"), limit, str(path)), buffer_size=1 << 20)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block ends without error.

    The temporary file is removed on any exception (including ``KeyboardInterrupt``) and the
    target is left as it was. Parent folders are created. A full disk or a read-only folder
    surfaces as :class:`OSError` with its usual message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def read_yaml(path: str | Path, *, what: str = "parameter file") -> dict:
    """Read a YAML file holding one mapping, safely and within bounds.

    Refuses, each with a one-line :class:`ParameterError` naming the file: a missing file or a
    folder, a file over 1 MiB, bytes that are not UTF-8 (with the byte and line), invalid YAML (its
    first line), a key given twice (PyYAML would silently keep the last), and a document that is not
    a mapping. An empty file is an empty mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: {what} not found" if not path.exists() else f"{path}: {what} is not a file")
    size = path.stat().st_size
    if size > MAX_PARAMETER_BYTES:
        raise ParameterError(f"{path}: {what} is {size / 1024**2:,.1f} MiB; parameter files are at most 1 MiB")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParameterError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8") from None

    class _Loader(yaml.SafeLoader):
        pass

    def _mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ParameterError(f"{path}: key {short_repr(key)} is given twice (line {key_node.start_mark.line + 1})")
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    try:
        values = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({short_repr(str(exc).splitlines()[0])})") from None
    except RecursionError:
        raise ParameterError(f"{path}: nested too deeply to be a parameter file") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ParameterError(f"{path}: expected a mapping of keys, got {type(values).__name__}")
    return values


def is_disk_full(exc: BaseException) -> bool:
    """True for an ``OSError`` meaning no space (or quota) is left on the device."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


__all__ = ["DEFAULT_MAX_INPUT_BYTES", "MAX_PARAMETER_BYTES", "atomic_path", "check_input_file", "is_disk_full",
           "limited_gzip", "max_input_bytes", "read_yaml", "short_repr", "write_bytes", "write_text"]
