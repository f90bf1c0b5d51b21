from __future__ import annotations

from material.chunking import TokenWindow, document_chunk
from material.parsing import Block, document_parse


def words(text: str) -> int:
    return len(text.split())


def word_window(*, target: int = 150, overlap: int = 30, size: int = 1000) -> TokenWindow:
    """A window that counts words, for the tests of where chunks end."""
    return TokenWindow(size=size, count=words, target=target, overlap=overlap)


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
    chunks = document_chunk(blocks, window=word_window())
    assert [(c.section, c.text) for c in chunks] == [
        ("Cells", "Cells are small."),
        ("Cells › Energy", "Energy comes from glucose."),
        ("Cells › Energy › Light", "Light drives photosynthesis."),
        ("Cells › Growth", "Cells divide."),
    ]
    assert [c.position for c in chunks] == [0, 1, 2, 3]


def test_short_paragraphs_of_a_section_share_a_chunk_up_to_the_target():
    blocks = [Block("paragraph", " ".join(["word"] * 40)) for _ in range(5)]
    chunks = document_chunk(blocks, window=word_window(target=100))
    assert [c.word_count for c in chunks] == [80, 80, 40]


def test_a_long_paragraph_is_cut_at_sentences_with_overlap():
    text = " ".join(sentence(n) for n in range(40))  # 360 words
    chunks = document_chunk([Block("paragraph", text)], window=word_window(target=100, overlap=20))
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
    chunks = document_chunk(blocks, window=word_window(target=150))
    assert table in [c.text for c in chunks]


def test_a_page_change_ends_a_chunk():
    blocks = [Block("paragraph", "On page one.", page=1), Block("paragraph", "On two.", page=2)]
    assert [(c.page, c.text) for c in document_chunk(blocks, window=word_window())] == [
        (1, "On page one."),
        (2, "On two."),
    ]


def test_no_chunk_of_real_course_text_overflows_the_embedders_window(shared_data):
    """The embedder's own tokenizer sizes the chunks: what it reads of each (title,
    section path and text) fits its max_seq_length, so nothing is cut off unseen."""
    window = TokenWindow.of_embedder()
    documents = sorted((shared_data / "retrieval" / "squad-dev" / "documents").glob("*.md"))
    assert documents
    sizes = []
    for path in documents[:12]:
        document = document_parse(name=path.name, data=path.read_bytes())
        chunks = document_chunk(document.blocks, title=document.title, window=window)
        sizes += [window.count(chunk.embedded_text) for chunk in chunks]
    assert max(sizes) <= window.size == 256
    # Filled toward the target, not cut small: most chunks use over half the window.
    assert sorted(sizes)[len(sizes) // 2] > window.size // 2


def test_text_with_no_sentence_ends_and_long_headings_still_fits_the_window():
    window = TokenWindow.of_embedder()
    heading = " ".join(["Photosynthetic electron transport chain"] * 30)  # over half the window
    numbers = " ".join(str(n) for n in range(3000))  # one "sentence" of many tokens
    table = "\n".join(f"| {n} | {'x' * 900} |" for n in range(3))  # rows longer than the window
    blocks = [
        Block("heading", heading, level=1),
        Block("paragraph", numbers),
        Block("table", table),
        Block("paragraph", "y" * 5000),  # one word longer than the window
    ]
    chunks = document_chunk(blocks, title="Cells " * 40, window=window)
    assert all(window.count(chunk.embedded_text) <= window.size for chunk in chunks)
    # Nothing is lost: every number is in some chunk.
    assert set(" ".join(c.text for c in chunks).split()) >= set(numbers.split())
