"""The one module that parses uploaded files into text with its structure.

Supported: PDF (pypdf), Word .docx (python-docx), Markdown (markdown-it-py), HTML
(BeautifulSoup with the standard library's parser) and plain text. The kind is decided by
the file's content, not only its name. Every failure is a :class:`ParseError` whose
message a teacher can act on; anything else escaping from here is a bug.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext as _

# A .docx is a zip archive; these bound what python-docx would inflate into memory.
ZIP_MAX_ENTRIES = 5_000
ZIP_MAX_RATIO = 200  # uncompressed / compressed, for one entry
ZIP_MAX_UNCOMPRESSED_FACTOR = 20  # total uncompressed <= factor * UPLOAD_MAX_BYTES
# Below this many characters of text per page a PDF is taken to be a scan.
PDF_MIN_CHARS_PER_PAGE = 20

SUPPORTED = _("PDF, Word (.docx), Markdown, HTML or plain text")
TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ""}


class ParseError(Exception):
    """The file cannot be used; ``str(error)`` is the reason, written for a teacher."""


@dataclass
class Block:
    """One structural unit of a document, in reading order."""

    kind: str  # "heading", "paragraph", "list", "table", "code"
    text: str
    level: int = 0  # headings only: 1 for a top-level heading
    page: int | None = None


@dataclass
class ParsedDocument:
    title: str
    kind: str  # "pdf", "docx", "markdown", "html", "text"
    blocks: list[Block] = field(default_factory=list)
    # Passages of the text formatted to be invisible when the file is opened (a .docx
    # run with hidden font, white text or a 1–2 pt font); they stay in ``text``.
    hidden: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)


def _suffix(name: str) -> str:
    name = name.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _stem(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def size_check(*, size: int) -> None:
    """Raise ParseError when a file is empty or larger than ``UPLOAD_MAX_BYTES``."""
    if size == 0:
        raise ParseError(_("The file is empty."))
    limit = settings.UPLOAD_MAX_BYTES
    if size > limit:
        raise ParseError(
            _("The file is %(size)s; files may be at most %(limit)s.")
            % {"size": _megabytes(size), "limit": _megabytes(limit)}
        )


def document_parse(*, name: str, data: bytes) -> ParsedDocument:
    """Parse the file's bytes into titled, structured blocks."""
    size_check(size=len(data))
    suffix = _suffix(name)
    if data.startswith(b"%PDF-"):
        document = _parse_pdf(data)
    elif data.startswith(b"PK\x03\x04"):
        document = _parse_docx(data)
    elif suffix in {".pdf", ".docx"}:
        raise ParseError(
            _("This file is named %(suffix)s but its content is not a %(suffix)s document.")
            % {"suffix": suffix}
        )
    elif suffix in TEXT_SUFFIXES:
        text = _decode(data)
        if suffix in {".html", ".htm"} or re.match(r"\s*(<!doctype html|<html)", text, re.I):
            document = _parse_html(text)
        elif suffix in {".md", ".markdown"}:
            document = _parse_markdown(text)
        else:
            document = _parse_text(text)
    else:
        raise ParseError(
            _("Files of type %(suffix)s cannot be read. Upload %(supported)s.")
            % {"suffix": suffix, "supported": SUPPORTED}
        )
    document.blocks = [b for b in document.blocks if b.text.strip()]
    if not any(b.kind != "heading" for b in document.blocks):
        raise ParseError(_("No text was found in this file."))
    title = " ".join((document.title or "").split())[:300]
    document.title = "" if title_is_junk(title) else title
    document.title = document.title or _stem(name)
    return document


