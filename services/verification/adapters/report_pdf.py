"""The verification report rendered as a PDF (an adapter: reportlab, segno and pypdf draw what the rules in
``domain/reports.py`` signed): an official document a third party can check without the platform.

Layout (A4): the issuing authority's header, the title, a table of the signed facts, the validity, and two QR
codes side by side: the link to the online page (the authoritative answer today) and the whole signed report
in its compact form (``reports.compact_payload``, ``CRV1:``), which a phone app or the standalone verifier
(verifier/, ``credence-verify``) checks offline against the published keys. The same payload is kept in the
PDF's metadata (``/CredenceReportPayload``) and the signed JSON is attached (``credence-report.json``), so a
verifier reads the digital copy without decoding an image.

Fonts: Latin text is set in Bitstream Vera Sans (shipped inside reportlab, embedded as a subset: nothing to
install, the same on every machine and in the container); Chinese in STSong-Light, one of the CID fonts every
PDF reader provides. Each string is set in runs, each character in the first font that has it: a CJK font
would give Latin letters full-width advances and space them apart.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable

import reportlab
import segno
from pypdf import PdfReader, PdfWriter
from reportlab.lib.colors import Color, black, white
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from services.verification.domain import reports

CJK_FONT = "STSong-Light"
LATIN_FONT, LATIN_BOLD, MONO_FONT = "CredenceVera", "CredenceVeraBold", "Courier"
_FONT_DIR = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
pdfmetrics.registerFont(TTFont(LATIN_FONT, os.path.join(_FONT_DIR, "Vera.ttf")))
pdfmetrics.registerFont(TTFont(LATIN_BOLD, os.path.join(_FONT_DIR, "VeraBd.ttf")))
_LATIN_CHARACTERS = frozenset(pdfmetrics.getFont(LATIN_FONT).face.charToGlyph)

AUTHORITY_ZH = "Credence 考试与证书管理中心"
AUTHORITY_EN = "Credence Examination and Certification Authority"
PAYLOAD_METADATA_KEY = "/CredenceReportPayload"
ATTACHMENT_NAME = "credence-report.json"
NAVY = Color(0.08, 0.17, 0.36)
GREY = Color(0.35, 0.35, 0.35)
RULE = Color(0.75, 0.78, 0.85)
SHADE = Color(0.94, 0.95, 0.97)
WIDTH, HEIGHT = A4
MARGIN = 56
LABEL_WIDTH = 170
ROW_PADDING = 5


# --- text in runs: Latin in a Latin font, the rest in the CJK font -------------------------------------

def runs(text: str, latin_font: str = LATIN_FONT) -> list[tuple[str, str]]:
    """``text`` cut into (font, characters) runs."""
    out: list[tuple[str, str]] = []
    for char in text:
        font = latin_font if ord(char) in _LATIN_CHARACTERS else CJK_FONT
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + char)
        else:
            out.append((font, char))
    return out


def text_width(text: str, size: float, latin_font: str = LATIN_FONT) -> float:
    return sum(pdfmetrics.stringWidth(chunk, font, size) for font, chunk in runs(text, latin_font))


def draw(pdf: canvas.Canvas, x: float, y: float, text: str, size: float, bold: bool = False,
         align: str = "left", color=black) -> None:
    latin = LATIN_BOLD if bold else LATIN_FONT
    if align == "center":
        x -= text_width(text, size, latin) / 2
    elif align == "right":
        x -= text_width(text, size, latin)
    pdf.setFillColor(color)
    for font, chunk in runs(text, latin):
        pdf.setFont(font, size)
        pdf.drawString(x, y, chunk)
        x += pdfmetrics.stringWidth(chunk, font, size)
    pdf.setFillColor(black)


def wrap(text: str, size: float, width: float) -> list[str]:
    """Lines of at most ``width`` points: broken at spaces where there are any, else between characters (CJK);
    a word longer than a line (a URL) is cut."""
    lines, line = [], ""
    for word in _words(text):
        if line and text_width((line + word).rstrip(), size) > width:
            lines.append(line.rstrip())
            line = word.lstrip()
        else:
            line += word
        while text_width(line.rstrip(), size) > width:
            cut = next(i for i in range(len(line) - 1, 0, -1) if text_width(line[:i], size) <= width)
            lines.append(line[:cut])
            line = line[cut:]
    return lines + ([line.rstrip()] if line.strip() or not lines else [])


def _words(text: str) -> Iterable[str]:
    """Latin words with their trailing space, and each CJK character on its own (a line may break after it)."""
    word = ""
    for char in text:
        if ord(char) not in _LATIN_CHARACTERS:
            if word:
                yield word
                word = ""
            yield char
        else:
            word += char
            if char == " ":
                yield word
                word = ""
    if word:
        yield word


# --- the facts ----------------------------------------------------------------------------------------------

def _time(value: str) -> str:
    return value[:16].replace("T", " ") + " UTC"


def facts(document: dict) -> tuple[str, str, list[tuple[str, str]]]:
    """(Chinese title, English title, [(label, value)]) of a signed document."""
    common = [("报告编号 Report code", document["report_code"])]
    if document.get("kind") == "education_record":
        record = document["education_record"]
        rows = common + [("姓名 Holder", record["holder_name_masked"]),
                         ("身份证号 ID number", record["resident_id_number_masked"])]
        for program in record["programs"]:
            standing = ("毕业 Graduated" if program.get("graduated") else "合格 Passed" if program.get("outcome")
                        else "在读 In progress")
            rows.append((f"专业 Program {program['program_code']}", f"{program['program_name']} · {standing}"))
            for course in program["courses"]:
                result = (f"{course['score']} ({course['sitting']})" if course["state"] == "passed"
                          else "免考 Exempted")
                rows.append((f"    课程 Course {course['course_code']}", f"{course['course_name']} · {result}"))
        return "考籍在线验证报告", "Exam Record Verification Report", rows
    certificate = document["certificate"]
    return "证书在线验证报告", "Certificate Verification Report", common + [
        ("证书编号 Certificate number", certificate["certificate_number"]),
        ("获证人 Holder", certificate["holder_name_masked"]),
        ("身份证号 ID number", certificate["resident_id_number_masked"]),
        ("项目 Program", certificate["program_name"]),
        ("等级 Level", certificate.get("level") or "—"),
        ("发证日期 Issued on", certificate["issued_on"]),
        ("申请时状态 Status when requested", {"valid": "有效 Valid"}.get(document.get("status_when_requested"),
                                                                     document.get("status_when_requested") or "—")),
    ]


# --- the page -----------------------------------------------------------------------------------------------

class _Page:
    """Where the next row goes; a new page (with the header) when it does not fit."""

    def __init__(self, pdf: canvas.Canvas, report_code: str):
        self.pdf, self.report_code, self.number = pdf, report_code, 0
        self.y = 0.0
        self.new()

    def new(self) -> None:
        if self.number:
            self.pdf.showPage()
        self.number += 1
        self.y = _header(self.pdf, self.report_code, self.number)

    def room_for(self, height: float) -> None:
        if self.y - height < MARGIN + 20:
            self.new()


def _header(pdf: canvas.Canvas, report_code: str, page: int) -> float:
    """The issuing authority's band; returns where the content starts."""
    top = HEIGHT - MARGIN
    pdf.setFillColor(NAVY)
    pdf.rect(MARGIN, top - 6, WIDTH - 2 * MARGIN, 6, stroke=0, fill=1)
    _seal(pdf, MARGIN + 22, top - 40)
    draw(pdf, MARGIN + 54, top - 30, AUTHORITY_ZH, 15, bold=True, color=NAVY)
    draw(pdf, MARGIN + 54, top - 47, AUTHORITY_EN, 10, color=NAVY)
    draw(pdf, WIDTH - MARGIN, top - 30, "签发机构 Issuing authority", 7.5, align="right", color=GREY)
    draw(pdf, WIDTH - MARGIN, top - 47, f"第 {page} 页 Page {page}", 7.5, align="right", color=GREY)
    pdf.setStrokeColor(NAVY)
    pdf.setLineWidth(0.8)
    pdf.line(MARGIN, top - 60, WIDTH - MARGIN, top - 60)
    _footer(pdf, report_code)
    return top - 72


