"""Markdown as safe HTML (tutor replies, material passages): no raw HTML, [n] linked to its passage.

Model output is untrusted: markdown-it escapes any HTML in it (``html`` off), refuses
``javascript:``-style link targets, and images are off so a reply cannot make the browser
fetch anything. Citations become links by rewriting text tokens, never the HTML string.
Math stays as text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

_CITATION_RE = re.compile(r"\[(\d{1,3})\]")


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_inline", "html_block"])
    md.enable("table").enable("strikethrough")
    return md


def _link_citations(tokens: list[Token], citations: dict[int, dict[str, Any]]) -> None:
    for block in tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        inside_link = 0
        for token in block.children:
            inside_link += token.type == "link_open"
            inside_link -= token.type == "link_close"
            if token.type != "text" or inside_link or not _CITATION_RE.search(token.content):
                children.append(token)
                continue
            position = 0
            for match in _CITATION_RE.finditer(token.content):
                citation = citations.get(int(match.group(1)))
                if citation is None:
                    continue
                if match.start() > position:
                    children.append(_text(token.content[position : match.start()]))
                opening = Token("link_open", "a", 1)
                opening.attrs = {
                    "href": citation.get("url") or "#",
                    "class": "citation",
                    "title": citation.get("source") or citation.get("title") or "",
                }
                children += [opening, _text(match.group(0)), Token("link_close", "a", -1)]
                position = match.end()
            if position < len(token.content):
                children.append(_text(token.content[position:]))
        block.children = children


def _align_by_class(tokens: list[Token]) -> None:
    """A table column's alignment as a class: markdown-it writes it as an inline style,
    which the strict CSP refuses (a console error, and the alignment lost)."""
    for token in tokens:
        style = token.attrs.get("style") if token.type in ("th_open", "td_open") else None
        if style:
            del token.attrs["style"]
            side = str(style).removeprefix("text-align:").strip()
            if side in ("left", "center", "right"):
                token.attrs["class"] = f"align-{side}"


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def reply_html(*, text: str, citations: Sequence[dict[str, Any]] = ()) -> SafeString:
    """``text`` (Markdown from the model or the offline builder) as escaped, safe HTML."""
    md = _markdown()
    tokens = md.parse(text)
    _link_citations(tokens, {int(c["n"]): c for c in citations if "n" in c})
    _align_by_class(tokens)
    html = md.renderer.render(tokens, md.options, {})
    return mark_safe(html)  # noqa: S308 - markdown-it escaped every piece of input above