# Titles that tools write into a file's metadata and that name nothing: a browser's
# "print to PDF" of a blank tab, a word processor's default, a path or a file name.
_JUNK_TITLES = {
    "about:blank",
    "untitled",
    "untitled document",
    "document",
    "document1",
    "title",
    "no title",
    "slide 1",
    "presentation",
    "powerpoint presentation",
}
_JUNK_TITLE = re.compile(
    r"^[a-z][a-z0-9+.-]*:\S*$"  # a URL
    r"|^microsoft (?:word|powerpoint|excel) - "  # an application's prefix
    r"|^(?:[a-z]:)?[\\/]|^\S*[\\/]\S*$"  # a path
    r"|\.(?:docx?|pdf|pptx?|odt|rtf|txt|tex|dvi|html?|md)$",  # a file name
    re.IGNORECASE,
)


def title_is_junk(title: str) -> bool:
    """Whether a title from a file's metadata names nothing (use the file name instead)."""
    title = title.strip()
    return (
        not any(ch.isalpha() for ch in title)
        or title.casefold() in _JUNK_TITLES
        or bool(_JUNK_TITLE.search(title))
    )


def document_text(*, name: str, data: bytes) -> str:
    """The file's plain text (for essays uploaded as files)."""
    return document_parse(name=name, data=data).text


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise ParseError(
            _("This file is not a text document. Upload %(supported)s.") % {"supported": SUPPORTED}
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(
            _("This text file is not UTF-8 encoded. Save it as UTF-8 and upload it again.")
        ) from None


def _paragraphs(text: str, *, page: int | None = None) -> list[Block]:
    blocks = []
    for part in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        part = part.strip()
        if part:
            blocks.append(Block("paragraph", part, page=page))
    return blocks


# --- plain text and Markdown ----------------------------------------------------------------


def _parse_text(text: str) -> ParsedDocument:
    return ParsedDocument(title="", kind="text", blocks=_paragraphs(text))


def _parse_markdown(text: str) -> ParsedDocument:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    lines = text.replace("\r\n", "\n").split("\n")
    tokens = md.parse("\n".join(lines))
    blocks: list[Block] = []
    title = ""
    depth = 0  # inside a list, table or blockquote already taken whole
    for i, token in enumerate(tokens):
        if token.type in {"bullet_list_open", "ordered_list_open", "table_open"}:
            if depth == 0 and token.map:
                kind = "table" if token.type == "table_open" else "list"
                source = "\n".join(lines[token.map[0] : token.map[1]]).strip()
                blocks.append(Block(kind, source))
            depth += 1
        elif token.type in {"bullet_list_close", "ordered_list_close", "table_close"}:
            depth -= 1
        elif depth:
            continue
        elif token.type == "heading_open":
            heading = tokens[i + 1].content.strip()
            level = int(token.tag[1])
            if level == 1 and not title:
                title = heading
            blocks.append(Block("heading", heading, level=level))
        elif token.type == "inline" and tokens[i - 1].type == "paragraph_open":
            blocks.append(Block("paragraph", token.content.strip()))
        elif token.type in {"fence", "code_block"}:
            blocks.append(Block("code", token.content.rstrip()))
    return ParsedDocument(title=title, kind="markdown", blocks=blocks)


# --- HTML -------------------------------------------------------------------------------------

_HTML_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "table", "pre", "li"]


def _parse_html(text: str) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    blocks: list[Block] = []
    taken: set[int] = set()
    for element in soup.find_all(_HTML_BLOCKS):
        if any(id(parent) in taken for parent in element.parents):
            continue
        name = element.name
        if name in {"ul", "ol"}:
            items = [li.get_text(" ", strip=True) for li in element.find_all("li")]
            blocks.append(Block("list", "\n".join(f"- {item}" for item in items if item)))
            taken.add(id(element))
        elif name == "table":
            rows = []
            for row in element.find_all("tr"):
                cells = [c.get_text(" ", strip=True) for c in row.find_all(["th", "td"])]
                rows.append(" | ".join(cells))
            blocks.append(Block("table", "\n".join(rows)))
            taken.add(id(element))
        elif name == "pre":
            blocks.append(Block("code", element.get_text()))
            taken.add(id(element))
        elif name.startswith("h"):
            heading = element.get_text(" ", strip=True)
            if name == "h1" and not title:
                title = heading
            blocks.append(Block("heading", heading, level=int(name[1])))
        else:
            blocks.append(Block("paragraph", element.get_text(" ", strip=True)))
            taken.add(id(element))
    if not blocks and soup.body:
        blocks = _paragraphs(soup.body.get_text("\n\n", strip=True))
    return ParsedDocument(title=title, kind="html", blocks=blocks)


