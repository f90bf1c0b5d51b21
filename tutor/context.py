"""What the tutor model is given for one reply, fitted to a token budget.

The budget is the model's context window (the server's own when it says, else
``LLM_CONTEXT_TOKENS``) less ``LLM_MAX_TOKENS`` (the reply must fit in it too) less a small
safety margin. Pieces are first sized with ``ai.tokens``' estimate, which errs high (one
token per UTF-8 byte outside ASCII: no fraction of the bytes is safe for every language).
When the server has a tokenizer (llama.cpp, vLLM, llama-cpp-python) the caller passes
``count``: the estimate is then scaled to the real ratio of this prompt's text, the
student's message is counted for real, and the finished prompt is counted again and
trimmed until it fits. A student's message that alone does not fit is never cut:
``context_build`` raises ``LLMContextExceeded``, whose message asks the learner to
shorten it.

What goes in, in order of priority:

1. the system prompt (a versioned file in ``tutor/prompts/``) with the learner's profile:
   preferred language and what the caller knows of their level; never their name;
2. the student's new message (whole, or refused as too long);
3. the course passages, numbered [1], [2] ... in rank order (up to 60% of what is left);
4. memory summaries of earlier sessions, newest first (up to 10%);
5. the conversation's recent turns, newest first, with whatever is left.

Passages, memories and the message go in the last user turn, each inside its own tag, so
the model can tell data from instructions; earlier student turns are wrapped and defused
the same way. The stable system prompt and earlier turns come first, which keeps the
prompt prefix reusable by the server's prefix cache.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings
from django.utils.translation import get_language_info

from ai.llm import LLMContextExceeded, llm_context_tokens
from ai.llm_capabilities import bytes_bound
from ai.tokens import MESSAGE_OVERHEAD_TOKENS, message_tokens_estimate, tokens_estimate
from material.chunking import passage_label

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TUTOR_PROMPT = "tutor_system.v1"

SAFETY_MARGIN_TOKENS = 64
PASSAGE_SHARE = 0.6
MEMORY_SHARE = 0.1

NO_PASSAGES = "(No passage of the course material matches this message.)"
NO_MEMORIES = "(none)"

_TAGS = ("course_material", "learner_memory", "student_message", "conversation")
_TAG_RE = re.compile(r"<\s*(/?)\s*(" + "|".join(_TAGS) + r")\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Passage:
    """One retrieved course passage as the tutor cites it: [n] in replies means ``n``."""

    n: int
    chunk_id: int | None
    text: str
    title: str
    section: str = ""
    page: int | None = None
    url: str = ""
    score: float | None = None

    @property
    def label(self) -> str:
        return passage_label(self.title, self.section)

    @property
    def source(self) -> str:
        """The label with the page, as the prompt gives it to the model."""
        return self.label + (f" (p. {self.page})" if self.page is not None else "")

    def citation(self, *, excerpt_chars: int = 280) -> dict:
        """The JSON stored with a reply for ``[n]``."""
        excerpt = self.text if len(self.text) <= excerpt_chars else self.text[:excerpt_chars] + "…"
        return {
            "n": self.n,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "section": self.section,
            "page": self.page,
            "url": self.url,
            "excerpt": excerpt,
            # One clean label: the title, and the section when it adds to it.
            "label": self.label,
        }


@dataclasses.dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


@dataclasses.dataclass(frozen=True)
class LearnerProfile:
    """What the model may know about the learner: nothing that identifies them."""

    language: str
    level: str = ""
    goals: str = ""
    weak_concepts: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TutorContext:
    messages: list[dict[str, str]]
    passages: list[Passage]  # those that fitted, as numbered in the prompt
    prompt_version: str
    tokens_estimate: int
    budget: int


@dataclasses.dataclass(frozen=True)
class Prompt:
    version: str
    text: str


@functools.cache
def prompt_load(version: str) -> Prompt:
    """A versioned prompt file, e.g. ``tutor_system.v1`` → ``tutor/prompts/tutor_system.v1.md``."""
    if not re.fullmatch(r"[a-z_]+\.v\d+", version):
        raise ValueError(f"{version!r} is not a prompt version name.")
    return Prompt(version=version, text=(PROMPTS_DIR / f"{version}.md").read_text("utf-8"))


def context_budget() -> int:
    return max(
        llm_context_tokens() - settings.LLM_MAX_TOKENS - SAFETY_MARGIN_TOKENS,
        256,
    )


def language_name(code: str) -> str:
    try:
        return get_language_info(code)["name"]
    except KeyError:
        return code


def untrusted(text: str) -> str:
    """Text from outside (passages, messages, memories) with our delimiter tags defused,
    so it cannot close its own block and pose as instructions."""
    return _TAG_RE.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", text)


def student_block(text: str) -> str:
    """A student's message as the model reads it, new or earlier: defused, in its tag."""
    return f"<student_message>\n{untrusted(text)}\n</student_message>"