def _seal(pdf: canvas.Canvas, x: float, y: float) -> None:
    """The authority's emblem: a ring with the initial (drawn, so no image has to ship)."""
    pdf.setStrokeColor(NAVY)
    pdf.setLineWidth(1.6)
    pdf.circle(x, y + 4, 19, stroke=1, fill=0)
    pdf.setLineWidth(0.6)
    pdf.circle(x, y + 4, 15.5, stroke=1, fill=0)
    draw(pdf, x, y - 2, "C", 17, bold=True, align="center", color=NAVY)


def _footer(pdf: canvas.Canvas, report_code: str) -> None:
    pdf.setStrokeColor(RULE)
    pdf.setLineWidth(0.5)
    pdf.line(MARGIN, MARGIN - 4, WIDTH - MARGIN, MARGIN - 4)
    draw(pdf, MARGIN, MARGIN - 16, AUTHORITY_EN, 7, color=GREY)
    draw(pdf, WIDTH - MARGIN, MARGIN - 16, f"报告编号 Report code {report_code}", 7, align="right", color=GREY)


def _table(page: _Page, rows: list[tuple[str, str]]) -> None:
    pdf = page.pdf
    value_x = MARGIN + LABEL_WIDTH
    value_width = WIDTH - MARGIN - value_x - 8
    for index, (label, value) in enumerate(rows):
        lines = wrap(str(value), 10.5, value_width)
        height = max(len(lines), 1) * 14 + 2 * ROW_PADDING
        page.room_for(height)
        top = page.y
        if index % 2 == 0:
            pdf.setFillColor(SHADE)
            pdf.rect(MARGIN, top - height, WIDTH - 2 * MARGIN, height, stroke=0, fill=1)
        pdf.setStrokeColor(RULE)
        pdf.setLineWidth(0.5)
        pdf.line(MARGIN, top - height, WIDTH - MARGIN, top - height)
        if index == 0:
            pdf.line(MARGIN, top, WIDTH - MARGIN, top)
        draw(pdf, MARGIN + 8, top - ROW_PADDING - 10.5, label, 9, color=GREY)
        for number, line in enumerate(lines):
            draw(pdf, value_x, top - ROW_PADDING - 10.5 - number * 14, line, 10.5)
        page.y = top - height


