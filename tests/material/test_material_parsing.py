from __future__ import annotations

import pytest

from material import parsing
from material.chunking import document_chunk
from material.parsing import ParseError, document_parse, document_text
from tests.material.material_files import (
    HTML,
    MARKDOWN,
    docx_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    structured_pdf_bytes,
    zip_bomb_docx_bytes,
)


def kinds(document):
    return [(b.kind, b.text.split("\n")[0][:20]) for b in document.blocks]


def test_markdown_keeps_headings_and_the_table_whole():
    document = document_parse(name="cells.md", data=MARKDOWN.encode())
    assert document.kind == "markdown"
    assert document.title == "Cell Energy"
    assert [b.text for b in document.blocks if b.kind == "heading"] == [
        "Cell Energy",
        "Photosynthesis",
        "Respiration",
    ]
    tables = [b for b in document.blocks if b.kind == "table"]
    assert (
        len(tables) == 1 and "Mitochondrion" in tables[0].text and "Chloroplast" in tables[0].text
    )


def test_html_drops_scripts_and_keeps_lists_and_tables():
    document = document_parse(name="cells.html", data=HTML.encode())
    assert document.kind == "html"
    assert document.title == "Cell Energy"
    assert "alert" not in document.text
    assert ("list", "- Chlorophyll is gre") in kinds(document)
    assert any(
        b.kind == "table" and "Respiration | Mitochondrion" in b.text for b in document.blocks
    )


def test_plain_text_becomes_paragraphs_titled_by_the_file_name():
    document = document_parse(name="notes.txt", data=b"First idea.\n\nSecond idea.")
    assert document.kind == "text"
    assert document.title == "notes"
    assert [b.text for b in document.blocks] == ["First idea.", "Second idea."]


def test_docx_headings_lists_and_tables():
    document = document_parse(name="cells.docx", data=docx_bytes())
    assert document.kind == "docx"
    assert document.title == "Cell Energy"
    headings = [(b.level, b.text) for b in document.blocks if b.kind == "heading"]
    assert headings == [(1, "Cell Energy"), (2, "Photosynthesis")]
    assert ("list", "- Chlorophyll absorb") in kinds(document)
    assert any(
        b.kind == "table" and "Respiration | Mitochondrion" in b.text for b in document.blocks
    )


def test_pdf_text_carries_its_page_numbers():
    document = document_parse(
        name="cells.pdf", data=pdf_bytes(["Chlorophyll is green.", "Mitochondria make ATP."])
    )
    assert document.kind == "pdf"
    assert [(b.page, b.text) for b in document.blocks] == [
        (1, "Chlorophyll is green."),
        (2, "Mitochondria make ATP."),
    ]
    chunks = document_chunk(document.blocks)
    assert [c.page for c in chunks] == [1, 2]


VOLCANO_PAGES = [
    [
        (20, "Volcanoes"),
        (11, "A volcano is an opening in the crust of a planet."),
        (11, "Magma rises through it from far below the surface."),
        (15, "Magma chambers"),
        (11, "Magma collects in chambers under the volcano before it erupts."),
    ],
    [
        (15, "Eruptions"),
        (11, "An eruption sends lava, ash and gas out of the vent."),
        (11, "Some eruptions are explosive, others pour out quietly."),
    ],
]


def headings(document):
    return [(b.level, b.text, b.page) for b in document.blocks if b.kind == "heading"]


def test_pdf_sections_come_from_its_outline():
    # The outline names the sections differently from the type sizes: the outline wins.
    data = structured_pdf_bytes(
        VOLCANO_PAGES,
        outline=[(1, "Volcanoes", 1), (2, "Magma chambers", 1), (2, "Eruptions", 2)],
    )
    document = document_parse(name="volcanoes.pdf", data=data)
    assert headings(document) == [
        (1, "Volcanoes", 1),
        (2, "Magma chambers", 1),
        (2, "Eruptions", 2),
    ]
    # Each heading stands where its line is, not repeated as a paragraph.
    assert [b.text for b in document.blocks if b.kind == "paragraph"] == [
        "A volcano is an opening in the crust of a planet. "
        "Magma rises through it from far below the surface.",
        "Magma collects in chambers under the volcano before it erupts.",
        "An eruption sends lava, ash and gas out of the vent. "
        "Some eruptions are explosive, others pour out quietly.",
    ]
    chunks = document_chunk(document.blocks)
    assert [(c.section, c.page) for c in chunks] == [
        ("Volcanoes", 1),
        ("Volcanoes › Magma chambers", 1),
        ("Volcanoes › Eruptions", 2),
    ]


def test_an_outline_entry_not_shown_on_its_page_still_starts_a_section():
    data = structured_pdf_bytes(
        VOLCANO_PAGES, outline=[(1, "Volcanoes", 1), (1, "Lava and ash", 2)]
    )
    chunks = document_chunk(document_parse(name="v.pdf", data=data).blocks)
    assert chunks[-1].section == "Lava and ash"
    assert chunks[-1].text.startswith("Eruptions")


def test_pdf_sections_come_from_font_sizes_without_an_outline():
    document = document_parse(name="volcanoes.pdf", data=structured_pdf_bytes(VOLCANO_PAGES))
    assert headings(document) == [
        (1, "Volcanoes", 1),
        (2, "Magma chambers", 1),
        (2, "Eruptions", 2),
    ]
    chunks = document_chunk(document.blocks)
    assert [c.section for c in chunks] == [
        "Volcanoes",
        "Volcanoes › Magma chambers",
        "Volcanoes › Eruptions",
    ]


def test_a_pdf_in_one_size_is_paragraphs_only():
    pages = [[(11, text) for _size, text in page] for page in VOLCANO_PAGES]
    document = document_parse(name="plain.pdf", data=structured_pdf_bytes(pages))
    assert headings(document) == []


def test_the_kind_comes_from_the_content_not_the_name():
    document = document_parse(name="cells.txt", data=pdf_bytes(["Chlorophyll is green."]))
    assert document.kind == "pdf"


def test_document_text_is_the_plain_text():
    assert "light energy" in document_text(name="cells.docx", data=docx_bytes())


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "The file is empty"),
        ("blank.txt", b" \n\n \n", "No text was found"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "damaged"),
        ("locked.pdf", encrypted_pdf_bytes(), "protected by a password"),
        ("scan.pdf", pdf_bytes(["", ""]), "looks like a scan"),
        ("bomb.docx", zip_bomb_docx_bytes(), "zip bomb"),
        ("fake.docx", b"this is not a word file", "not a .docx document"),
        ("archive.docx", b"PK\x03\x04garbage", "damaged"),
        ("picture.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "cannot be read"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_files_fail_with_a_reason_a_teacher_understands(name, data, reason):
    with pytest.raises(ParseError, match=reason):
        document_parse(name=name, data=data)


def test_files_over_the_size_limit_are_refused(settings):
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    with pytest.raises(ParseError, match=r"2\.0 MB; files may be at most 1\.0 MB"):
        document_parse(name="big.txt", data=b"word " * (400 * 1024 + 10))


@pytest.mark.parametrize(
    "title",
    ["about:blank", "Untitled", "Microsoft Word - essay.docx", "C:\\work\\x", "notes.pdf", "2024"],
)
def test_a_junk_metadata_title_is_not_a_title(title):
    assert parsing.title_is_junk(title)


@pytest.mark.parametrize(
    "title", ["Cell Energy", "Photosynthesis: light reactions", "Energy and/or matter"]
)
def test_a_real_title_is_kept(title):
    assert not parsing.title_is_junk(title)
