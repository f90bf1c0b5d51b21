from __future__ import annotations

from material.chunking import document_chunk
from material.parsing import Block


def sentence(n: int) -> str:
    return f"Sentence number {n} says one short thing about cells."


def test_headings_end_chunks_and_give_their_section_path():
    blocks = [
        Block("heading", "Cells", level=1),
        Block("paragraph", "Cells are small."),
        Block("heading", "Energy", level=2),
        Block("paragraph", "Energy comes from glucose."),
        Block("heading", "Light", level=3),
        Block("paragraph", "Light drives photosynthesis."),
        Block("heading", "Growth", level=2),
        Block("paragraph", "Cells divide."),
    ]
    chunks = document_chunk(blocks)
    assert [(c.section, c.text) for c in chunks] == [
        ("Cells", "Cells are small."),
        ("Cells › Energy", "Energy comes from glucose."),
        ("Cells › Energy › Light", "Light drives photosynthesis."),
        ("Cells › Growth", "Cells divide."),
    ]
    assert [c.position for c in chunks] == [0, 1, 2, 3]


def test_short_paragraphs_of_a_section_share_a_chunk_up_to_the_target():
    blocks = [Block("paragraph", " ".join(["word"] * 40)) for _ in range(5)]
    chunks = document_chunk(blocks, target_words=100)
    assert [c.word_count for c in chunks] == [80, 80, 40]


def test_a_long_paragraph_is_cut_at_sentences_with_overlap():
    text = " ".join(sentence(n) for n in range(40))  # 360 words
    chunks = document_chunk([Block("paragraph", text)], target_words=100, overlap_words=20)
    assert len(chunks) >= 4
    assert all(c.word_count <= 100 for c in chunks)
    assert all(c.text.endswith("cells.") for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        # The next chunk repeats the last sentences of this one (up to 20 words: two).
        last_two = " Sentence".join(before.text.rsplit(" Sentence", 2)[1:])
        assert after.text.startswith("Sentence" + last_two)
    assert sentence(39) in chunks[-1].text and sentence(0) in chunks[0].text


def test_a_table_stays_whole_in_its_own_chunk():
    table = "\n".join(f"| row {n} | value {n} |" for n in range(30))  # 180 words
    blocks = [Block("paragraph", "Intro."), Block("table", table), Block("paragraph", "After.")]
    chunks = document_chunk(blocks, target_words=150)
    assert table in [c.text for c in chunks]


def test_a_page_change_ends_a_chunk():
    blocks = [Block("paragraph", "On page one.", page=1), Block("paragraph", "On two.", page=2)]
    assert [(c.page, c.text) for c in document_chunk(blocks)] == [
        (1, "On page one."),
        (2, "On two."),
    ]