def _qr(pdf: canvas.Canvas, text: str, x: float, top: float, size: float, error: str) -> float:
    """A QR code with its quiet zone, ``size`` points wide, its top left at (x, top); returns its height."""
    code = segno.make(text, error=error, micro=False)
    matrix = code.matrix
    border = 4
    modules = len(matrix) + 2 * border
    module = size / modules
    pdf.setFillColor(white)
    pdf.rect(x, top - size, size, size, stroke=0, fill=1)
    pdf.setFillColor(black)
    for row_index, row in enumerate(matrix):
        run_start = None
        for column_index, dark in enumerate(list(row) + [0]):  # runs of dark modules as one rectangle each
            if dark and run_start is None:
                run_start = column_index
            elif not dark and run_start is not None:
                pdf.rect(x + (border + run_start) * module, top - (border + row_index + 1) * module,
                         (column_index - run_start) * module, module, stroke=0, fill=1)
                run_start = None
    return size


def render(signed: dict, keys_url: str, invariant: bool = False) -> bytes:
    """The report's PDF. ``invariant``: fixed dates and ids, for byte-identical golden files."""
    document = signed["document"]
    payload = reports.compact_payload(signed)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1 if invariant else 0, pageCompression=1)
    title_zh, title_en, rows = facts(document)
    pdf.setTitle(f"{title_en} {document['report_code']}")
    pdf.setAuthor(AUTHORITY_EN)
    pdf.setSubject("Signed verification report; offline: credence-verify report.pdf")
    pdf.setCreator("Credence")
    page = _Page(pdf, document["report_code"])

    draw(pdf, WIDTH / 2, page.y - 22, title_zh, 20, align="center")
    draw(pdf, WIDTH / 2, page.y - 42, title_en, 13, bold=True, align="center", color=NAVY)
    page.y -= 60
    _table(page, rows)

    # validity
    page.room_for(62)
    top = page.y - 12
    pdf.setStrokeColor(NAVY)
    pdf.setLineWidth(0.8)
    pdf.rect(MARGIN, top - 50, WIDTH - 2 * MARGIN, 50, stroke=1, fill=0)
    draw(pdf, MARGIN + 10, top - 17, f"有效期至 Valid until {_time(document['expires_at'])}", 11.5, bold=True,
         color=NAVY)
    draw(pdf, WIDTH - MARGIN - 10, top - 17, f"报告生成 Requested {_time(document['requested_at'])}", 9,
         align="right", color=GREY)
    draw(pdf, MARGIN + 10, top - 36, "在线页面为准：证书此后是否被撤销或更换，以扫码查验结果为准。 "
                                     "The online page is the authoritative answer today.", 8, color=GREY)
    page.y = top - 50

    # the two QR codes, side by side: the link (small) and the signed report (as large as the page allows)
    # at least 1.6 points (0.56 mm) a module, which phone cameras read from paper, up to half the page's width
    modules = len(segno.make(payload, error="m", micro=False).matrix) + 8
    link_size, payload_size = 120.0, min(max(165.0, modules * 1.6), (WIDTH - 2 * MARGIN) / 2 - 6)
    page.room_for(payload_size + 110)
    top = page.y - 22
    left_centre = MARGIN + (WIDTH - 2 * MARGIN) / 4
    right_centre = WIDTH - MARGIN - (WIDTH - 2 * MARGIN) / 4
    draw(pdf, left_centre, top, "扫码在线查验", 10, bold=True, align="center")
    draw(pdf, left_centre, top - 12, "Scan to check online", 8.5, align="center", color=GREY)
    draw(pdf, right_centre, top, "离线验证码（完整签名报告）", 10, bold=True, align="center")
    draw(pdf, right_centre, top - 12, "Signed report: verify offline", 8.5, align="center", color=GREY)
    # the link carries the QR marker, so that the holder's log tells a scan from a typed code (reports.qr_url)
    _qr(pdf, reports.qr_url(document["verify_url"]), left_centre - link_size / 2,
        top - 18 - (payload_size - link_size) / 2, link_size, "m")
    _qr(pdf, payload, right_centre - payload_size / 2, top - 18, payload_size, "m")
    below = top - 18 - payload_size - 12
    column = (WIDTH - 2 * MARGIN) / 2 - 10
    url_lines = wrap(document["verify_url"], 7.5, column)
    keys_lines = ["credence-verify report.pdf --keys-url", *wrap(keys_url, 7.5, column)]
    for centre, lines in ((left_centre, url_lines), (right_centre, keys_lines)):
        for number, line in enumerate(lines):
            draw(pdf, centre, below - number * 9, line, 7.5, align="center")
    page.y = below - max(len(url_lines), len(keys_lines)) * 9 - 12
    pdf.setStrokeColor(RULE)
    pdf.setLineWidth(0.5)
    pdf.line(MARGIN, page.y + 4, WIDTH - MARGIN, page.y + 4)
    page.y -= 8

    # the signature itself, in small type
    notes = [f"Ed25519 数字签名 Digital signature, key {signed['key_id']}:",
             signed["signature"],
             f"完整签名报告见第二个二维码及本文件附件 {ATTACHMENT_NAME}。 "
             f"The whole signed report is in the second QR code (CRV1, {len(payload)} characters) and attached to "
             f"this PDF as {ATTACHMENT_NAME}; check it with the authority's published keys ({keys_url}). A change "
             "to any fact above breaks the signature."]
    lines = [line for note in notes for line in wrap(note, 7, WIDTH - 2 * MARGIN)]
    page.room_for(len(lines) * 9 + 4)
    for number, line in enumerate(lines):
        draw(pdf, MARGIN, page.y - number * 9, line, 7, color=GREY)
    pdf.save()
    return _with_signed_report(buffer.getvalue(), signed, payload)


def _with_signed_report(pdf_bytes: bytes, signed: dict, payload: str) -> bytes:
    """The compact payload in the metadata and the signed JSON as an attached file (what a verifier reads from
    the digital copy)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes)))
    writer.add_metadata({PAYLOAD_METADATA_KEY: payload})
    writer.add_attachment(ATTACHMENT_NAME, json.dumps(signed, ensure_ascii=False, sort_keys=True,
                                                      indent=2).encode("utf-8"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
