"""Reading suppliers' files into a table of text: CSV/TSV, XLSX, JSON, JSON Lines, gzip/zip.

Every value is read as text; conversion happens later, through the contract, so that
``twelve`` or ``12,5`` is reported instead of silently coerced.

The path of one file: unpack (gzip, or a zip holding one data file; both inflated with a
bounded, streaming read) → detect the format (binary signature, then extension, then content)
→ for text, detect the encoding and delimiter → parse into positional text columns indexed by
spreadsheet row → check the header and the values (``_tabulate``).

CSV is parsed by the fastest parser that accepts the file exactly: pyarrow (multithreaded),
then pandas' C engine (pads short rows), then Python's csv module, which is slow but the
authority for row-level problems and names the row in its messages.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar

import charset_normalizer
import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from openpyxl.utils import get_column_letter

from supplyline.errors import FileRejected
from supplyline.settings import ReadLimits

__all__ = [
    "ACCEPTED_FORMATS",
    "ERROR_FILE_COLUMNS",
    "FileRejected",
    "RawTable",
    "neutralise_formula",
    "read_table",
    "restore_formula",
    "use_jemalloc",
]

ERROR_FILE_COLUMNS = ("_row", "_errors")

ACCEPTED_FORMATS = (
    "CSV or TXT separated by comma, semicolon, tab or pipe (.csv, .tsv, .txt), "
    "Excel workbook (.xlsx), JSON array of objects (.json), JSON Lines (.jsonl), "
    "each optionally compressed as .gz or as a .zip holding that one file"
)

_SAMPLE_BYTES = 64 * 1024
_CHUNK_BYTES = 1024 * 1024
# Below this many inflated bytes the inflate ratio is not checked: a tiny output is harmless,
# and tiny inputs (a few hundred bytes of headers) can legitimately have extreme ratios.
_RATIO_FLOOR_BYTES = 1024 * 1024
_EXCEL_MAX_ROWS = 1_048_576
_ARROW_BLOCK_BYTES = 8 * 1024 * 1024

_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_ZERO_PAD_FORMAT = re.compile(r"0+")
_LEADING_EMPTY_LINES = re.compile(r"(?:\r\n|\n|\r)+")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_WORD = re.compile(r"[^\W\d_]+")
# Central European letters that cp1252 shows as symbols, e.g. "Zażółć" as "Za¿ó³æ".
_SYMBOL_INSIDE_WORD = re.compile(r"\w[³¹¿£¥]\w")

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_XML_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")
# Workbook parts openpyxl parses as XML; images (an SVG may have a DOCTYPE) are not scanned.
_XML_PART_SUFFIXES = (".xml", ".rels", ".vml")
_BINARY_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": (
        "an Excel 97-2003 workbook (.xls) or a password-protected workbook; "
        "remove the password and save it as .xlsx or CSV"
    ),
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"\xfd7zXZ\x00": "an XZ archive",
    b"\x28\xb5\x2f\xfd": "a Zstandard archive",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".txt": "csv",
    ".psv": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zip")
_IGNORED_ZIP_FILES = frozenset({"thumbs.db", "desktop.ini"})
# The non-letters that Western European text shows when decoded as cp1252.
_WESTERN_SYMBOLS = frozenset("€£¥©®°±²³µ·«»¿¡“”„…•™\u00a0\u2013\u2014\u2018\u2019\u201a")

_T = TypeVar("_T")


@dataclass
class RawTable:
    """A file read as text.

    ``frame`` has one column per header, named by the header exactly as written in the file
    (original order), every value a ``str`` ("" when empty, never NaN); its index is the row
    number as a supplier sees it in a spreadsheet: header = row 1, first record = row 2 (a CSV
    record with embedded newlines is one row; JSON record N is row N+1; XLSX: the sheet's row).
    Rows that are entirely empty are dropped, keeping the other rows' numbers.
    """

    frame: pd.DataFrame
    format: str  # csv | xlsx | json | jsonl
    encoding: str | None = None  # text formats only
    delimiter: str | None = None  # csv only
    compression: str | None = None  # gzip | zip | None
    notes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def read_table(
    path: Path,
    *,
    delimiter: str | None = None,
    sheet: str | None = None,
    limits: ReadLimits | None = None,
) -> RawTable:
    """Read ``path`` into a RawTable, or raise FileRejected with a supplier-readable message.

    ``delimiter`` is used for CSV only when none can be detected; ``sheet`` names the XLSX
    sheet to read (default: the first).
    """
    if delimiter is not None and len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    use_jemalloc()
    limits = limits or ReadLimits()
    path = Path(path)
    _check_source_size(path, limits)
    with tempfile.TemporaryDirectory(prefix="supplyline-read-") as workdir:
        source = _unpack(path, Path(workdir), limits)
        return _read_source(source, delimiter=delimiter, sheet=sheet, limits=limits)


@lru_cache(maxsize=1)
def use_jemalloc() -> None:
    """Make jemalloc Arrow's memory pool in this process, where pyarrow has it.

    Reading, mapping and validating allocate and free hundreds of megabytes of Arrow buffers.
    With Arrow's default pool (mimalloc) a million-row check spent 3 to 4 s of system time,
    faulting in pages it had just given back; with jemalloc about 1.5 s (bench/README.md).
    """
    if "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def neutralise_formula(value: str) -> str:
    """Prefix ``'`` so that a spreadsheet shows ``value`` as text instead of running it.

    A value that already starts with ``'`` before a trigger character gets one more, so that
    ``restore_formula(neutralise_formula(v)) == v`` for every ``v``.
    """
    return "'" + value if _is_formula_like(value) else value


def restore_formula(value: str) -> str:
    """Undo neutralise_formula: drop the ``'`` the error-file writer put before a formula."""
    if value.startswith("'") and _is_formula_like(value[1:]):
        return value[1:]
    return value


def _is_formula_like(value: str) -> bool:
    unquoted = value.lstrip("'")
    return bool(unquoted) and unquoted[0] in _FORMULA_TRIGGERS


# --- unpacking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """The data file to parse (decompressed if needed) and the name that tells its format."""

    path: Path
    name: str
    compression: str | None


def _check_source_size(path: Path, limits: ReadLimits) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileRejected(f"The file cannot be opened: {exc.strerror or exc}.") from exc
    if size > limits.max_bytes:
        raise FileRejected(
            f"The file is {_size(size)}, more than the limit of {_size(limits.max_bytes)}. "
            "Split the catalog into smaller files."
        )
    if size == 0:
        raise _empty_file()


def _unpack(path: Path, workdir: Path, limits: ReadLimits) -> _Source:
    head = _read_head(path, 8)
    if head.startswith(_GZIP_MAGIC):
        return _Source(_gunzip(path, workdir, limits), _strip_compression(path.name), "gzip")
    if head.startswith(_ZIP_MAGICS):
        return _open_zip(path, workdir, limits)
    return _Source(path, path.name, None)


def _gunzip(path: Path, workdir: Path, limits: ReadLimits) -> Path:
    target = workdir / "gunzipped"
    compressed = path.stat().st_size
    try:
        with gzip.open(path, "rb") as source, target.open("wb") as sink:
            for chunk in _bounded_chunks(source, compressed, limits, "The gzip file"):
                sink.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FileRejected(
            f"The file is compressed with gzip but cannot be decompressed ({exc}); it is "
            "probably truncated or damaged. Compress the catalog again and send it again."
        ) from exc
    return target


def _open_zip(path: Path, workdir: Path, limits: ReadLimits) -> _Source:
    try:
        with zipfile.ZipFile(path) as archive:
            if _is_xlsx_archive(archive):
                return _Source(path, path.name, None)
            member = _single_data_member(archive)
            target = _extract_member(archive, member, workdir, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise FileRejected(
            f"The file is a zip archive (or an .xlsx workbook) that cannot be opened ({exc}); "
            "it is probably truncated or damaged. Create it again and send it again."
        ) from exc
    return _Source(target, PurePosixPath(member.filename).name, "zip")


def _is_xlsx_archive(archive: zipfile.ZipFile) -> bool:
    """True for an XLSX, False for a plain archive; other office files are refused here."""
    names = archive.namelist()
    if any(name.startswith("xl/") for name in names):
        return True
    if "[Content_Types].xml" in names:
        raise _unknown_format("an Office document that is not an Excel workbook, e.g. Word")
    if "mimetype" in names and "content.xml" in names:
        raise _unknown_format("an OpenDocument file (.ods, .odt); save it as .xlsx or CSV")
    return False


def _single_data_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    members = [info for info in archive.infolist() if _is_data_member(info)]
    if not members:
        raise FileRejected(
            "The zip archive holds no data file. Put the catalog file (CSV, XLSX, JSON or "
            "JSON Lines) in the zip, or send it without a zip."
        )
    if len(members) > 1:
        listed = ", ".join(f'"{info.filename}"' for info in members[:10])
        more = f" and {len(members) - 10} more" if len(members) > 10 else ""
        raise FileRejected(
            f"The zip archive holds {len(members)} files ({listed}{more}); it must hold "
            "exactly one catalog file. Send one zip per file."
        )
    return members[0]


def _is_data_member(info: zipfile.ZipInfo) -> bool:
    """Leave out folders and the files that macOS and Windows add to archives."""
    name = PurePosixPath(info.filename)
    return not (
        info.is_dir()
        or info.filename.startswith("__MACOSX/")
        or name.name.startswith(".")
        or name.name.lower() in _IGNORED_ZIP_FILES
    )


def _extract_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, workdir: Path, limits: ReadLimits
) -> Path:
    if member.flag_bits & 0x1:
        raise FileRejected(
            f'"{member.filename}" in the zip archive is password-protected. '
            "Send the archive without a password."
        )
    _check_declared_size(member, limits)
    target = workdir / "unzipped"
    what = f'"{member.filename}" in the zip archive'
    try:
        with archive.open(member) as source, target.open("wb") as sink:
            for chunk in _bounded_chunks(source, member.compress_size, limits, what):
                sink.write(chunk)
    except NotImplementedError as exc:
        raise FileRejected(
            f"{what} uses a compression method that is not supported ({exc}). "
            "Create the zip with the standard (deflate) compression."
        ) from exc
    return target


def _check_declared_size(member: zipfile.ZipInfo, limits: ReadLimits) -> None:
    """Refuse early when the zip says the member is too large (the actual size is checked too)."""
    bound = max(_RATIO_FLOOR_BYTES, limits.max_inflate_ratio * member.compress_size)
    if member.file_size > limits.max_bytes or member.file_size > bound:
        raise _bomb(
            f'"{member.filename}" in the archive',
            member.file_size,
            limits,
            compressed_size=member.compress_size,
        )


def _bounded_chunks(
    source: BinaryIO, compressed_size: int, limits: ReadLimits, what: str
) -> Iterator[bytes]:
    """Inflate ``source`` chunk by chunk, stopping as soon as a size limit is passed."""
    ratio_bound = max(_RATIO_FLOOR_BYTES, limits.max_inflate_ratio * max(compressed_size, 1))
    total = 0
    while chunk := source.read(_CHUNK_BYTES):
        total += len(chunk)
        if total > limits.max_bytes or total > ratio_bound:
            raise _bomb(what, total, limits, compressed_size=compressed_size)
        yield chunk


def _bomb(
    what: str, size: int, limits: ReadLimits, *, compressed_size: int | None = None
) -> FileRejected:
    """``size``: the inflated (or declared) size that passed a limit."""
    if size > limits.max_bytes:
        reason = f"more than {_size(limits.max_bytes)}, the largest file accepted"
    else:
        reason = (
            f"more than {limits.max_inflate_ratio} times its compressed size of "
            f"{_size(compressed_size or 0)}, which is how zip bombs look"
        )
    return FileRejected(
        f"{what} decompresses to {reason}. Reading stopped. Send the catalog uncompressed, "
        "or split it into smaller files."
    )


def _strip_compression(name: str) -> str:
    lowered = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- format detection --------------------------------------------------------------------


def _read_source(
    source: _Source, *, delimiter: str | None, sheet: str | None, limits: ReadLimits
) -> RawTable:
    head = _read_head(source.path, _SAMPLE_BYTES)
    if not head:
        raise _empty_file()
    if head.startswith(_GZIP_MAGIC) or head.startswith(_ZIP_MAGICS):
        return _read_archive_inside(source, sheet, limits)
    _reject_known_binary(head)
    encodings = _EncodingCandidates(source.path, head)
    text_head = head.decode(encodings.first, errors="replace")
    _reject_binary_text(head, encodings.first, text_head)
    if _is_blank_file(source.path, encodings.first, head, text_head):
        raise _empty_file()
    file_format = _text_format_from_name(source.name) or _format_from_text(text_head)
    if file_format == "json":
        return _read_json_file(source, encodings, limits, lines=False)
    if file_format == "jsonl":
        return _read_json_file(source, encodings, limits, lines=True)
    return _read_csv_file(source, encodings, text_head, delimiter, limits)


def _read_archive_inside(source: _Source, sheet: str | None, limits: ReadLimits) -> RawTable:
    """A zip at this point is an XLSX (possibly from inside a .gz or .zip) or a nested archive."""
    if _read_head(source.path, 8).startswith(_ZIP_MAGICS) and _is_xlsx_path(source.path):
        frame, notes = _read_xlsx(source.path, sheet, limits)
        return RawTable(frame=frame, format="xlsx", compression=source.compression, notes=notes)
    raise FileRejected(
        f'"{source.name}" is an archive inside an archive (or a damaged .xlsx). Send the '
        "catalog file itself, compressed at most once (.gz or .zip)."
    )


def _is_xlsx_path(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return _is_xlsx_archive(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileRejected(
            f"The file looks like an .xlsx workbook or a zip archive but cannot be opened "
            f"({exc}); it is probably truncated or damaged. Save it again and send it again."
        ) from exc


def _reject_known_binary(head: bytes) -> None:
    for signature, kind in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise _unknown_format(kind)


def _reject_binary_text(head: bytes, encoding: str, text: str) -> None:
    """A file that is not text (NUL bytes, control characters) is refused before parsing."""
    if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
        controls = sum(1 for char in text if char < " " and char not in "\t\r\n\f")
        if controls > len(text) // 10:
            raise _unknown_format(None)
        return
    if b"\x00" in head:
        raise _unknown_format(None)
    controls = sum(1 for byte in head if byte < 0x20 and byte not in b"\t\r\n\f\x1a")
    if controls > len(head) // 10:
        raise _unknown_format(None)


def _text_format_from_name(name: str) -> str | None:
    """csv, json or jsonl by extension; a text file named .xlsx is sniffed instead."""
    file_format = _EXTENSION_FORMATS.get(PurePosixPath(name.lower()).suffix)
    return None if file_format == "xlsx" else file_format


def _format_from_text(text: str) -> str:
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        first_line = stripped.split("\n", 1)[0]
        try:
            json.loads(first_line)
        except json.JSONDecodeError:
            return "json"
        return "jsonl"
    return "csv"


def _is_blank_file(path: Path, encoding: str, head: bytes, text_head: str) -> bool:
    if text_head.strip(" \t\r\n\f\ufeff\x00"):
        return False
    if len(head) < _SAMPLE_BYTES:
        return True
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            if decoder.decode(chunk).strip(" \t\r\n\f\ufeff\x00"):
                return False
    return True


# --- encodings ---------------------------------------------------------------------------


class _EncodingCandidates:
    """Encodings to try, best first: a byte order mark decides alone; otherwise strict UTF-8,
    then a guess from the bytes that are not UTF-8, then cp1252, then Latin-1 (never fails)."""

    def __init__(self, path: Path, head: bytes) -> None:
        self.path = path
        self.head = head
        self.marked = _bom_encoding(head) or _utf16_without_bom(head)
        self.first = self.marked or "utf-8"

    def __iter__(self) -> Iterator[str]:
        if self.marked:
            yield self.marked
            return
        yield "utf-8"
        guess = _guess_legacy_encoding(_undecodable_sample(self.path, self.head))
        yield guess
        if guess != "cp1252":
            yield "cp1252"
        yield "latin-1"


def _bom_encoding(head: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """Mostly-ASCII UTF-16 has a NUL in every other byte: odd positions for LE, even for BE."""
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nuls, odd_nuls = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nuls > 0.3 and even_nuls < 0.05:
        return "utf-16-le"
    if even_nuls > 0.3 and odd_nuls < 0.05:
        return "utf-16-be"
    return None


def _undecodable_sample(path: Path, head: bytes) -> bytes:
    """The head of the file plus the bytes around the first one that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                handle.seek(max(0, offset + exc.start - 4096))
                return head[: _SAMPLE_BYTES // 2] + b"\n" + handle.read(_SAMPLE_BYTES // 2)
            offset += len(chunk)
    return head


def _guess_legacy_encoding(sample: bytes) -> str:
    """cp1252 when the bytes read as Western European text in it, else charset-normalizer's
    guess. charset-normalizer alone often labels short French or German samples cp1250 or
    cp775, which turns è into č."""
    if _reads_as_western(sample):
        return "cp1252"
    match = charset_normalizer.from_bytes(sample).best()
    if match is None:
        return "cp1252"
    name = codecs.lookup(match.encoding).name
    return "cp1252" if name in {"utf-8", "ascii"} else name


def _reads_as_western(sample: bytes) -> bool:
    """In cp1252, Western text has a few accented letters per word and typographic marks;
    Cyrillic or Greek bytes become words made entirely of accented letters, and Central
    European letters become symbols such as ³ or ¿ inside words."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    letters = accented = 0
    for word in _WORD.findall(text):
        non_ascii = sum(1 for char in word if not char.isascii())
        if non_ascii:
            letters += len(word)
            accented += non_ascii
    symbols = [c for c in text if not c.isascii() and not c.isalpha()]
    if any(c not in _WESTERN_SYMBOLS for c in symbols) or _SYMBOL_INSIDE_WORD.search(text):
        return False
    return accented <= letters / 2


def _decode_with(
    encodings: _EncodingCandidates, attempt: Callable[[str], _T]
) -> tuple[_T, str, list[str]]:
    """Run ``attempt`` with each candidate encoding until one decodes the whole file."""
    tried: list[str] = []
    for encoding in encodings:
        try:
            result = attempt(encoding)
        except (UnicodeError, _Undecodable):
            tried.append(encoding)
            continue
        return result, encoding, _encoding_notes(encoding, encodings.marked)
    raise FileRejected(
        f"The file looks like {tried[0]} text (from its first bytes) but contains bytes that "
        f"are not valid {tried[0]}. Save it again as UTF-8 and send it again."
    )


def _encoding_notes(encoding: str, marked: str | None) -> list[str]:
    if encoding == "utf-8":
        return []
    if encoding == marked and encoding.endswith(("-le", "-be")):
        return [f"encoding {encoding} detected (no byte order mark)"]
    if encoding == marked:
        return [f"encoding {encoding} (byte order mark)"]
    return [f"encoding {encoding} detected"]


class _Undecodable(Exception):
    """The bytes are not valid in the encoding tried."""


# --- CSV ---------------------------------------------------------------------------------


class _ParserGaveUp(Exception):
    """A fast parser refused the file; the next one decides."""


def _read_csv_file(
    source: _Source,
    encodings: _EncodingCandidates,
    text_head: str,
    delimiter: str | None,
    limits: ReadLimits,
) -> RawTable:
    complete = source.path.stat().st_size <= _SAMPLE_BYTES
    sniffed = _sniff_delimiter(text_head, complete=complete)
    chosen = sniffed or delimiter or ","
    notes = (
        [] if sniffed else [f"no delimiter detected; read as {_delimiter_name(chosen)}-separated"]
    )
    layout = _csv_layout(text_head, chosen, complete)

    def attempt(encoding: str) -> pd.DataFrame:
        return _parse_csv(source.path, encoding, layout, limits)

    raw, encoding, encoding_notes = _decode_with(encodings, attempt)
    header_row, header, body = _split_header(raw)
    frame, table_notes = _tabulate(header, body, header_row, limits)
    return RawTable(
        frame=frame,
        format="csv",
        encoding=encoding,
        delimiter=chosen,
        compression=source.compression,
        notes=encoding_notes + notes + table_notes,
    )


def _sniff_delimiter(text: str, *, complete: bool) -> str | None:
    """The delimiter that splits the first rows into the same number (≥ 2) of fields."""
    best: str | None = None
    best_score = (0.0, 0)
    for candidate in _DELIMITERS:
        rows = _sample_rows(text, candidate, complete)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(row) == width for row in rows) / len(rows), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _sample_rows(text: str, delimiter: str, complete: bool) -> list[list[str]]:
    try:
        rows = [
            row
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(row)
        ]
    except csv.Error:
        return []
    if not complete and len(rows) > 1:
        rows.pop()
    return rows[:100]


@dataclass(frozen=True)
class _CsvLayout:
    """What the fast parsers need to know before they start."""

    delimiter: str
    skip: int = 0  # empty lines before the first record
    width: int | None = None  # fields in the first record, when the sample holds all of it


def _csv_layout(text: str, delimiter: str, complete: bool) -> _CsvLayout:
    blank = _LEADING_EMPTY_LINES.match(text)
    start = blank.end() if blank else 0
    skip = len(_LINE_BREAK.findall(text[:start]))
    try:
        records = list(csv.reader(io.StringIO(text[start:], newline=""), delimiter=delimiter))
    except csv.Error:
        return _CsvLayout(delimiter, skip)
    if not records or not any(records[0]) or (len(records) < 2 and not complete):
        return _CsvLayout(delimiter, skip)
    return _CsvLayout(delimiter, skip, len(records[0]))


def _parse_csv(path: Path, encoding: str, layout: _CsvLayout, limits: ReadLimits) -> pd.DataFrame:
    """Records as positional text columns, indexed by record number (1-based)."""
    if layout.width is not None and _quotes_balanced(path, encoding):
        try:
            return _parse_csv_arrow(path, encoding, layout)
        except _ParserGaveUp:
            pass
    try:
        return _parse_csv_pandas(path, encoding, layout)
    except _ParserGaveUp:
        return _parse_csv_exact(path, encoding, layout.delimiter, limits)


def _quotes_balanced(path: Path, encoding: str) -> bool:
    """An odd number of double quotes may mean a quote left open to the end of the file, which
    pyarrow accepts silently; pandas and the csv module report it. Only ASCII-compatible
    encodings are counted; UTF-16/32 files skip pyarrow. Counted by numpy in one reused
    buffer: four times less CPU than ``bytes.count`` on a new chunk each time."""
    if encoding.startswith(("utf-16", "utf-32")):
        return False
    count = 0
    buffer = bytearray(_CHUNK_BYTES)
    octets = np.frombuffer(buffer, dtype=np.uint8)
    with path.open("rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            count += int(np.count_nonzero(octets[:size] == ord('"')))
    return count % 2 == 0


def _parse_csv_arrow(path: Path, encoding: str, layout: _CsvLayout) -> pd.DataFrame:
    names = [str(position) for position in range(layout.width or 0)]
    read_options = pa_csv.ReadOptions(
        column_names=names,
        skip_rows=layout.skip,
        encoding="utf8" if encoding in {"utf-8", "utf-8-sig"} else encoding,
        block_size=_ARROW_BLOCK_BYTES,
    )
    parse_options = pa_csv.ParseOptions(
        delimiter=layout.delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        ignore_empty_lines=False,
    )
    convert_options = pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=True,
    )
    try:
        table = pa_csv.read_csv(
            path,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc):
            raise _Undecodable(str(exc)) from exc
        raise _ParserGaveUp(str(exc)) from exc
    return _positional(table.to_pandas(), layout.skip)


def _parse_csv_pandas(path: Path, encoding: str, layout: _CsvLayout) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            path,
            sep=layout.delimiter,
            skiprows=layout.skip,
            header=None,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            quotechar='"',
            doublequote=True,
            engine="c",
            encoding=encoding,
            encoding_errors="strict",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _ParserGaveUp(str(exc)) from exc
    return _positional(frame, layout.skip)


def _positional(frame: pd.DataFrame, skipped: int) -> pd.DataFrame:
    frame.columns = pd.RangeIndex(frame.shape[1])
    frame.index = pd.RangeIndex(skipped + 1, skipped + len(frame) + 1)
    return frame


def _parse_csv_exact(path: Path, encoding: str, delimiter: str, limits: ReadLimits) -> pd.DataFrame:
    """Python's csv module: slow, but it knows which record it is on, so it names the row."""
    if csv.field_size_limit() <= limits.max_field_chars:
        csv.field_size_limit(limits.max_field_chars + 1)
    rows: list[list[str]] = []
    numbers: list[int] = []
    header: list[str] = []
    number = 0
    with path.open(encoding=encoding, errors="strict", newline="") as handle:
        reader = csv.reader(
            handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=True
        )
        try:
            for number, record in enumerate(reader, start=1):
                if not any(value.strip() for value in record):
                    continue
                if not header:
                    header = record
                    _check_named_columns(header, number, limits)
                elif len(record) > len(header):
                    raise _too_many_fields(number, len(record), len(header), delimiter)
                _check_record_fields(record, number, limits, header)
                rows.append(record + [""] * (len(header) - len(record)))
                numbers.append(number)
        except csv.Error as exc:
            raise _csv_error(exc, number + 1, limits) from exc
    return pd.DataFrame(
        rows, index=pd.Index(numbers), columns=pd.RangeIndex(len(header)), dtype=str
    )


def _check_record_fields(
    record: list[str], number: int, limits: ReadLimits, header: list[str] | None = None
) -> None:
    for position, value in enumerate(record):
        if len(value) > limits.max_field_chars:
            name = header[position] if header and position < len(header) else None
            raise _giant_field(number, _column_label(position, name), len(value), limits)


def _too_many_fields(number: int, count: int, width: int, delimiter: str) -> FileRejected:
    name = _delimiter_name(delimiter)
    return FileRejected(
        f"Row {number} has {count} values but the header has {width} columns. This usually "
        f"means a value contains the delimiter ({name}) without being quoted. Put double "
        f'quotes around values that contain a {name}, e.g. "Red{delimiter} large".',
        row=number,
    )


def _csv_error(exc: csv.Error, number: int, limits: ReadLimits) -> FileRejected:
    message = str(exc)
    if "field larger than field limit" in message:
        return FileRejected(
            f"Row {number} has a value longer than {limits.max_field_chars:,} characters. "
            'Check that row for a double quote (") that is opened and never closed.',
            row=number,
        )
    if "unexpected end of data" in message:
        return FileRejected(
            f"A quoted value that starts in row {number} is never closed: the file ends inside "
            'double quotes. Check that row for a stray double quote ("): close it, or write '
            'it twice ("") inside a quoted value.',
            row=number,
        )
    return FileRejected(
        f"Row {number} cannot be read as CSV ({message}). Check its quotes: a value with "
        'quotes must be wholly quoted, with inner quotes doubled ("").',
        row=number,
    )


def _delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def _split_header(raw: pd.DataFrame) -> tuple[int, list[str], pd.DataFrame]:
    """The first non-empty record is the header; the records after it are the body."""
    if len(raw) == 0:
        raise _empty_file()
    if any(str(value).strip() for value in raw.iloc[0]):
        first = 0
    else:
        positions = np.flatnonzero(_filled_rows(raw))
        if len(positions) == 0:
            raise _empty_file()
        first = int(positions[0])
    header = [str(value) for value in raw.iloc[first].tolist()]
    return int(raw.index[first]), header, raw.iloc[first + 1 :]


def _has_text(values: pd.Series) -> np.ndarray:
    """Values that are neither empty nor only whitespace (whitespace reads as empty later)."""
    return (values != "").to_numpy(dtype=bool) & ~values.str.isspace().to_numpy(dtype=bool)


def _filled_rows(frame: pd.DataFrame) -> np.ndarray:
    filled = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        filled |= _has_text(frame[column])
    return filled


# --- XLSX --------------------------------------------------------------------------------


def _read_xlsx(path: Path, sheet: str | None, limits: ReadLimits) -> tuple[pd.DataFrame, list[str]]:
    _check_xlsx_members(path, limits)
    with path.open("rb") as handle:  # a handle, not a path: openpyxl checks the extension
        title, numbers, rows, notes = _read_workbook(handle, sheet, limits)
    if not rows:
        raise FileRejected(
            f'The sheet "{title}" is empty: it has no header row and no products. '
            "Put the header in the first row and one product per row below it.",
        )
    width = max(len(row) for row in rows)
    padded = [row + [""] * (width - len(row)) for row in rows]
    raw = pd.DataFrame(padded, index=pd.Index(numbers), columns=pd.RangeIndex(width), dtype=str)
    frame, table_notes = _tabulate(padded[0], raw.iloc[1:], numbers[0], limits)
    return frame, notes + table_notes


def _read_workbook(
    handle: BinaryIO, sheet: str | None, limits: ReadLimits
) -> tuple[str, list[int], list[list[str]], list[str]]:
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        raise _damaged_xlsx(exc) from exc
    try:
        worksheet, notes = _pick_sheet(workbook, sheet)
        numbers, rows = _sheet_rows(worksheet, limits)
    except FileRejected:
        raise
    except Exception as exc:
        raise _damaged_xlsx(exc) from exc
    finally:
        workbook.close()
    return worksheet.title, numbers, rows, notes


def _check_xlsx_members(path: Path, limits: ReadLimits) -> None:
    """Bound every part of the workbook before openpyxl inflates it, and refuse XML with a
    DOCTYPE or entities (billion laughs); defusedxml in openpyxl refuses them too."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        declared = sum(info.file_size for info in members)
        if declared > limits.max_bytes:
            raise _bomb("The workbook", declared, limits)
        for info in members:
            _check_declared_size(info, limits)
        try:
            for info in members:
                total += _scan_xlsx_member(archive, info, limits)
                if total > limits.max_bytes:
                    raise _bomb("The workbook", total, limits)
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            raise _damaged_xlsx(exc) from exc


def _scan_xlsx_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ReadLimits) -> int:
    size = 0
    tail = b""
    what = f'The part "{info.filename}" of the workbook'
    is_xml = info.filename.lower().endswith(_XML_PART_SUFFIXES)
    with archive.open(info) as source:
        for chunk in _bounded_chunks(source, info.compress_size, limits, what):
            size += len(chunk)
            window = tail + chunk
            if is_xml and any(marker in window for marker in _XML_DECLARATIONS):
                raise FileRejected(
                    f'The workbook part "{info.filename}" declares XML entities or a DOCTYPE, '
                    "which Excel never writes and which are refused for safety. Open the file "
                    "in Excel and save it again as .xlsx, or export it as CSV."
                )
            tail = chunk[-16:]
    return size


def _pick_sheet(workbook: Any, sheet: str | None) -> tuple[Any, list[str]]:
    sheets = workbook.worksheets
    names = [ws.title for ws in sheets]
    if not sheets:
        raise FileRejected("The workbook has no worksheet. Put the catalog in the first sheet.")
    if sheet is None:
        notes = [f'read sheet "{names[0]}", the first of {len(names)}'] if len(sheets) > 1 else []
        return sheets[0], notes
    wanted = sheet.strip().casefold()
    exact = [ws for ws in sheets if ws.title == sheet]
    loose = [ws for ws in sheets if ws.title.strip().casefold() == wanted]
    if exact or loose:
        return (exact or loose)[0], []
    listed = ", ".join(f'"{name}"' for name in names)
    raise FileRejected(
        f'The workbook has no sheet named "{sheet}"; its sheets are {listed}. Rename the '
        "sheet that holds the catalog, or ask us to read another sheet."
    )


def _sheet_rows(worksheet: Any, limits: ReadLimits) -> tuple[list[int], list[list[str]]]:
    """Non-empty rows as text with their real row numbers. The sheet's declared dimensions
    are ignored: they are often wrong, and a hostile one would pad every row."""
    worksheet.reset_dimensions()
    numbers: list[int] = []
    rows: list[list[str]] = []
    for number, cells in enumerate(worksheet.iter_rows(min_row=1, min_col=1), start=1):
        if number > _EXCEL_MAX_ROWS:
            raise FileRejected(
                f'The sheet "{worksheet.title}" has rows beyond row {_EXCEL_MAX_ROWS:,}, the '
                "most Excel allows; the workbook is damaged. Save it again from Excel."
            )
        values = _trim_trailing_empty([_cell_text(cell) for cell in cells])
        if not any(value.strip() for value in values):
            continue
        if len(values) > limits.max_columns:
            raise _too_many_columns(len(values), number, limits)
        _check_record_fields(values, number, limits)
        numbers.append(number)
        rows.append(values)
    return numbers, rows


def _trim_trailing_empty(values: list[str]) -> list[str]:
    end = len(values)
    while end and values[end - 1] == "":
        end -= 1
    return values[:end]


def _cell_text(cell: Any) -> str:
    """A cell as the supplier sees it: no 1.2345678905E10, no lost leading zeros."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number_text(value, cell.number_format)
    if isinstance(value, datetime):
        is_midnight = value.time() == time(0) and value.tzinfo is None
        return value.date().isoformat() if is_midnight else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _number_text(value: float, number_format: str | None) -> str:
    if isinstance(value, float):
        if not value.is_integer():
            return format(Decimal(repr(value)), "f")
        value = int(value)
    text = str(value)
    pattern = number_format or ""
    if value >= 0 and _ZERO_PAD_FORMAT.fullmatch(pattern):
        return text.zfill(len(pattern))
    return text


def _damaged_xlsx(exc: BaseException) -> FileRejected:
    cause: BaseException | None = exc
    while cause is not None and not type(cause).__module__.startswith("defusedxml"):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return FileRejected(
            "The workbook contains XML entity declarations, which are refused for safety. "
            "Open the file in Excel and save it again as .xlsx, or export it as CSV."
        )
    return FileRejected(
        f"The .xlsx workbook cannot be read ({type(exc).__name__}: {exc}); it is probably "
        "damaged or not really an Excel file. Open it in Excel, save it again as .xlsx, and "
        "send it again."
    )


# --- JSON --------------------------------------------------------------------------------


class _JsonNumber(str):
    """A JSON number kept as the text the supplier wrote ("12.50" stays "12.50")."""


def _read_json_file(
    source: _Source, encodings: _EncodingCandidates, limits: ReadLimits, *, lines: bool
) -> RawTable:
    data = source.path.read_bytes()

    def attempt(encoding: str) -> str:
        return data.decode(encoding)

    text, encoding, notes = _decode_with(encodings, attempt)
    numbered = _json_lines_records(text) if lines else _json_array_records(text)
    header, rows, numbers = _json_columns(numbered, limits)
    raw = pd.DataFrame(rows, index=pd.Index(numbers), columns=pd.RangeIndex(len(header)), dtype=str)
    frame, table_notes = _tabulate(header, raw, 1, limits)
    return RawTable(
        frame=frame,
        format="jsonl" if lines else "json",
        encoding=encoding,
        compression=source.compression,
        notes=notes + table_notes,
    )


def _load_json(text: str) -> Any:
    return json.loads(
        text, parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=_JsonNumber
    )


def _json_array_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = _load_json(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise FileRejected(
            f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            'Expected an array of objects, one per product: [{"sku": "A1", ...}, ...].'
        ) from exc
    if not isinstance(data, list):
        raise FileRejected(
            f"The JSON file holds {_describe_json(data)}; expected an array of objects, one "
            'per product: [{"sku": "A1", ...}, ...]. Put the products in a top-level array.'
        )
    records = []
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise FileRejected(
                f"Record {number} of the JSON array (row {number + 1}) is "
                f"{_describe_json(record)}; every record must be an object such as "
                '{"sku": "A1", "name": "..."}.',
                row=number + 1,
            )
        records.append((number + 1, record))
    return records


def _json_lines_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Line L is row L + 1; blank lines are skipped but keep their place, as in CSV.

    Lines are split on \\n only: U+2028 and friends may appear inside JSON strings.
    """
    records = []
    for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = _load_json(line)
        except json.JSONDecodeError as exc:
            raise FileRejected(
                f"Line {number} is not valid JSON: {exc.msg} (column {exc.colno}). In JSON "
                "Lines every line must hold one complete JSON object.",
                row=number + 1,
            ) from exc
        if not isinstance(record, dict):
            raise FileRejected(
                f"Line {number} holds {_describe_json(record)}; in JSON Lines every line must "
                'hold one object such as {"sku": "A1", "name": "..."}.',
                row=number + 1,
            )
        records.append((number + 1, record))
    return records


def _json_columns(
    records: list[tuple[int, dict[str, Any]]], limits: ReadLimits
) -> tuple[list[str], list[list[str]], list[int]]:
    """Columns = the union of keys in first-seen order; a missing key reads as ""."""
    columns: dict[str, None] = {}
    for number, record in records:
        for key in record:
            if key not in columns:
                columns[key] = None
                if len(columns) > limits.max_columns:
                    raise _too_many_columns(len(columns), number, limits)
    header = list(columns)
    rows = [
        [_json_text(record[key]) if key in record else "" for key in header]
        for _, record in records
    ]
    return header, rows, [number for number, _ in records]


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return str.__str__(value)
    return _compact_json(value)


def _compact_json(value: Any) -> str:
    """Nested values as compact JSON, numbers exactly as written."""
    if isinstance(value, _JsonNumber):
        return str.__str__(value)
    if isinstance(value, dict):
        items = (
            f"{json.dumps(key, ensure_ascii=False)}:{_compact_json(item)}"
            for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact_json(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _describe_json(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(f'"{key}"' for key in list(value)[:5])
        return f"an object (with keys {keys})" if value else "an empty object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, _JsonNumber):
        return f"a number ({value})"
    if isinstance(value, str):
        return f'a text ("{value[:40]}")'
    if value is None:
        return "null"
    return f"a boolean ({_json_text(value)})"


# --- header and values, all formats ------------------------------------------------------


def _tabulate(
    header: list[str], body: pd.DataFrame, header_row: int, limits: ReadLimits
) -> tuple[pd.DataFrame, list[str]]:
    """Name the positional columns of ``body`` after ``header`` and check them.

    Drops error-file columns and columns with neither a name nor a value; refuses a column
    with values but no name, duplicate names, too many columns and giant values; drops
    empty rows; restores values that an error file neutralised against formulas. A value of
    only whitespace counts as empty here (the validator strips values), but is kept as is.
    """
    names = [restore_formula(name) for name in header]
    names += [""] * (body.shape[1] - len(names))
    notes: list[str] = []
    error_columns = [p for p, name in enumerate(names) if _is_error_file_column(name)]
    if error_columns:
        notes.append(
            "error-file columns " + ", ".join(names[p] for p in error_columns) + " ignored"
        )
    candidates = [p for p in range(len(names)) if p not in error_columns]
    _check_named_columns([names[p] for p in candidates], header_row, limits)
    _check_duplicates(names, candidates, header_row)
    kept: list[int] = []
    filled = np.zeros(len(body), dtype=bool)
    unnamed_empty = 0
    for position in candidates:
        values = body[position]
        if not names[position].strip():
            has_value = _has_text(values)
            if has_value.any():
                raise _unnamed_column(position, int(body.index[np.argmax(has_value)]), header_row)
            unnamed_empty += 1
            continue
        _check_lengths(values, body.index, _column_label(position, names[position]), limits)
        if not filled.all():  # one column filled in every row settles it
            filled |= _has_text(values)
        kept.append(position)
    if unnamed_empty:
        notes.append(f"{unnamed_empty} column(s) without a header name and without values ignored")
    frame = body[kept]
    frame.columns = pd.Index([names[p] for p in kept], dtype=object)
    if not filled.all():
        frame = frame[filled]
    return _restore_formulas(frame), notes


def _is_error_file_column(name: str) -> bool:
    return name.strip().casefold() in ERROR_FILE_COLUMNS


def _check_named_columns(names: Iterable[str], row: int, limits: ReadLimits) -> None:
    count = sum(1 for name in names if name.strip())
    if count > limits.max_columns:
        raise _too_many_columns(count, row, limits)


def _check_duplicates(names: list[str], positions: list[int], header_row: int) -> None:
    """Names equal once trimmed and case-folded are duplicates: mapping matches them that way."""
    seen: dict[str, list[int]] = {}
    for position in positions:
        if names[position].strip():
            seen.setdefault(names[position].strip().casefold(), []).append(position)
    repeated = [group for group in seen.values() if len(group) > 1]
    if not repeated:
        return
    described = "; ".join(
        f'"{names[group[0]]}" in columns ' + ", ".join(get_column_letter(p + 1) for p in group)
        for group in repeated
    )
    raise FileRejected(
        f"The header row (row {header_row}) repeats column names: {described}. Each column "
        "needs its own name: rename or delete the repeated columns.",
        row=header_row,
    )


def _check_lengths(values: pd.Series, index: pd.Index, label: str, limits: ReadLimits) -> None:
    """Refuse a value longer than the limit. A character takes one to four bytes in UTF-8:
    characters need counting only when a value has more bytes than the limit allows."""
    text = pa.array(values, type=pa.large_string(), from_pandas=True)
    if (pc.max(pc.binary_length(text)).as_py() or 0) <= limits.max_field_chars:
        return
    lengths = values.str.len().to_numpy(dtype=np.int64)
    too_long = lengths > limits.max_field_chars
    if too_long.any():
        position = int(np.argmax(too_long))
        raise _giant_field(int(index[position]), label, int(lengths[position]), limits)


def _restore_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        quoted = frame[column].str.startswith("'").to_numpy(dtype=bool)
        if quoted.any():
            values = frame[column].copy()
            values[quoted] = values[quoted].map(restore_formula)
            frame[column] = values
    return frame


def _column_label(position: int, name: str | None) -> str:
    letter = get_column_letter(position + 1)
    return f'column {letter} ("{name}")' if name else f"column {letter}"


# --- messages ----------------------------------------------------------------------------


def _empty_file() -> FileRejected:
    return FileRejected(
        "The file is empty: it has no header row and no products. Export the catalog again "
        "with a header row followed by one product per row."
    )


def _unknown_format(kind: str | None) -> FileRejected:
    what = f"it looks like {kind}" if kind else "it is not text, a workbook or JSON"
    return FileRejected(
        f"The file is not in a format we can read ({what}). Accepted formats: "
        f"{ACCEPTED_FORMATS}. Export the catalog in one of these formats."
    )


def _unnamed_column(position: int, first_row: int, header_row: int) -> FileRejected:
    letter = get_column_letter(position + 1)
    return FileRejected(
        f"Column {letter} (column {position + 1}) has values (first in row {first_row}) but "
        f"no name in the header row (row {header_row}). Give the column a name, or delete it.",
        row=header_row,
    )


def _too_many_columns(count: int, row: int, limits: ReadLimits) -> FileRejected:
    return FileRejected(
        f"Row {row} has {count:,} columns; at most {limits.max_columns:,} are accepted. "
        "Remove the columns the catalog does not need.",
        row=row,
    )


def _giant_field(row: int, label: str, length: int, limits: ReadLimits) -> FileRejected:
    return FileRejected(
        f"Row {row}, {label}: the value is {length:,} characters long; at most "
        f"{limits.max_field_chars:,} are accepted. If it should be short, look for a double "
        '(") quote opened earlier in that row and never closed.',
        row=row,
    )


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} bytes"


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)
