"""What the tutor model is given for one reply, fitted to a token budget.

The budget is ``LLM_CONTEXT_TOKENS - LLM_MAX_TOKENS`` (the reply must fit in the model's
window too) less a small safety margin. Tokens are *estimated* by ``ai.tokens`` (the one
estimate the product uses where no tokenizer counts), which errs high: overestimating
wastes a little context; underestimating would make the server reject the request.

What goes in, in order of priority:

1. the system prompt (a versioned file in ``tutor/prompts/``) with the learner's profile:
   preferred language and what the caller knows of their level; never their name;
2. the student's new message (cut only if it alone would not fit);
3. the course passages, numbered [1], [2] ... in rank order (up to 60% of what is left);
4. memory summaries of earlier sessions, newest first (up to 10%);
5. the conversation's recent turns, newest first, with whatever is left.

Passages, memories and the message go in the last user turn, each inside its own tag, so
the model can tell data from instructions; the stable system prompt and earlier turns come
first, which keeps the prompt prefix reusable by the server's prefix cache.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.utils.translation import get_language_info

from ai.tokens import MESSAGE_OVERHEAD_TOKENS, message_tokens_estimate, tokens_estimate

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
    def source(self) -> str:
        parts = [self.title]
        section = self.section
        # A section path often starts with the document's own title (its top heading).
        if section == self.title:
            section = ""
        elif section.startswith(f"{self.title} › "):
            section = section[len(self.title) + 3 :]
        if section:
            parts.append(section)
        label = " — ".join(p for p in parts if p)
        if self.page is not None:
            label += f" (p. {self.page})"
        return label

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
        settings.LLM_CONTEXT_TOKENS - settings.LLM_MAX_TOKENS - SAFETY_MARGIN_TOKENS,
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


def _cut_to_tokens(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` whose estimate fits ``tokens`` (a binary search)."""
    if tokens_estimate(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if tokens_estimate(text[:middle]) + 1 <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + " …"


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
) -> TutorContext:
    """The chat messages for one reply, within ``context_budget()`` estimated tokens.

    ``passages`` in rank order, ``memories`` newest first, ``history`` oldest first
    (without the new ``question``).
    """
    budget = context_budget()
    prompt_version, system = _system_prompt(course_title=course_title, profile=profile)
    system_message = {"role": "system", "content": system}

    # The wrapper around the question, with the empty blocks, costs tokens as well.
    # (counting the placeholders of empty blocks even when the blocks will be filled).
    frame = (
        f"<course_material>\n{NO_PASSAGES}\n</course_material>\n\n"
        f"<learner_memory>\n{NO_MEMORIES}\n</learner_memory>\n\n"
        "<student_message>\n\n</student_message>"
    )
    fixed = (
        message_tokens_estimate(system_message) + tokens_estimate(frame) + MESSAGE_OVERHEAD_TOKENS
    )
    question = _cut_to_tokens(untrusted(question), budget - fixed)
    remaining = budget - fixed - tokens_estimate(question)

    passage_allowance = int(remaining * PASSAGE_SHARE)
    kept: list[Passage] = []
    for passage in passages:
        cost = tokens_estimate(_passage_block(passage)) + 1
        if cost > passage_allowance:
            break  # lower-ranked passages must not jump ahead of a better one
        # Renumber so the prompt's numbers are 1..n without gaps.
        kept.append(dataclasses.replace(passage, n=len(kept) + 1))
        passage_allowance -= cost
        remaining -= cost

    memory_allowance = int(remaining * MEMORY_SHARE / (1 - PASSAGE_SHARE))
    memory_lines: list[str] = []
    for memory in memories:
        line = f"- {untrusted(memory).strip()}"
        cost = tokens_estimate(line) + 1
        if cost > memory_allowance:
            break
        memory_lines.append(line)
        memory_allowance -= cost
        remaining -= cost

    turns: list[dict[str, str]] = []
    for turn in reversed(history):
        if not turn.text.strip():
            continue
        message = {"role": turn.role, "content": turn.text}
        cost = message_tokens_estimate(message)
        if cost > remaining:
            break
        turns.append(message)
        remaining -= cost
    turns.reverse()
    # A chat template expects the turns after the system message to start with the user.
    while turns and turns[0]["role"] != "user":
        turns.pop(0)

    material = "\n\n".join(_passage_block(p) for p in kept) or NO_PASSAGES
    final = (
        f"<course_material>\n{material}\n</course_material>\n\n"
        f"<learner_memory>\n{chr(10).join(memory_lines) or NO_MEMORIES}\n</learner_memory>\n\n"
        f"<student_message>\n{question}\n</student_message>"
    )
    messages = [system_message, *_alternating([*turns, {"role": "user", "content": final}])]
    return TutorContext(
        messages=messages,
        passages=kept,
        prompt_version=prompt_version,
        tokens_estimate=sum(message_tokens_estimate(m) for m in messages),
        budget=budget,
    )