# --- Word -------------------------------------------------------------------------------------


def _zip_check(data: bytes) -> None:
    """Refuse archives that would inflate to far more than they weigh (zip bombs)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        raise ParseError(_("This Word file is damaged and cannot be opened.")) from None
    if len(entries) > ZIP_MAX_ENTRIES:
        raise ParseError(_("This Word file has an unusual structure and was refused for safety."))
    total = 0
    for entry in entries:
        total += entry.file_size
        if entry.file_size > ZIP_MAX_RATIO * max(entry.compress_size, 1) and (
            entry.file_size > 1024 * 1024
        ):
            raise ParseError(
                _(
                    "This Word file would expand to far more data than it contains "
                    "(a so-called zip bomb) and was refused for safety."
                )
            )
    if total > ZIP_MAX_UNCOMPRESSED_FACTOR * settings.UPLOAD_MAX_BYTES:
        raise ParseError(_("This Word file would expand to too much data and was refused."))
    if "word/document.xml" not in {entry.filename for entry in entries}:
        raise ParseError(
            _("This is a zip archive, not a Word document. Upload %(supported)s.")
            % {"supported": SUPPORTED}
        )


# A run at or below this size is unreadable on screen or paper (half-points: 2 pt).
DOCX_TINY_FONT_HALF_POINTS = 4
_WHITE = {"FFFFFF", "FEFEFE", "FDFDFD", "FCFCFC"}


def _font_hides(font) -> bool:
    """Whether this run formatting makes text invisible: hidden, white or tiny."""
    if font is None:
        return False
    if font.hidden:
        return True
    try:
        rgb = font.color.rgb if font.color is not None and font.color.type is not None else None
    except (AttributeError, ValueError):
        rgb = None
    if rgb is not None and str(rgb).upper() in _WHITE:
        return True
    return font.size is not None and font.size.pt * 2 <= DOCX_TINY_FONT_HALF_POINTS


def _run_hidden(run, paragraph) -> bool:
    """A run hidden by its own formatting, its character style or its paragraph's style
    (python-docx reports only direct formatting, so the styles are asked too)."""
    if _font_hides(run.font):
        return True
    for style in (run.style, paragraph.style):
        while style is not None:
            font = getattr(style, "font", None)
            if font is not None and _font_hides(font):
                return True
            style = getattr(style, "base_style", None)
    return False


def _hidden_passages(paragraph) -> list[str]:
    """The text of each stretch of consecutive hidden runs in a paragraph."""
    passages, current = [], []
    for run in paragraph.runs:
        if _run_hidden(run, paragraph):
            current.append(run.text)
            continue
        if "".join(current).strip():
            passages.append("".join(current).strip())
        current = []
    if "".join(current).strip():
        passages.append("".join(current).strip())
    return passages


def _parse_docx(data: bytes) -> ParsedDocument:
    _zip_check(data)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - python-docx raises many kinds for a bad file
        raise ParseError(_("This Word file is damaged and cannot be opened.")) from None
    title = (document.core_properties.title or "").strip()
    blocks: list[Block] = []
    list_items: list[str] = []
    hidden: list[str] = []

    def flush_list() -> None:
        if list_items:
            blocks.append(Block("list", "\n".join(list_items)))
            list_items.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush_list()
            rows = []
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    for paragraph in cell.paragraphs:
                        hidden.extend(_hidden_passages(paragraph))
                    text = cell.text.strip()
                    if not cells or cells[-1] != text:  # merged cells repeat their text
                        cells.append(text)
                rows.append(" | ".join(cells))
            blocks.append(Block("table", "\n".join(rows)))
            continue
        assert isinstance(item, Paragraph)
        hidden.extend(_hidden_passages(item))
        text = item.text.strip()
        style = (item.style.name if item.style is not None else "") or ""
        is_list = (
            style.startswith("List") or item._p.pPr is not None and (item._p.pPr.numPr is not None)
        )
        if is_list and text:
            list_items.append(f"- {text}")
            continue
        flush_list()
        if not text:
            continue
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            title = title or text
            blocks.append(Block("heading", text, level=1))
        elif match:
            blocks.append(Block("heading", text, level=int(match.group(1))))
        else:
            blocks.append(Block("paragraph", text))
    flush_list()
    if not title:
        title = next((b.text for b in blocks if b.kind == "heading"), "")
    return ParsedDocument(
        title=title, kind="docx", blocks=blocks, hidden=list(dict.fromkeys(hidden))
    )


# --- PDF --------------------------------------------------------------------------------------
# A PDF's sections come from its outline (the bookmarks a reader shows beside the pages),
# else from its type: lines set larger than the body text, short and not ending a sentence,
# are headings, the largest size the outermost. Without either, it is paragraphs only.

# A line at least this much larger than the body text may be a heading.
PDF_HEADING_MIN_RATIO = 1.15
PDF_HEADING_MAX_WORDS = 15
PDF_HEADING_MAX_LEVELS = 4


def _pdf_page_lines(page) -> list[tuple[str, float]]:
    """The page's lines of text, each with the font size most of its characters are set
    in (0 where pypdf's pieces do not line up with its text)."""
    pieces: list[tuple[str, float]] = []

    def visit(text, cm, tm, _font, font_size) -> None:
        scale = abs(tm[3] * cm[3]) or 1.0
        pieces.append((text, float(font_size or 0) * scale))

    text = page.extract_text(visitor_text=visit) or ""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    sized: list[dict[float, int]] = [{}]
    for piece, size in pieces:
        parts = piece.replace("\r\n", "\n").split("\n")
        for n, part in enumerate(parts):
            if n:
                sized.append({})
            if part.strip():
                sized[-1][size] = sized[-1].get(size, 0) + len(part.strip())
    if len(sized) != len(lines):
        return [(line, 0.0) for line in lines]
    return [
        (line, max(sizes, key=lambda size: sizes[size]) if sizes else 0.0)
        for line, sizes in zip(lines, sized, strict=True)
    ]


def _size_key(size: float) -> float:
    return round(size * 2) / 2


def _could_be_heading(text: str) -> bool:
    text = text.strip()
    return (
        bool(re.search(r"[^\W\d_]", text))
        and len(text.split()) <= PDF_HEADING_MAX_WORDS
        and not text.endswith((".", ",", ";", ":"))
    )


def _pdf_heading_levels(page_lines) -> dict[float, int]:
    """Heading level by font size: sizes clearly above the body text's (the size most
    characters are set in), the largest level 1."""
    characters: dict[float, int] = {}
    for _number, lines in page_lines:
        for text, size in lines:
            if size:
                key = _size_key(size)
                characters[key] = characters.get(key, 0) + len(text.strip())
    if not characters:
        return {}
    body = max(characters, key=lambda size: characters[size])
    larger = sorted(
        {
            _size_key(size)
            for _number, lines in page_lines
            for text, size in lines
            if size and _size_key(size) >= body * PDF_HEADING_MIN_RATIO and _could_be_heading(text)
        },
        reverse=True,
    )[:PDF_HEADING_MAX_LEVELS]
    return {size: level for level, size in enumerate(larger, 1)}


def _pdf_outline(reader) -> dict[int, list[tuple[int, str]]]:
    """The outline's entries by page number (1-based): (level, title), in outline order.
    A damaged outline counts as none: the text is still worth reading."""
    entries: dict[int, list[tuple[int, str]]] = {}

    def walk(items, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                entries.setdefault(page + 1, []).append((level, title[:300]))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001 - pypdf raises many kinds on a broken outline
        return {}
    return entries


def _normalised(text: str) -> str:
    return " ".join(text.casefold().split())


class _PdfParagraphs:
    """Reads a page's lines into paragraph blocks: pypdf ends every line with a newline;
    a paragraph break is a blank line or a line that ends a sentence well short of the
    usual width."""

    def __init__(self, lines: list[tuple[str, float]], *, page: int, into: list[Block]):
        self.lines = [text for text, _size in lines]
        self.page = page
        self.blocks = into
        self.position = 0
        self.width = max((len(line) for line in self.lines), default=0)
        self.current: list[str] = []

    @property
    def unread(self) -> bool:
        return self.position < len(self.lines)

    def find(self, heading: str) -> int | None:
        """The first unread line showing ``heading`` (perhaps after its number)."""
        wanted = _normalised(heading)
        for index in range(self.position, len(self.lines)):
            line = _normalised(self.lines[index])
            if line == wanted or (line.endswith(wanted) and len(line) - len(wanted) <= 8):
                return index
        return None

    def read_to(self, end: int) -> None:
        for line in self.lines[self.position : end]:
            if not line.strip():
                self.flush()
                continue
            self.current.append(line.strip())
            if line.endswith((".", "!", "?", ":")) and len(line) < 0.7 * self.width:
                self.flush()
        self.position = max(self.position, end)

    def skip(self) -> None:
        self.flush()
        self.position += 1

    def flush(self) -> None:
        if self.current:
            self.blocks.append(Block("paragraph", " ".join(self.current), page=self.page))
            self.current = []


def _parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are encrypted with an empty user password (only copying is
            # restricted); those open fine.
            try:
                opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
            except Exception:  # noqa: BLE001 - e.g. an unsupported cipher
                opened = False
            if not opened:
                raise ParseError(
                    _(
                        "This PDF is protected by a password. Save a copy without the "
                        "password and upload that."
                    )
                )
        page_lines = [
            (number, _pdf_page_lines(page)) for number, page in enumerate(reader.pages, 1)
        ]
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError):
        raise ParseError(_("This PDF is damaged or incomplete and cannot be read.")) from None
    if not page_lines:
        raise ParseError(_("This PDF has no pages."))
    characters = sum(len(text.strip()) for _number, lines in page_lines for text, _size in lines)
    if characters < PDF_MIN_CHARS_PER_PAGE * len(page_lines):
        raise ParseError(
            _(
                "This PDF contains no text, only images: it looks like a scan. Run text "
                "recognition (OCR) on it, or upload the original document."
            )
        )
    outline = _pdf_outline(reader)
    levels = {} if outline else _pdf_heading_levels(page_lines)
    blocks: list[Block] = []
    for number, lines in page_lines:
        paragraphs = _PdfParagraphs(lines, page=number, into=blocks)
        # The outline's headings of this page, each at the line that shows it (or, when
        # no line does, where the text read so far ends).
        for level, heading in outline.get(number, []):
            index = paragraphs.find(heading)
            if index is not None:
                paragraphs.read_to(index)
                paragraphs.skip()
            else:
                paragraphs.flush()
            blocks.append(Block("heading", heading, level=level, page=number))
        while paragraphs.unread:
            text, size = lines[paragraphs.position]
            if levels.get(_size_key(size)) and _could_be_heading(text):
                paragraphs.flush()
                paragraphs.skip()
                blocks.append(
                    Block("heading", text.strip(), level=levels[_size_key(size)], page=number)
                )
            else:
                paragraphs.read_to(paragraphs.position + 1)
        paragraphs.flush()
    return ParsedDocument(title=title, kind="pdf", blocks=blocks)
