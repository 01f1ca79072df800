"""The report PDF as a person and a phone see it: rendered to an image with PDFium (pypdfium2), its QR codes read
back with zxing-cpp, its Latin text measured on the image for letter spacing, its layout an official document's."""

from __future__ import annotations

import copy
import io
import json
from datetime import datetime

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from services.verification.adapters import report_pdf
from services.verification.domain import report_keys, reports
from tests.golden import make_verification_report_vectors as golden

SCALE = 4  # 288 dpi
CHECKED_AT = datetime.fromisoformat(golden.CHECKED_AT)


def signed() -> dict:
    return reports.sign_report(golden.AUTHORITY_KEY, golden.DOCUMENT)


def keys() -> dict:
    return report_keys.trusted_keys(golden.current_key(), (golden.previous_key(),), CHECKED_AT)


def rendered(pdf: bytes, page_index: int = 0):
    """(PIL image, text page, page height in points) of one page."""
    document = pypdfium2.PdfDocument(pdf)
    page = document[page_index]
    return page.render(scale=SCALE).to_pil().convert("L"), page.get_textpage(), page.get_height()


def qr_texts(image) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def widest_gap_in_word(image, textpage, page_height: float, word: str) -> float:
    """The widest run of blank pixel columns between the first and the last ink of ``word`` as rendered, in
    points: letters set in a font that is not theirs stand apart, each gap as wide as a letter would be."""
    text = textpage.get_text_range()
    start = text.find(word)
    assert start >= 0, f"{word!r} is not on the page"
    boxes = [textpage.get_charbox(start + offset) for offset in range(len(word))]
    left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
    bottom, top = min(b[1] for b in boxes), max(b[3] for b in boxes)
    crop = image.crop((int(left * SCALE) - 2, int((page_height - top) * SCALE) - 2,
                       int(right * SCALE) + 3, int((page_height - bottom) * SCALE) + 3))
    width, height = crop.size
    pixels = crop.load()
    inked = [any(pixels[x, y] < 128 for y in range(height)) for x in range(width)]
    first, last = inked.index(True), width - 1 - inked[::-1].index(True)
    widest = run = 0
    for x in range(first, last + 1):
        run = 0 if inked[x] else run + 1
        widest = max(widest, run)
    return widest / SCALE


def test_both_qr_codes_read_back_from_the_rendered_page_and_the_payload_verifies():
    report = signed()
    image, _text, _height = rendered(report_pdf.render(report, golden.KEYS_URL))
    found = qr_texts(image)
    assert sorted(found) == sorted([reports.qr_url(golden.DOCUMENT["verify_url"]), reports.compact_payload(report)])
    payload = next(text for text in found if text.startswith(reports.PAYLOAD_PREFIX))
    verdict = reports.verify_payload(payload, keys(), CHECKED_AT)
    assert verdict.verdict == "valid" and verdict.document == golden.DOCUMENT


def test_the_qr_codes_still_read_at_150_dpi_as_a_plain_office_scan():
    document = pypdfium2.PdfDocument(report_pdf.render(signed(), golden.KEYS_URL))
    image = document[0].render(scale=150 / 72).to_pil()
    assert len(qr_texts(image)) == 2


LETTER_GAP_EM = 0.25  # Vera's widest gap between two letters of a word is about 0.2 em ("ic", "al")


@pytest.mark.parametrize("word, size", [("Psychological", 10.5), ("Counsellor", 10.5), ("Certificate", 13),
                                        ("Examination", 10), ("Valid", 11.5)])
def test_latin_text_is_not_letter_spaced_on_the_rendered_page(word, size):
    image, textpage, height = rendered(report_pdf.render(signed(), golden.KEYS_URL))
    assert widest_gap_in_word(image, textpage, height, word) / size < LETTER_GAP_EM


