"""Split a parsed document into chunks along its structure, sized by the embedder's window.

Headings and page changes end a chunk and give it its citation data (section path, page).
Every size here is in the embedder's own tokens (:class:`TokenWindow`, from the model's
tokenizer and ``max_seq_length``), and what the embedder reads of a chunk (the title and
section path above its text, :func:`embedded_text`) never exceeds its window: the model
would silently cut off the rest. Consecutive short blocks of one section share a chunk up
to the window's ``target``; a paragraph longer than that is cut at sentence ends with up
to ``overlap`` tokens of overlap; lists, tables and code stay whole up to the window.

The sizes were chosen on SQuAD dev (see ``eval_retrieval``) in words: 150-word chunks
scored higher than 100 (keyword recall@1 0.811 against 0.784) and stayed under the
256-token input of all-MiniLM-L6-v2, which 200-word chunks overflow (vector recall@1 0.630
against 0.662). The target of three quarters of the window (192 of 256 tokens) is about
those 150 words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ai import embedding
from material.parsing import Block

SECTION_SEPARATOR = " › "


def passage_label(title: str, section: str) -> str:
    """A passage's material title and section, once each: a section path often starts
    with the document's own title (its top heading), which is left out."""
    if section == title:
        section = ""
    elif section.startswith(title + SECTION_SEPARATOR):
        section = section[len(title + SECTION_SEPARATOR) :]
    return " — ".join(part for part in (title, section) if part)


# The overlap of a cut paragraph is an eighth of the window, at most this many tokens (so
# at most this many words: a word is one token or more).
OVERLAP_MAX_TOKENS = 64


