"""Result files in plain Python: the streaming parser for the exam result files that exam centres upload (CSV or
JSON Lines), and the report of one file's import (its row errors, by line).

The bulk import (``usecases/imports.py``) hands this module an open file and consumes rows one at a time: nothing here
holds more than the current chunk and the current record, so a file of a million rows costs as much memory as a file
of ten. Only syntax is checked here; whether a ticket exists, or a course belongs to a program, is the use case's
business.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from credence_common.contracts.tickets import TICKET_NUMBER_PATTERN

FIELDS = (
    "ticket_number",
    "program_code",
    "course_code",
    "sitting",
    "score",
    "machine_exam_score",
    "violation",
    "qualification_review",
    "homework_completion",
    "drill_score",
    "full_name",  # optional: checked against the roster's name for the ticket (usecases/imports.py _apply)
)
NAME_FIELD = "full_name"
REQUIRED = ("ticket_number", "program_code", "sitting")
_FIELD_SET = frozenset(FIELDS)
# What exam centres' own files call a field: their exports carry the candidate's name as 姓名
COLUMN_ALIASES = {"姓名": "full_name"}
FORMATS = ("csv", "jsonl")

# No real record comes near this; without a bound, a file with no line breaks (or an unterminated CSV quote) would be
# read into memory whole.
MAX_RECORD_CHARS = 1 << 20

# Column and key names are echoed back in errors, so an unknown one is cut short and made printable: it could be
# anything, including a pasted value or control characters aimed at a log.
_MAX_NAME_CHARS = 64

_PATTERNS = {
    "ticket_number": (TICKET_NUMBER_PATTERN, "not a valid ticket number"),
    "program_code": (re.compile(r"[A-Z0-9-]{1,32}"), "not a valid program code"),
    "course_code": (re.compile(r"[A-Z0-9-]{1,32}"), "not a valid course code"),
    "sitting": (re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])"), "not a valid sitting (expected YYYY-MM)"),
    # a name as on an ID card (what identity accepts at registration): no digits, no markup, at most 40
    "full_name": (re.compile(r"[^\d\s<>\"'`;{}\\/][^\d<>\"'`;{}\\/\x00-\x1f\x7f]{0,39}"), "not a valid name"),
}
_CHOICES = {
    "violation": ("none", "deduction", "disqualification"),
    "qualification_review": ("pass", "fail"),
    "homework_completion": ("complete", "incomplete"),
}
_SCORES = ("score", "machine_exam_score", "drill_score")
# ASCII digits only: int() would also take "８２" or "+82", and an unbounded digit string is a cost of its own.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,3}")
_SCORE_MESSAGE = "must be a whole number from 0 to 100"
_UNSUPPORTED = "The file is neither UTF-8 nor GBK/GB18030 text."
# "\r" alone counts too: a stray one would otherwise reach the csv module as a line break inside an unquoted field.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class UnsupportedEncoding(Exception):
    """The file is not text in an encoding exam centres are known to use."""


@dataclass(frozen=True)
class RowError:
    """One problem with one record. Never carries the offending value: result files hold personal data."""

    line: int
    field: str | None
    message: str


@dataclass(frozen=True)
class ResultRow:
    """A record that is syntactically valid; line is the physical line where it starts."""

    line: int
    ticket_number: str
    program_code: str
    sitting: str
    course_code: str | None = None
    score: int | None = None
    machine_exam_score: int | None = None
    violation: str | None = None
    qualification_review: str | None = None
    homework_completion: str | None = None
    drill_score: int | None = None
    full_name: str | None = None


def detect_encoding(head: bytes) -> str:
    """The codec for a file that starts with these bytes: "utf-8-sig", "utf-8" or "gb18030".

    head may stop in the middle of a character; an incomplete sequence at its end is not held against it.
    """
    if head.startswith(codecs.BOM_UTF8):
        if _decodes(head[len(codecs.BOM_UTF8) :], "utf-8"):
            return "utf-8-sig"
        # The mark declares UTF-8; falling back to GB18030 would only turn the mark itself into two characters of text.
        raise UnsupportedEncoding(_UNSUPPORTED)
    if _decodes(head, "utf-8"):
        return "utf-8"
    # Exam centres' exports are often GBK, and GB18030 decodes every GBK file.
    if _decodes(head, "gb18030"):
        return "gb18030"
    raise UnsupportedEncoding(_UNSUPPORTED)


def read_rows(stream: BinaryIO, file_format: str, chunk_size: int = 65536) -> Iterator[ResultRow | RowError]:
    """Parse a result file lazily, one ResultRow or RowError at a time.

    A record with problems yields one RowError per problem and no ResultRow. A problem with the file as a whole (its
    CSV header, text that stops decoding, a record too long) yields a last RowError and ends the iteration. The
    encoding is detected from the first chunk, so UnsupportedEncoding is raised by the first next(), not by this call.
    """
    if file_format not in FORMATS:
        raise ValueError(f"file_format must be one of {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    return _read_rows(stream, file_format, chunk_size)


def _read_rows(stream: BinaryIO, file_format: str, chunk_size: int) -> Iterator[ResultRow | RowError]:
    lines = _Lines(stream, chunk_size)
    try:
        if file_format == "csv":
            yield from _csv_records(lines)
        else:
            yield from _jsonl_records(lines)
    except _Abort as abort:
        yield abort.error


class _Abort(Exception):
    """Raised from inside the line iterator, through the csv module, to end the file with a RowError."""

    def __init__(self, error: RowError) -> None:
        super().__init__(error.message)
        self.error = error


class _Lines:
    """The decoded physical lines of a stream, counted, each ending with its own line break."""

    def __init__(self, stream: BinaryIO, chunk_size: int) -> None:
        self.count = 0  # lines handed out so far
        self.record_start = 1
        self._record_chars = 0
        self._lines = self._generate(stream, chunk_size)

    def start_record(self) -> None:
        self.record_start = self.count + 1
        self._record_chars = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        # Counted per record, not per line: a quoted CSV field can spread one record over any number of short lines.
        self._record_chars += len(line)
        if self._record_chars > MAX_RECORD_CHARS:
            raise _Abort(_too_long(self.record_start))
        return line

    def _generate(self, stream: BinaryIO, chunk_size: int) -> Iterator[str]:
        head = stream.read(chunk_size)
        # A tiny chunk could cut the byte order mark in two and hide it from detection.
        while 0 < len(head) < len(codecs.BOM_UTF8) + 1:
            more = stream.read(chunk_size)
            if not more:
                break
            head += more
        encoding = detect_encoding(head)
        decoder = codecs.getincrementaldecoder(encoding)()
        label = "utf-8" if encoding == "utf-8-sig" else encoding
        chunk: bytes | None = head
        del head  # the first chunk is not kept for the life of the file
        first = True
        pending = ""
        while True:
            if chunk is None:
                chunk = stream.read(chunk_size)
            at_end = not chunk
            failed = False
            try:
                text = decoder.decode(chunk, final=at_end)
            except UnicodeDecodeError as exc:
                # Lines before the bad bytes are still good, and the error can then name the line they sit on.
                text = _decodable_prefix(exc, label)
                failed = True
            chunk = None
            if first and text:
                first = False
                # utf-8-sig drops its mark itself; GB18030 has one too ("\x84\x31\x95\x33"), which decodes to this.
                text = text.removeprefix("\ufeff")
            pending += text
            start = 0
            for match in _LINE_BREAK.finditer(pending):
                end = match.end()
                if end == len(pending) and match.group() == "\r" and not (at_end or failed):
                    break  # the "\n" of a "\r\n" may come with the next chunk
                yield pending[start:end]
                start = end
            pending = pending[start:]
            if failed:
                raise _Abort(RowError(self.count + 1, None, f"invalid {label} text"))
            if at_end:
                if pending:
                    yield pending
                return
            if len(pending) > MAX_RECORD_CHARS:
                raise _Abort(_too_long(self.count + 1))


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _decodable_prefix(exc: UnicodeDecodeError, encoding: str) -> str:
    try:
        return exc.object[: exc.start].decode(encoding)
    except UnicodeDecodeError:
        return ""


def _too_long(line: int) -> RowError:
    return RowError(line, None, f"record too long (more than {MAX_RECORD_CHARS} characters)")


def _shown_name(name: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in name[:_MAX_NAME_CHARS])


def _csv_records(lines: _Lines) -> Iterator[ResultRow | RowError]:
    # skipinitialspace so that `a, "b,c"` reads as two fields, as whoever typed it meant.
    reader = csv.reader(lines, skipinitialspace=True)
    columns: list[str] | None = None
    while True:
        lines.start_record()
        start = lines.record_start
        try:
            cells = [cell.strip() for cell in next(reader)]
        except StopIteration:
            break
        except csv.Error:
            yield RowError(start, None, "not valid CSV")
            return
        # Spreadsheets export empty rows as ",,,,"; they are as empty as a blank line.
        if not any(cells):
            continue
        if columns is None:
            columns = [COLUMN_ALIASES.get(cell, cell) for cell in cells]
            problems = _header_problems(start, columns)
            if problems:
                yield from problems
                return
            continue
        outcome = _csv_row(start, columns, cells)
        if isinstance(outcome, ResultRow):
            yield outcome
        else:
            yield from outcome
    if columns is None:
        yield RowError(1, None, "no header line")


def _header_problems(line: int, columns: list[str]) -> list[RowError]:
    problems = []
    seen = set()
    for name in columns:
        if not name:
            continue  # spreadsheets add unnamed trailing columns; their cells must then be empty
        if name not in _FIELD_SET:
            problems.append(RowError(line, _shown_name(name), "unknown column"))
        elif name in seen:
            problems.append(RowError(line, name, "duplicate column"))
        seen.add(name)
    problems.extend(RowError(line, name, "required column is missing") for name in REQUIRED if name not in seen)
    return problems


def _csv_row(line: int, columns: list[str], cells: list[str]) -> ResultRow | list[RowError]:
    errors = []
    values: dict[str, object] = {}
    unnamed = False
    for name, value in zip(columns, cells, strict=False):
        if not name:
            unnamed = unnamed or bool(value)
        elif value:
            values[name] = value
        # else: a CSV cell cannot say null; empty is how a spreadsheet leaves a value out.
    if any(cells[len(columns) :]):
        errors.append(RowError(line, None, "more values than header columns"))
    if unnamed:
        errors.append(RowError(line, None, "value in a column without a name"))
    return _result(line, values, errors, scores_as_text=True)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so that a repeated key is seen rather than silently overwritten."""