def _system_prompt(*, course_title: str, profile: LearnerProfile) -> tuple[str, str]:
    prompt = prompt_load(TUTOR_PROMPT)
    lines = []
    if profile.level:
        lines.append(f"- Level: {untrusted(profile.level)}")
    if profile.goals:
        lines.append(f"- Goals: {untrusted(profile.goals)}")
    if profile.weak_concepts:
        concepts = ", ".join(untrusted(c) for c in profile.weak_concepts)
        lines.append(f"- Concepts they find hardest so far: {concepts}")
    text = prompt.text.format(
        course_title=untrusted(course_title),
        language=language_name(profile.language),
        learner_profile="\n".join(lines) or "- Nothing else is known yet.",
    )
    return prompt.version, text.strip()


def _passage_block(passage: Passage) -> str:
    return f"[{passage.n}] {untrusted(passage.source)}\n{untrusted(passage.text).strip()}"


def _frame(*, material: str = NO_PASSAGES, memories: str = NO_MEMORIES) -> str:
    """The last user message's frame around the question: the passages and the learner's
    memories, each in its tags (the placeholders when there are none)."""
    return (
        f"<course_material>\n{material}\n</course_material>\n\n"
        f"<learner_memory>\n{memories}\n</learner_memory>\n\n"
    )


def _fits_by_bytes(texts: list[str], *, messages: int, budget: int) -> bool:
    """Whether ``texts`` in ``messages`` chat messages surely fit in ``budget`` tokens: no
    byte-level tokenizer makes more tokens than bytes (``ai.llm_capabilities``), the frame
    and separators included."""
    used = sum(bytes_bound(t) + 2 for t in texts) + bytes_bound(_frame())
    return used + MESSAGE_OVERHEAD_TOKENS * messages <= budget


