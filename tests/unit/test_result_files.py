from __future__ import annotations

import codecs
import io
import json
import random
import tracemalloc

import pytest

from services.scoring.domain.result_files import (
    FIELDS,
    MAX_RECORD_CHARS,
    ResultRow,
    RowError,
    UnsupportedEncoding,
    detect_encoding,
    read_rows,
)

HEADER = "ticket_number,program_code,course_code,sitting,score,violation\n"
TICKET = "202506000001"


def parse(data: bytes | str, file_format: str = "csv", chunk_size: int = 65536) -> list[ResultRow | RowError]:
    if isinstance(data, str):
        data = data.encode()
    return list(read_rows(io.BytesIO(data), file_format, chunk_size))


def errors_of(results: list[ResultRow | RowError]) -> list[tuple[int, str | None, str]]:
    return [(r.line, r.field, r.message) for r in results if isinstance(r, RowError)]


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


class CountingStream:
    """A binary stream that remembers how many bytes were asked of it."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.bytes_read += len(data)
        return data


class GeneratedCsv:
    """A CSV file of n rows made up as it is read, so the test itself holds none of it."""

    def __init__(self, rows: int) -> None:
        self._rows = (b"%012d,CPA-1,2025-06,%d,none\n" % (i, i % 101) for i in range(rows))
        self._buffer = b"ticket_number,program_code,sitting,score,violation\n"

    def read(self, size: int = -1) -> bytes:
        while len(self._buffer) < size:
            row = next(self._rows, None)
            if row is None:
                break
            self._buffer += row
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


# --- detect_encoding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, encoding",
    [
        (b"", "utf-8"),
        (b"ticket_number,program_code\n", "utf-8"),
        ("考生,成绩\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + b"ticket_number\n", "utf-8-sig"),
        (codecs.BOM_UTF8 + "考生".encode(), "utf-8-sig"),
        ("考生,成绩\n".encode("gbk"), "gb18030"),
        ("考生,成绩\n".encode("gb18030"), "gb18030"),
        # the head stops inside a character: 考 is three bytes in UTF-8 and two in GBK
        ("成绩考".encode()[:-1], "utf-8"),
        ("成绩考".encode()[:-2], "utf-8"),
        (codecs.BOM_UTF8 + "成绩考".encode()[:-1], "utf-8-sig"),
        ("成绩考".encode("gbk")[:-1], "gb18030"),
    ],
)
def test_detect_encoding(head, encoding):
    assert detect_encoding(head) == encoding


@pytest.mark.parametrize(
    "head",
    [
        "café,1\n".encode("latin-1"),
        "naïve, résumé\n".encode("latin-1"),
        random.Random(7).randbytes(4096),
        b"\xff\xfet\x00i\x00",  # UTF-16 with its byte order mark
        codecs.BOM_UTF8 + "考生,成绩\n".encode("gbk"),  # the mark says UTF-8, the bytes say otherwise
    ],
)
def test_detect_encoding_refuses_other_encodings(head):
    with pytest.raises(UnsupportedEncoding, match="neither UTF-8 nor GBK/GB18030"):
        detect_encoding(head)


# --- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_valid_rows():
    data = HEADER + f"{TICKET},CPA-1,FA-101,2025-06,82,none\n20250600000X,CPA-1,,2025-12,0,deduction\n"
    assert parse(data) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", course_code="FA-101", score=82, violation="none"),
        ResultRow(3, "20250600000X", "CPA-1", "2025-12", score=0, violation="deduction"),
    ]


def test_csv_columns_in_any_order_and_all_fields():
    header = ",".join(reversed(FIELDS))
    row = "王小明,97,incomplete,fail,disqualification,100,64,2025-06,AUD-2,CPA-1," + TICKET
    assert parse(f"{header}\n{row}\n") == [
        ResultRow(
            2,
            TICKET,
            "CPA-1",
            "2025-06",
            course_code="AUD-2",
            score=64,
            machine_exam_score=100,
            violation="disqualification",
            qualification_review="fail",
            homework_completion="incomplete",
            drill_score=97,
            full_name="王小明",
        )
    ]


def test_csv_only_required_columns():
    assert parse(f"sitting,ticket_number,program_code\n2025-06,{TICKET},CPA-1\n") == [
        ResultRow(2, TICKET, "CPA-1", "2025-06")
    ]


def test_csv_utf8_with_bom():
    data = codecs.BOM_UTF8 + f"{HEADER}{TICKET},CPA-1,,2025-06,82,\n".encode()
    assert parse(data) == [ResultRow(2, TICKET, "CPA-1", "2025-06", score=82)]


def test_csv_gbk_file():
    # All result values are ASCII; a GBK export still carries Chinese text, here full-width spaces around values and a
    # Chinese course name where a course code belongs.
    text = HEADER + f"\u3000{TICKET}\u3000,CPA-1,,2025-06,82,none\n{TICKET},CPA-1,会计,2025-06,82,none\n"
    data = text.encode("gbk")
    assert detect_encoding(data) == "gb18030"
    assert parse(data) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
        RowError(3, "course_code", "not a valid course code"),
    ]


def test_csv_gbk_unknown_column_is_named():
    data = f'ticket_number,program_code,sitting,备注\n{TICKET},CPA-1,2025-06,"缺考，补考"\n'.encode("gbk")
    assert parse(data) == [RowError(1, "备注", "unknown column")]


def test_csv_gb18030_byte_order_mark_is_dropped():
    data = b"\x84\x31\x95\x33" + f"{HEADER}{TICKET},CPA-1,,2025-06,,\n".encode("gb18030")
    assert parse(data) == [ResultRow(2, TICKET, "CPA-1", "2025-06")]


def test_csv_values_are_stripped_and_empty_cells_are_absent():
    data = HEADER + f"  {TICKET} ,\tCPA-1 , ,2025-06,  , none \n"
    assert parse(data) == [ResultRow(2, TICKET, "CPA-1", "2025-06", violation="none")]


def test_csv_quoted_values():
    data = HEADER + f'"{TICKET}", "CPA-1","FA-101","2025-06","82","none"\n'
    assert parse(data) == [ResultRow(2, TICKET, "CPA-1", "2025-06", course_code="FA-101", score=82, violation="none")]


def test_csv_line_numbers_count_blank_lines_and_quoted_line_breaks():
    data = (
        "\n"  # 1
        + HEADER  # 2
        + "\n"  # 3
        + f"{TICKET},CPA-1,,2025-06,82,none\n"  # 4
        + ",,,,,\n"  # 5: an empty spreadsheet row
        + "   \n"  # 6
        + f'{TICKET},CPA-1,"FA\n101\n",2025-06,82,none\n'  # 7-9
        + f"{TICKET},CPA-2,,2025-06,83,none"  # 10, no final line break
    )
    assert parse(data) == [
        ResultRow(4, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
        RowError(7, "course_code", "not a valid course code"),
        ResultRow(10, TICKET, "CPA-2", "2025-06", score=83, violation="none"),
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_csv_other_line_breaks(newline):
    data = HEADER + f'{TICKET},CPA-1,,2025-06,82,\n\n{TICKET},CPA-1,"A\nB",2025-06,82,\n{TICKET},CPA-2,,2025-06,,\n'
    assert parse(data.replace("\n", newline)) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", score=82),
        RowError(4, "course_code", "not a valid course code"),
        ResultRow(6, TICKET, "CPA-2", "2025-06"),
    ]


def test_csv_header_only_and_empty_file():
    assert parse(HEADER) == []
    assert parse("") == [RowError(1, None, "no header line")]
    assert parse("\n,,\n") == [RowError(1, None, "no header line")]


def test_csv_unknown_column_stops():
    data = f"ticket_number,program_code,sitting,candidate_name\n{TICKET},CPA-1,2025-06,Zhang San\n"
    assert parse(data) == [RowError(1, "candidate_name", "unknown column")]


def test_csv_header_problems_are_all_reported_then_stop():
    data = f"Ticket_Number,program_code,score,score,remarks\n{TICKET},CPA-1,1,2,x\n"
    assert parse(data) == [
        RowError(1, "Ticket_Number", "unknown column"),
        RowError(1, "score", "duplicate column"),
        RowError(1, "remarks", "unknown column"),
        RowError(1, "ticket_number", "required column is missing"),
        RowError(1, "sitting", "required column is missing"),
    ]


@pytest.mark.parametrize("missing", ["ticket_number", "program_code", "sitting"])
def test_csv_required_columns(missing):
    columns = [name for name in ("ticket_number", "program_code", "sitting", "score") if name != missing]
    assert parse(",".join(columns) + "\n") == [RowError(1, missing, "required column is missing")]


def test_csv_unknown_column_name_is_cut_short_and_printable():
    [error] = parse('ticket_number,program_code,sitting,"a\x07' + "b" * 200 + '"\n')
    assert error.field == "a?" + "b" * 62
    assert error.message == "unknown column"


def test_csv_extra_and_unnamed_columns():
    data = (
        "ticket_number,program_code,sitting,,\n"  # a spreadsheet's trailing empty columns
        f"{TICKET},CPA-1,2025-06,,\n"
        f"{TICKET},CPA-1,2025-06\n"  # fewer cells than columns
        f"{TICKET},CPA-1,2025-06,,,,\n"
        f"{TICKET},CPA-1,2025-06,,,,x\n"
        f"{TICKET},CPA-1,2025-06,x,\n"
    )
    assert parse(data) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06"),
        ResultRow(3, TICKET, "CPA-1", "2025-06"),
        ResultRow(4, TICKET, "CPA-1", "2025-06"),
        RowError(5, None, "more values than header columns"),
        RowError(6, None, "value in a column without a name"),
    ]


def test_csv_required_cells():
    data = HEADER + ",,,,82,\n" + f"{TICKET}, , ,2025-06,,\n"
    assert parse(data) == [
        RowError(2, "ticket_number", "required"),
        RowError(2, "program_code", "required"),
        RowError(2, "sitting", "required"),
        RowError(3, "program_code", "required"),
    ]


def test_csv_several_problems_in_one_row_and_no_row():
    data = HEADER + "12345,cpa,FA 101,2025-13,101,minor\n" + f"{TICKET},CPA-1,,2025-06,82,none\n"
    assert parse(data) == [
        RowError(2, "ticket_number", "not a valid ticket number"),
        RowError(2, "program_code", "not a valid program code"),
        RowError(2, "course_code", "not a valid course code"),
        RowError(2, "sitting", "not a valid sitting (expected YYYY-MM)"),
        RowError(2, "score", "must be a whole number from 0 to 100"),
        RowError(2, "violation", "must be one of: none, deduction, disqualification"),
        ResultRow(3, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
    ]


def test_csv_unterminated_quote_ends_the_file():
    good = f"{TICKET},CPA-1,,2025-06,82,none\n"
    data = HEADER + good + f'{TICKET},"CPA-1,,2025-06,82,none\n' + good * 20_000
    assert parse(data) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
        RowError(3, None, "not valid CSV"),
    ]


def test_csv_record_too_long():
    # many quoted fields, each short enough for the csv module, spread over many lines
    row = f"{TICKET},CPA-1,,2025-06,82,none," + ",".join(['"a\nb"'] * (MAX_RECORD_CHARS // 4)) + "\n"
    results = parse(HEADER + row + f"{TICKET},CPA-1,,2025-06,82,none\n")
    assert results == [RowError(2, None, f"record too long (more than {MAX_RECORD_CHARS} characters)")]


# --- JSON Lines --------------------------------------------------------------------------------------------------


def test_jsonl_valid_rows():
    data = jsonl(
        {"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06", "score": 82, "violation": "none"},
        {
            "drill_score": 100,
            "homework_completion": "complete",
            "qualification_review": "pass",
            "machine_exam_score": 0,
            "course_code": None,
            "sitting": "2025-12",
            "program_code": "CPA-1",
            "ticket_number": "20250600000X",
        },
    )
    assert parse(data, "jsonl") == [
        ResultRow(1, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
        ResultRow(
            2,
            "20250600000X",
            "CPA-1",
            "2025-12",
            machine_exam_score=0,
            qualification_review="pass",
            homework_completion="complete",
            drill_score=100,
        ),
    ]


def test_jsonl_blank_lines_and_line_numbers():
    row = {"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06"}
    data = "\n" + jsonl(row) + "  \r\n\n" + jsonl(row).rstrip("\n")
    assert parse(data, "jsonl") == [ResultRow(2, TICKET, "CPA-1", "2025-06"), ResultRow(5, TICKET, "CPA-1", "2025-06")]


def test_jsonl_utf8_with_bom_and_gbk():
    row = {"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06", "course_code": "会计"}
    expected = [RowError(1, "course_code", "not a valid course code")]
    assert parse(codecs.BOM_UTF8 + jsonl(row).encode(), "jsonl") == expected
    assert parse(jsonl(row).encode("gbk"), "jsonl") == expected


@pytest.mark.parametrize(
    "line",
    ['["202506000001", "CPA-1"]', '"202506000001"', "42", "null", "{ticket_number: 1}", '{"score": 1', "[" * 100_000],
)
def test_jsonl_not_an_object(line):
    data = line + "\n" + jsonl({"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06"})
    assert parse(data, "jsonl") == [
        RowError(1, None, "not a JSON object"),
        ResultRow(2, TICKET, "CPA-1", "2025-06"),
    ]


def test_jsonl_unknown_and_duplicate_keys():
    data = f'{{"ticket_number": "{TICKET}", "program_code": "CPA-1", "sitting": "2025-06", "name": "Li", "score": 1, '
    data += '"score": 2}\n'
    assert parse(data, "jsonl") == [RowError(1, "name", "unknown key"), RowError(1, "score", "duplicate key")]


def test_jsonl_required_keys():
    assert parse(jsonl({"ticket_number": None, "score": 5}), "jsonl") == [
        RowError(1, "ticket_number", "required"),
        RowError(1, "program_code", "required"),
        RowError(1, "sitting", "required"),
    ]


@pytest.mark.parametrize("value", [82.0, True, False, "82", -1, 101, None])
def test_jsonl_scores_must_be_whole_numbers(value):
    row = {"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06", "drill_score": value}
    expected = (
        [ResultRow(1, TICKET, "CPA-1", "2025-06")]
        if value is None
        else [RowError(1, "drill_score", "must be a whole number from 0 to 100")]
    )
    assert parse(jsonl(row), "jsonl") == expected


@pytest.mark.parametrize("value", [202506000001, ["CPA-1"], {"code": "CPA-1"}, True])
def test_jsonl_text_fields_must_be_strings(value):
    row = {"ticket_number": TICKET, "program_code": value, "sitting": "2025-06"}
    assert parse(jsonl(row), "jsonl") == [RowError(1, "program_code", "must be a string")]


def test_jsonl_line_too_long_ends_the_file():
    row = jsonl({"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06"})
    data = row + '{"ticket_number": "' + "1" * (MAX_RECORD_CHARS + 10) + '"}\n' + row
    assert parse(data, "jsonl") == [
        ResultRow(1, TICKET, "CPA-1", "2025-06"),
        RowError(2, None, f"record too long (more than {MAX_RECORD_CHARS} characters)"),
    ]


# --- field rules, both formats -----------------------------------------------------------------------------------

VALID = [
    ("ticket_number", "202506000001"),
    ("ticket_number", "20250600000X"),
    ("program_code", "C"),
    ("program_code", "CPA-2025-A"),
    ("program_code", "A" * 32),
    ("course_code", "FA-101"),
    ("course_code", "Z" * 32),
    ("sitting", "2025-01"),
    ("sitting", "1999-12"),
    ("score", "0"),
    ("score", "100"),
    ("score", "082"),
    ("machine_exam_score", "59"),
    ("drill_score", "7"),
    ("violation", "none"),
    ("violation", "deduction"),
    ("violation", "disqualification"),
    ("qualification_review", "pass"),
    ("qualification_review", "fail"),
    ("homework_completion", "complete"),
    ("homework_completion", "incomplete"),
]

INVALID = [
    ("ticket_number", "20250600000", "not a valid ticket number"),
    ("ticket_number", "2025060000001", "not a valid ticket number"),
    ("ticket_number", "20250600000x", "not a valid ticket number"),
    ("ticket_number", "2025060X0001", "not a valid ticket number"),
    ("ticket_number", "２０２５０６０００００１", "not a valid ticket number"),
    ("program_code", "cpa-1", "not a valid program code"),
    ("program_code", "CPA_1", "not a valid program code"),
    ("program_code", "A" * 33, "not a valid program code"),
    ("program_code", "注册会计师", "not a valid program code"),
    ("course_code", "FA 101", "not a valid course code"),
    ("course_code", "Z" * 33, "not a valid course code"),
    ("sitting", "2025-6", "not a valid sitting (expected YYYY-MM)"),
    ("sitting", "2025-00", "not a valid sitting (expected YYYY-MM)"),
    ("sitting", "2025-13", "not a valid sitting (expected YYYY-MM)"),
    ("sitting", "2025-06-01", "not a valid sitting (expected YYYY-MM)"),
    ("sitting", "25-06", "not a valid sitting (expected YYYY-MM)"),
    ("score", "82.0", "must be a whole number from 0 to 100"),
    ("score", "82.5", "must be a whole number from 0 to 100"),
    ("score", "eighty", "must be a whole number from 0 to 100"),
    ("score", "-1", "must be a whole number from 0 to 100"),
    ("score", "+82", "must be a whole number from 0 to 100"),
    ("score", "101", "must be a whole number from 0 to 100"),
    ("score", "1000", "must be a whole number from 0 to 100"),
    ("score", "８２", "must be a whole number from 0 to 100"),
    ("score", "1e2", "must be a whole number from 0 to 100"),
    ("machine_exam_score", "100.0", "must be a whole number from 0 to 100"),
    ("drill_score", "-0", "must be a whole number from 0 to 100"),
    ("violation", "None", "must be one of: none, deduction, disqualification"),
    ("violation", "cheating", "must be one of: none, deduction, disqualification"),
    ("qualification_review", "passed", "must be one of: pass, fail"),
    ("homework_completion", "done", "must be one of: complete, incomplete"),
]

BASE = {"ticket_number": TICKET, "program_code": "CPA-1", "sitting": "2025-06"}


def as_csv(values: dict[str, str]) -> str:
    return ",".join(values) + "\n" + ",".join(values.values()) + "\n"


def as_json(values: dict[str, str]) -> str:
    # digits in a score column become a JSON number, so that JSON checks the range; anything else stays a string
    return jsonl(
        {name: int(v) if name.endswith("score") and v.isascii() and v.isdigit() else v for name, v in values.items()}
    )


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
@pytest.mark.parametrize("field, value", VALID)
def test_valid_values(file_format, field, value):
    values = {**BASE, field: value}
    data = as_csv(values) if file_format == "csv" else as_json(values)
    [row] = parse(data, file_format)
    expected = int(value) if field.endswith("score") else value
    assert isinstance(row, ResultRow)
    assert getattr(row, field) == expected


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
@pytest.mark.parametrize("field, value, message", INVALID)
def test_invalid_values(file_format, field, value, message):
    values = {**BASE, field: value}
    data = as_csv(values) if file_format == "csv" else as_json(values)
    line = 2 if file_format == "csv" else 1
    [error] = parse(data, file_format)
    assert error == RowError(line, field, message)
    # result files hold personal data: a value never comes back in a message
    assert value not in error.message


# --- encodings and chunks ----------------------------------------------------------------------------------------


def test_read_rows_refuses_unsupported_encoding():
    data = ("ticket_number,program_code,sitting,remarque\n" + f"{TICKET},CPA-1,2025-06,café\n").encode("latin-1")
    rows = read_rows(io.BytesIO(data), "csv")
    with pytest.raises(UnsupportedEncoding, match="neither UTF-8 nor GBK/GB18030"):
        next(rows)


def test_read_rows_refuses_random_bytes():
    with pytest.raises(UnsupportedEncoding):
        parse(random.Random(3).randbytes(100_000))


def test_text_that_stops_decoding_ends_the_file():
    good = f"{TICKET},CPA-1,,2025-06,82,none\n"
    data = (HEADER + good * 3).encode() + b"\xff\xfe" + good.encode() * 3
    results = parse(data, chunk_size=64)
    assert results == [
        ResultRow(line, TICKET, "CPA-1", "2025-06", score=82, violation="none") for line in (2, 3, 4)
    ] + [RowError(5, None, "invalid utf-8 text")]


def test_gb18030_text_that_stops_decoding_ends_the_file():
    good = f"{TICKET},CPA-1,,2025-06,82,none\n"
    # the full-width space (GBK a1 a1) comes first so that the first chunk is recognisably not UTF-8
    data = ("\u3000" + HEADER + good).encode("gbk") + b"\x81\x00" + good.encode()
    assert parse(data, chunk_size=16) == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
        RowError(3, None, "invalid gb18030 text"),
    ]


def test_truncated_character_at_the_end_of_the_file():
    data = (HEADER + f"{TICKET},CPA-1,,2025-06,82,none\n" + "考").encode()[:-1]
    assert parse(data)[-1] == RowError(3, None, "invalid utf-8 text")


def test_gbk_file_whose_first_chunk_is_ascii():
    # Detection looks at the first chunk only; GBK after an all-ASCII start is invalid UTF-8 and reported as such.
    data = (HEADER + f"{TICKET},CPA-1,会计,2025-06,82,none\n").encode("gbk")
    assert parse(data, chunk_size=8) == [RowError(2, None, "invalid utf-8 text")]


SPLIT_TEXT = (
    HEADER
    + f"\u3000{TICKET}\u3000,CPA-1,,2025-06,82,none\r\n"
    + f'{TICKET},CPA-1,"会计\r\n基础",2025-06,82,none\r\n'
    + f"{TICKET},CPA-2,,2025-06,,\r\n"
)
SPLIT_EXPECTED = [
    ResultRow(2, TICKET, "CPA-1", "2025-06", score=82, violation="none"),
    RowError(3, "course_code", "not a valid course code"),
    ResultRow(5, TICKET, "CPA-2", "2025-06"),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 5, 7, 13, 65536])
@pytest.mark.parametrize("prefix", [b"", codecs.BOM_UTF8])
def test_characters_and_line_breaks_split_across_chunks(chunk_size, prefix):
    assert parse(prefix + SPLIT_TEXT.encode(), chunk_size=chunk_size) == SPLIT_EXPECTED


@pytest.mark.parametrize("chunk_size", [3, 5, 7])
def test_gbk_characters_split_across_chunks(chunk_size):
    data = ("\u3000" + SPLIT_TEXT).encode("gbk")  # starts with Chinese text so that the first chunk tells
    assert parse(data, chunk_size=chunk_size) == SPLIT_EXPECTED


# --- streaming ---------------------------------------------------------------------------------------------------


def test_read_rows_is_lazy():
    row = f"{TICKET},CPA-1,FA-101,2025-06,82,none\n".encode()
    data = HEADER.encode() + row * (10_000_000 // len(row))
    assert len(data) >= 9_900_000
    stream = CountingStream(data)
    rows = read_rows(stream, "csv", chunk_size=65536)
    assert stream.bytes_read == 0
    assert next(rows) == ResultRow(2, TICKET, "CPA-1", "2025-06", course_code="FA-101", score=82, violation="none")
    assert stream.bytes_read < 200_000


def test_memory_does_not_grow_with_the_file():
    tracemalloc.start()
    try:
        count = 0
        for result in read_rows(GeneratedCsv(10_000), "csv", chunk_size=4096):
            assert isinstance(result, ResultRow)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 128 * 1024  # the file is about 420 KB


def test_file_format_and_chunk_size_are_checked_at_once():
    with pytest.raises(ValueError, match="csv, jsonl"):
        read_rows(io.BytesIO(b""), "xlsx")
    with pytest.raises(ValueError, match="csv, jsonl"):
        read_rows(io.BytesIO(b""), "CSV")
    with pytest.raises(ValueError, match="chunk_size"):
        read_rows(io.BytesIO(b""), "csv", chunk_size=0)


def test_an_exam_centres_name_column_is_the_full_name_field_in_csv_and_jsonl():
    # exam centres' exports call it 姓名 (#19 item 6); it may not appear twice under its two names
    header = "ticket_number,姓名,program_code,sitting,score"
    assert parse(f"{header}\n{TICKET},王小明,CPA-1,2025-06,82\n") == [
        ResultRow(2, TICKET, "CPA-1", "2025-06", score=82, full_name="王小明")]
    twice = parse(f"ticket_number,姓名,full_name,program_code,sitting\n{TICKET},王小明,王小明,CPA-1,2025-06\n")
    assert [(e.field, e.message) for e in twice] == [("full_name", "duplicate column")]
    record = {"ticket_number": TICKET, "姓名": "Ann Lee", "program_code": "CPA-1", "sitting": "2025-06"}
    jsonl = parse(json.dumps(record, ensure_ascii=False) + "\n", "jsonl")
    assert jsonl == [ResultRow(1, TICKET, "CPA-1", "2025-06", full_name="Ann Lee")]
    digits = parse(f"{header}\n{TICKET},王小明2,CPA-1,2025-06,82\n")
    assert [(e.line, e.field, e.message) for e in digits] == [(2, "full_name", "not a valid name")]