def _jsonl_records(lines: _Lines) -> Iterator[ResultRow | RowError]:
    while True:
        lines.start_record()
        try:
            text = next(lines)
        except StopIteration:
            return
        line = lines.count
        text = text.strip()
        if not text:
            continue
        try:
            document = json.loads(text, object_pairs_hook=_Pairs)
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
            document = None
        if not isinstance(document, _Pairs):
            yield RowError(line, None, "not a JSON object")
            continue
        errors = []
        values: dict[str, object] = {}
        for key, value in document:
            key = COLUMN_ALIASES.get(key, key)
            if key not in _FIELD_SET:
                errors.append(RowError(line, _shown_name(key), "unknown key"))
            elif key in values:
                errors.append(RowError(line, key, "duplicate key"))
            elif value is not None:
                values[key] = value
            else:
                values[key] = None  # still seen, so that a second occurrence is a duplicate
        outcome = _result(line, values, errors, scores_as_text=False)
        if isinstance(outcome, ResultRow):
            yield outcome
        else:
            yield from outcome


def _result(
    line: int, values: dict[str, object], errors: list[RowError], *, scores_as_text: bool
) -> ResultRow | list[RowError]:
    """Check the values present (in the order the record gives them), then the required ones."""
    # Any: each value is checked against its field below before it is kept (a score an int, the rest strings)
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in _SCORES:
            score: int | None = None
            if scores_as_text:
                if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value) is not None:
                    score = int(value)
            elif type(value) is int:  # bool is an int to Python but not a score; 82.0 is refused like "82.0" in CSV.
                score = value
            if score is not None and 0 <= score <= 100:
                clean[name] = score
            else:
                errors.append(RowError(line, name, _SCORE_MESSAGE))
        elif not isinstance(value, str):
            errors.append(RowError(line, name, "must be a string"))
        elif name in _CHOICES:
            if value in _CHOICES[name]:
                clean[name] = value
            else:
                errors.append(RowError(line, name, "must be one of: " + ", ".join(_CHOICES[name])))
        else:
            pattern, message = _PATTERNS[name]
            if pattern.fullmatch(value):
                clean[name] = value
            else:
                errors.append(RowError(line, name, message))
    for name in REQUIRED:
        if values.get(name) is None:
            errors.append(RowError(line, name, "required"))
    return errors or ResultRow(line=line, **clean)


# --- the report of one import ---------------------------------------------------------------------------------

MAX_REPORTED_ERRORS = 10_000


@dataclass
class ImportReport:
    """What one file's import did, or why it was rejected: row errors by line (at most ``MAX_REPORTED_ERRORS``
    kept, all counted)."""

    batch_id: str
    status: str  # imported | already_imported | rejected
    row_count: int = 0
    recorded: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, line: int, column: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "field": column, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "status": self.status, "row_count": self.row_count,
                "recorded": self.recorded, "unchanged": self.unchanged, "error_count": self.error_count}


class ImportRejected(Exception):
    """A file with at least one wrong row: nothing of it is kept (the caller rolls back and records the report)."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{report.error_count} row error(s)")
        self.report = report