def _alternating(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Consecutive turns of one role merged: some chat templates reject two user turns in a
    row, which a failed reply in the history would otherwise leave."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            content = f"{merged[-1]['content']}\n\n{turn['content']}"
            merged[-1] = {"role": turn["role"], "content": content}
        else:
            merged.append(dict(turn))
    return merged


def context_build(
    *,
    course_title: str,
    profile: LearnerProfile,
    question: str,
    passages: Sequence[Passage],
    memories: Sequence[str] = (),
    history: Sequence[Turn] = (),
    count: Callable[[list[str]], int] | None = None,
) -> TutorContext:
    """The chat messages for one reply, within ``context_budget()`` tokens.

    ``passages`` in rank order, ``memories`` newest first, ``history`` oldest first
    (without the new ``question``). ``count``: the server's tokenizer (texts in, tokens
    out, one call), when it has one. Raises ``LLMContextExceeded`` when the question alone
    does not fit.
    """
    budget = context_budget()
    prompt_version, system = _system_prompt(course_title=course_title, profile=profile)
    system_message = {"role": "system", "content": system}
    question_block = student_block(question)
    earlier = [
        {
            "role": t.role,
            "content": student_block(t.text) if t.role == "user" else untrusted(t.text),
        }
        for t in history
        if t.text.strip()
    ]
    blocks = [_passage_block(p) for p in passages]
    memory_lines = [f"- {untrusted(m).strip()}" for m in memories]
    if count is not None and _fits_by_bytes(
        [system, question_block, *blocks, *memory_lines, *(m["content"] for m in earlier)],
        messages=len(earlier) + 2,
        budget=budget,
    ):
        # Everything fits even at one token per byte: the server's tokenizer (a round trip
        # to a server that may be busy) cannot change what goes in.
        count = None

    # The estimate errs high; with the server's tokenizer it is scaled to this prompt's
    # real ratio (one call on all of its text), plus a margin for pieces that differ.
    scale = 1.0
    if count is not None:
        texts = [system, *blocks, *memory_lines, *(m["content"] for m in earlier)]
        estimated = sum(tokens_estimate(t) for t in texts)
        if estimated:
            scale = min(max(count(texts) / estimated * 1.15, 0.05), 1.0)

    def cost(text: str) -> int:
        return math.ceil(tokens_estimate(text) * scale) + 1

    fixed = (
        tokens_estimate(system) + tokens_estimate(_frame()) + 2 * MESSAGE_OVERHEAD_TOKENS
    )  # the shared part is counted unscaled: it is always sent
    if count is not None:
        question_cost = count([question_block])
    else:
        question_cost = tokens_estimate(question_block)
    remaining = budget - fixed - question_cost
    if remaining < 0:
        raise LLMContextExceeded(
            detail=f"the student's message takes {question_cost} tokens; {budget - fixed} fit",
            status_code=400,
        )

    passage_allowance = int(remaining * PASSAGE_SHARE)
    kept: list[Passage] = []
    for passage, block in zip(passages, blocks, strict=True):
        if cost(block) > passage_allowance:
            break  # lower-ranked passages must not jump ahead of a better one
        # Renumber so the prompt's numbers are 1..n without gaps.
        kept.append(dataclasses.replace(passage, n=len(kept) + 1))
        passage_allowance -= cost(block)
        remaining -= cost(block)

    memory_allowance = int(remaining * MEMORY_SHARE / (1 - PASSAGE_SHARE))
    kept_memories: list[str] = []
    for line in memory_lines:
        if cost(line) > memory_allowance:
            break
        kept_memories.append(line)
        memory_allowance -= cost(line)
        remaining -= cost(line)

    turns: list[dict[str, str]] = []
    for message in reversed(earlier):
        turn_cost = cost(message["content"]) + MESSAGE_OVERHEAD_TOKENS
        if turn_cost > remaining:
            break
        turns.append(message)
        remaining -= turn_cost
    turns.reverse()

    def assemble() -> list[dict[str, str]]:
        # A chat template expects the turns after the system message to start with the user.
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
        final = (
            _frame(
                material="\n\n".join(_passage_block(p) for p in kept) or NO_PASSAGES,
                memories="\n".join(kept_memories) or NO_MEMORIES,
            )
            + question_block
        )
        return [system_message, *_alternating([*turns, {"role": "user", "content": final}])]

    messages = assemble()
    used = sum(message_tokens_estimate(m) for m in messages)
    if count is not None:
        # The real count decides: trim the oldest turn, then the lowest passage, until it fits.
        for _attempt in range(8):
            used = count([m["content"] for m in messages]) + MESSAGE_OVERHEAD_TOKENS * len(messages)
            if used <= budget or not (turns or kept or kept_memories):
                break
            if turns:
                del turns[:2]
            elif kept:
                kept.pop()
            else:
                kept_memories.pop()
            messages = assemble()
    return TutorContext(
        messages=messages,
        passages=kept,
        prompt_version=prompt_version,
        tokens_estimate=used,
        budget=budget,
    )
