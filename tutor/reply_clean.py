"""A model's reply made fit to show: no leaked prompt delimiters, sources it really cites.

Weak models echo the prompt's structure: a reply may end with ``</student_message>`` or
open a ``<course_material>`` block of its own. Those tags (and their defused ``‹`` forms,
``tutor.context.untrusted``) are removed from what the learner sees and what is stored.

Sources: the passages a reply cites with ``[n]`` are its sources, shown under it, each with
one label. A reply that cites none still shows the passages it was given, as *related
passages* (``cited`` false on each), so the learner is not told they are its sources.

Language: a reply is checked against the learner's language (``reply_language``); a reply
in another one is recorded in the turn's usage record and counted on the usage page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from learning.practice import text_language
from tutor.context import _TAGS, Passage

_LEAKED_TAG_RE = re.compile(
    r"[<‹]\s*/?\s*(?:" + "|".join(_TAGS) + r")\b[^>\n]{0,40}>?[ \t]*\n?",
    re.IGNORECASE,
)
_CITED_RE = re.compile(r"\[(\d{1,3})\]")


def reply_text_clean(text: str) -> str:
    """``text`` less any prompt delimiter the model leaked (as typed or defused)."""
    cleaned = _LEAKED_TAG_RE.sub("", text)
    return cleaned.strip() if cleaned != text else text


def cited_numbers(text: str) -> set[int]:
    return {int(n) for n in _CITED_RE.findall(text)}


def reply_citations(text: str, passages: Sequence[Passage]) -> list[dict]:
    """The citations stored with a reply: the passages it cites (``cited`` true), or, when
    it cites none of them, all of them as related passages (``cited`` false)."""
    cited = cited_numbers(text)
    chosen = [p for p in passages if p.n in cited]
    if chosen:
        return [{**p.citation(), "cited": True} for p in chosen]
    return [{**p.citation(), "cited": False} for p in passages]


def reply_language(text: str, *, expected: str) -> dict:
    """What the reply's language is against the learner's: ``{"expected", "detected",
    "matches"}`` (``matches`` None when the reply is too short to tell)."""
    detected = text_language(text)
    expected = (expected or "").split("-")[0]
    return {
        "expected": expected,
        "detected": detected,
        "matches": None if detected is None else detected == expected,
    }
