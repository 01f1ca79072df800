"""The proof sheet of a production batch as a PDF (reportlab). Chinese names are set in STSong-Light, one of
the CID fonts every PDF reader provides, so no font file has to ship with the service."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
COLUMNS = (("certificate_number", "证书编号 Number", 40), ("holder_name", "姓名 Name", 170),
           ("resident_id_number_masked", "身份证号 ID", 270), ("program_name", "项目 Program", 400),
           ("qualified_on", "合格日期 Qualified", 600), ("photo_reference", "照片 Photo", 690))


def render(batch_number: int, rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    width, height = landscape(A4)
    pdf = canvas.Canvas(buffer, pagesize=(width, height), pageCompression=1)
    pdf.setTitle(f"Credence production batch {batch_number}")

    def header(page: int) -> float:
        pdf.setFont(FONT, 14)
        pdf.drawString(40, height - 40, f"证书制作批次 Production batch {batch_number} — 校样 proof sheet, page {page}")
        pdf.setFont(FONT, 9)
        for _, title, x in COLUMNS:
            pdf.drawString(x, height - 65, title)
        pdf.line(40, height - 70, width - 40, height - 70)
        return height - 85

    page = 1
    y = header(page)
    for row in rows:
        if y < 40:
            pdf.showPage()
            page += 1
            y = header(page)
        pdf.setFont(FONT, 9)
        for key, _, x in COLUMNS:
            pdf.drawString(x, y, str(row.get(key, ""))[:40])
        y -= 16
    pdf.setFont(FONT, 9)
    pdf.drawString(40, 25, f"{len(rows)} certificates")
    pdf.save()
    return buffer.getvalue()