def test_the_measure_sees_letter_spacing_when_there_is_some():
    """The control: the same word with a third of an em between letters (a CJK font's full-width advances put
    half an em or more): the measure must catch it."""
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    text = pdf.beginText(72, 700)
    text.setFont(report_pdf.LATIN_FONT, 10.5)
    text.setCharSpace(10.5 / 3)
    text.textLine("Psychological")
    pdf.drawText(text)
    pdf.save()
    image, textpage, height = rendered(buffer.getvalue())
    assert widest_gap_in_word(image, textpage, height, "Psychological") / 10.5 > LETTER_GAP_EM


def test_latin_text_is_set_in_an_embedded_latin_font_and_chinese_in_the_cjk_font():
    assert report_pdf.runs("证书编号 Certificate number") == [
        (report_pdf.CJK_FONT, "证书编号"), (report_pdf.LATIN_FONT, " Certificate number")]
    pdf = PdfReader(io.BytesIO(report_pdf.render(signed(), golden.KEYS_URL)))
    fonts = {font["/BaseFont"]: font for font in
             (ref.get_object() for ref in pdf.pages[0]["/Resources"]["/Font"].values())}
    latin = [font for name, font in fonts.items() if "BitstreamVeraSans" in name]
    assert latin and all(font["/FontDescriptor"].get("/FontFile2") for font in latin)  # embedded: the same glyphs
    assert any("STSong-Light" in name for name in fonts)


def test_the_page_reads_as_an_official_document():
    text = rendered(report_pdf.render(signed(), golden.KEYS_URL))[1].get_text_range()
    in_order = [report_pdf.AUTHORITY_EN, "Issuing authority", "Certificate Verification Report",
                "Certificate number", "202611000000018", "Holder", "Valid until 2026-12-23 02:00 UTC",
                "Scan to check online", "Signed report: verify offline", golden.KEYS_URL[:40], "Digital signature",
                reports.sign_report(golden.AUTHORITY_KEY, golden.DOCUMENT)["signature"][:40]]
    positions = [text.find(part) for part in in_order]
    assert -1 not in positions, [part for part, at in zip(in_order, positions, strict=True) if at < 0]
    assert positions == sorted(positions)  # header, title, facts, validity, the two codes, the signature


def test_the_pdf_keeps_the_payload_in_its_metadata_and_the_signed_json_attached():
    report = signed()
    pdf = PdfReader(io.BytesIO(report_pdf.render(report, golden.KEYS_URL)))
    assert pdf.metadata[report_pdf.PAYLOAD_METADATA_KEY] == reports.compact_payload(report)
    [attached] = pdf.attachments[report_pdf.ATTACHMENT_NAME]
    assert json.loads(attached) == report
    assert pdf.metadata["/Author"] == report_pdf.AUTHORITY_EN


def test_a_long_exam_record_runs_onto_a_second_page_with_its_qr_codes_readable():
    record = copy.deepcopy(golden.DOCUMENT)
    del record["certificate"]
    record.update(kind="education_record", education_record={
        "holder_name_masked": "王*明", "resident_id_number_masked": "**************002X", "programs": [
            {"program_code": "ZK-LAW", "program_name": "法学 Law", "kind": "course_based", "graduated": True,
             "outcome": None, "courses": [
                 {"course_code": f"{c:05d}", "course_name": f"中国法制史 History of Chinese Law, part {c}",
                  "state": "passed" if c % 5 else "exempted", "score": 60 + c if c % 5 else None,
                  "sitting": "2026-04" if c % 5 else None} for c in range(1, 31)]}]})
    report = reports.sign_report(golden.AUTHORITY_KEY, record)
    pdf = report_pdf.render(report, golden.KEYS_URL)
    pages = len(pypdfium2.PdfDocument(pdf))
    assert pages >= 2
    image, textpage, _height = rendered(pdf, pages - 1)
    payload = next(text for text in qr_texts(image) if text.startswith(reports.PAYLOAD_PREFIX))
    assert reports.verify_payload(payload, keys(), CHECKED_AT).verdict == "valid"
    assert f"Page {pages}" in textpage.get_text_range()


def test_the_golden_pdfs_are_the_ones_the_generator_writes():
    for name, data in golden.pdfs().items():
        assert (golden.HERE / name).read_bytes() == data, name