@dataclass(frozen=True)
class TokenWindow:
    """The one rule for chunk sizes: ``size`` tokens at most of what is embedded, as
    ``count`` counts them (special tokens included); ``target`` is where a chunk of short
    blocks ends, ``overlap`` what a cut paragraph's next chunk repeats."""

    size: int
    count: Callable[[str], int]
    target: int
    overlap: int

    @classmethod
    def of_embedder(cls) -> TokenWindow:
        """The window of the sentence-transformers model that embeds the chunks."""
        size = embedding.embedding_window()
        return cls(
            size=size,
            count=embedding.embedding_token_count,
            target=size * 3 // 4,
            overlap=min(size // 8, OVERLAP_MAX_TOKENS),
        )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass
class ChunkDraft:
    text: str
    section_path: tuple[str, ...]
    page: int | None
    position: int = 0
    # The title and section path the embedder reads above the text (``embedded_text``).
    header: str = ""

    @property
    def section(self) -> str:
        return SECTION_SEPARATOR.join(self.section_path)

    @property
    def embedded_text(self) -> str:
        """What the embedder sees: the title and section path above the chunk's text, so
        a passage that never names its subject still lands near questions about it."""
        return self.header + "\n\n" + self.text

    @property
    def word_count(self) -> int:
        return _words(self.text)


def _words(text: str) -> int:
    return len(text.split())


def embedded_header(*, title: str, section_path: tuple[str, ...]) -> str:
    """The title and section path above a chunk's text, each part once."""
    context: list[str] = []
    for part in (title, *section_path):
        if part and (not context or context[-1] != part):
            context.append(part)
    return SECTION_SEPARATOR.join(context)


class _Sizer:
    """Token counts against the window for one section: its header's tokens come off the
    window, and a piece fits when header and piece together fit."""

    def __init__(self, window: TokenWindow, *, title: str, section_path: tuple[str, ...]):
        self.window = window
        # Special tokens are counted once in a whole text, not once per part.
        self.specials = window.count("")
        self.header = self._header_within(title, section_path, window.size // 2)
        room = window.size - window.count(self.header + "\n\n") + self.specials
        self.target = min(window.target, room)

    def _header_within(self, title: str, section_path: tuple[str, ...], limit: int) -> str:
        """The header, its outermost parts dropped (then its last words) until it takes at
        most ``limit`` tokens: the text keeps at least half the window."""
        parts = [title, *section_path]
        header = embedded_header(title=parts[0], section_path=tuple(parts[1:]))
        while len(parts) > 1 and self.window.count(header) > limit:
            parts.pop(0)
            header = embedded_header(title=parts[0], section_path=tuple(parts[1:]))
        words = header.split()
        while len(words) > 1 and self.window.count(" ".join(words)) > limit:
            words = words[: len(words) // 2]
        return " ".join(words) if len(words) != len(header.split()) else header

    def count(self, text: str) -> int:
        return self.window.count(text) - self.specials

    def fits(self, text: str) -> bool:
        return self.window.count(self.header + "\n\n" + text) <= self.window.size

    def split_words(self, text: str) -> list[str]:
        """Cut at word boundaries into pieces that fit (a run-on "sentence", a list of
        numbers, a table row longer than the window); ``text`` itself when it fits."""
        if self.fits(text):
            return [text]
        words = text.split()
        if len(words) <= 1:  # one "word" longer than the window: cut it in characters
            if len(text) <= 1:
                return [text]
            return [
                *self.split_words(text[: len(text) // 2]),
                *self.split_words(text[len(text) // 2 :]),
            ]
        middle = len(words) // 2
        return [
            *self.split_words(" ".join(words[:middle])),
            *self.split_words(" ".join(words[middle:])),
        ]

    def split_sentences(self, text: str, target: int, overlap: int) -> list[str]:
        """Windows of whole sentences up to ``target`` tokens, each starting with up to
        ``overlap`` tokens of the previous window's last sentences."""
        pieces: list[str] = []
        current: list[str] = []
        for sentence in _SENTENCE_END.split(text):
            if current and self.count(" ".join([*current, sentence])) > target:
                pieces.append(" ".join(current))
                carry: list[str] = []
                for previous in reversed(current):
                    if self.count(" ".join([previous, *carry])) > overlap:
                        break
                    carry.insert(0, previous)
                current = carry
            current.append(sentence)
        if current:
            pieces.append(" ".join(current))
        return [part for piece in pieces for part in self.split_words(piece)]

    def split_lines(self, text: str) -> list[str]:
        """A long list or table, cut between its lines (rows), never inside one unless a
        line alone overflows the window."""
        pieces: list[str] = []
        current: list[str] = []
        for line in text.split("\n"):
            if current and self.count("\n".join([*current, line])) > self.target:
                pieces.append("\n".join(current))
                current = []
            current.append(line)
        if current:
            pieces.append("\n".join(current))
        return [part for piece in pieces for part in self.split_words(piece)]


def document_chunk(
    blocks: list[Block], *, title: str = "", window: TokenWindow | None = None
) -> list[ChunkDraft]:
    """The document's chunks; none makes an :func:`embedded_text` (under ``title``) over
    the ``window`` (by default the embedder's own)."""
    window = window or TokenWindow.of_embedder()
    drafts: list[ChunkDraft] = []
    path: list[str] = []
    current: list[str] = []
    page: int | None = None
    sizers: dict[tuple[str, ...], _Sizer] = {}

    def section() -> tuple[str, ...]:
        return tuple(p for p in path if p)

    def sizer() -> _Sizer:
        key = section()
        if key not in sizers:
            sizers[key] = _Sizer(window, title=title, section_path=key)
        return sizers[key]

    def add(text: str) -> None:
        sizes = sizer()
        # Token counts of parts add up to the whole's only nearly: the whole decides.
        for piece in sizes.split_words(text):
            drafts.append(ChunkDraft(piece, section(), page, header=sizes.header))

    def flush() -> None:
        if current:
            add("\n\n".join(current))
            current.clear()

    for block in blocks:
        if block.kind == "heading":
            flush()
            level = max(1, block.level)
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(block.text.strip())
            continue
        if block.page != page:
            flush()
            page = block.page
        sizes = sizer()
        if current and sizes.count("\n\n".join([*current, block.text])) > sizes.target:
            flush()
        if block.kind == "paragraph" and sizes.count(block.text) > sizes.target:
            pieces = sizes.split_sentences(block.text, sizes.target, window.overlap)
        elif block.kind != "paragraph" and not sizes.fits(block.text):
            pieces = sizes.split_lines(block.text)
        else:
            current.append(block.text)
            continue
        flush()
        for piece in pieces:
            add(piece)
    flush()
    for position, draft in enumerate(drafts):
        draft.position = position
    return drafts
