"""Small files of every supported kind, and broken ones, written by the tests themselves
(imported by the material test modules)."""

from __future__ import annotations

import io
import zipfile

import pytest

MARKDOWN = """# Cell Energy

## Photosynthesis

Photosynthesis turns light energy into chemical energy stored in glucose. Chloroplasts
in leaf cells hold the green pigment chlorophyll.

## Respiration

Cellular respiration releases the energy in glucose inside mitochondria, producing ATP,
carbon dioxide and water.

| Process | Organelle |
| --- | --- |
| Photosynthesis | Chloroplast |
| Respiration | Mitochondrion |
"""

VOLCANO = """# Volcanoes

## Magma

Magma is molten rock beneath the crust. When it reaches the surface it is called lava,
and it cools into basalt or obsidian.
"""


def pdf_bytes(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (empty string: no text)."""
    return _pdf_document(
        [f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b"" for text in pages]
    )


def _pdf_document(contents: list[bytes]) -> bytes:
    """A valid PDF of one page per content stream, in Helvetica."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(contents)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(contents)} >>".encode())
    font_ref = 3 + 2 * len(contents)
    for i, content in enumerate(contents):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_ref} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def structured_pdf_bytes(
    pages: list[list[tuple[float, str]]], *, outline: list[tuple[int, str, int]] | None = None
) -> bytes:
    """A valid PDF whose pages show (font size, text) lines, top to bottom; with
    ``outline``, bookmarks (level, title, page number) written by pypdf."""
    from pypdf import PdfReader, PdfWriter

    contents = []
    for lines in pages:
        ops = []
        y = 740
        for size, text in lines:
            y -= size * 1.6
            ops.append(f"BT /F1 {size} Tf 72 {y:.0f} Td ({_pdf_escape(text)}) Tj ET")
        contents.append("\n".join(ops).encode())
    data = _pdf_document(contents)
    if outline is None:
        return data
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    parents = {}
    for level, title, page in outline:
        parents[level] = writer.add_outline_item(
            title=title, page_number=page - 1, parent=parents.get(level - 1)
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf_bytes() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_bytes(["A secret page about magma."]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="open-sesame", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Cell Energy", level=1)
    document.add_heading("Photosynthesis", level=2)
    document.add_paragraph("Photosynthesis turns light energy into chemical energy.")
    document.add_paragraph("Chlorophyll absorbs red light", style="List Bullet")
    document.add_paragraph("Leaves look green", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Process", "Organelle"
    table.cell(1, 0).text, table.cell(1, 1).text = "Respiration", "Mitochondrion"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx_bytes() -> bytes:
    """A .docx-shaped archive whose document.xml inflates 8 MB of zeros from a few KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (8 * 1024 * 1024))
    return out.getvalue()


HTML = """<!doctype html><html><head><title>Cell Energy</title><script>alert(1)</script></head>
<body><h1>Cell Energy</h1><h2>Photosynthesis</h2>
<p>Photosynthesis turns light energy into chemical energy.</p>
<ul><li>Chlorophyll is green</li><li>Chloroplasts hold it</li></ul>
<table><tr><th>Process</th><th>Organelle</th></tr><tr><td>Respiration</td><td>Mitochondrion</td></tr></table>
</body></html>"""


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
