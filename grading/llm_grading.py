"""Asking the language model for a rubric grade: prompt, schema, and checking the answer.

The prompt puts everything shared by an assignment's essays first (instructions, rubric,
exemplars: the system message, identical for every essay, so vLLM's prefix cache serves
it) and the one essay last, between markers, as untrusted data. The JSON schema is built
from the rubric: each criterion's score may only take the values on its scale, so neither
the model nor an essay can push a score out of bounds; the reply is checked again here.

Evidence quotes must be real: each is looked up in the essay (whitespace and typographic
quotes folded; near-verbatim quotes are matched by similarity and replaced by the essay's
own words) and dropped, and counted, when it is not there.

Long essays: the model's context (the server's, else ``LLM_CONTEXT_TOKENS``) bounds what it
can read, counted in real tokens. An essay longer than the room left after the shared part
and the answer is graded from an excerpt: its beginning, evenly spaced samples of the
middle and its end, with the omitted stretches marked. The proposal carries a notice
saying so, its confidence is capped so it rises in the review queue, and the teacher reads
the whole essay. The rubric and exemplars alone over the context are a permanent error.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from ai.ledger import LLMCallFor, Purpose
from ai.llm import LLMContextExceeded, chat_json, llm_context_tokens, prompt_tokens
from grading.manipulation import ESSAY_CLOSE, ESSAY_OPEN, invisible_characters_remove

PROMPT_VERSION = "grade.v2"
SCHEMA_NAME = "rubric_grade"
_PROMPTS = Path(__file__).resolve().parent / "prompts"
# Room kept free in the context for what a chat template adds.
CONTEXT_MARGIN_TOKENS = 64
# What an answer may take per criterion, plus the student feedback.
ANSWER_TOKENS_PER_CRITERION = 220
ANSWER_TOKENS_FEEDBACK = 400
MAX_QUOTES = 3
# Confidence ceiling for a proposal made from an excerpt.
EXCERPT_CONFIDENCE_CAP = 0.4
RETRY_TEMPERATURE = 0.7
_ENUM_LIMIT = 201
_RATIONALE_CHARS = 1200
_FEEDBACK_CHARS = 500


@dataclass
class GradeResult:
    criteria: dict[str, dict[str, Any]]
    feedback: dict[str, Any]
    dropped_quotes: int
    notice: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    # Passages the model reported as addressed to the grader, each verified in the essay.
    grader_directed: list[str] = field(default_factory=list)


@cache
def _prompt_template(version: str) -> str:
    name = version.replace("grade.", "grade_system.")
    return (_PROMPTS / f"{name}.md").read_text(encoding="utf-8")


def criterion_key(criterion) -> str:
    return f"criterion_{criterion.pk}"


def _scale(criterion) -> list[float]:
    steps = int((criterion.max_score - criterion.min_score) / criterion.step)
    return [float(criterion.min_score + criterion.step * i) for i in range(steps + 1)]


def grading_schema(criteria) -> dict[str, Any]:
    """The JSON schema of an answer: one object per criterion with its score bounded by
    the criterion's own scale, and the student feedback."""
    properties: dict[str, Any] = {}
    for criterion in criteria:
        scale = _scale(criterion)
        if len(scale) <= _ENUM_LIMIT:
            score: dict[str, Any] = {"type": "number", "enum": scale}
        else:
            score = {
                "type": "number",
                "minimum": float(criterion.min_score),
                "maximum": float(criterion.max_score),
            }
        properties[criterion_key(criterion)] = {
            "type": "object",
            "properties": {
                "score": score,
                "rationale": {"type": "string"},
                "evidence": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_QUOTES},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["score", "rationale", "evidence", "confidence"],
            "additionalProperties": False,
        }
    feedback = {
        "type": "object",
        "properties": {
            "strengths": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "next_steps": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["strengths", "next_steps"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "criteria": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
            "feedback": feedback,
            # The model's own flag: passages addressed to the grader (empty when none).
            "grader_directed": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": MAX_QUOTES,
            },
        },
        "required": ["criteria", "feedback", "grader_directed"],
        "additionalProperties": False,
    }


def _rubric_text(criteria) -> str:
    lines = []
    for criterion in criteria:
        scale = ", ".join(f"{value:g}" for value in _scale(criterion))
        lines.append(f"- {criterion.name} [key: {criterion_key(criterion)}; scores: {scale}]")
        descriptors = criterion.level_descriptors or {}
        for level in sorted(descriptors, key=_as_number):
            lines.append(f"    {level}: {descriptors[level]}")
    return "\n".join(lines)


def _as_number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.inf


def _exemplars_text(exemplars) -> str:
    if not exemplars:
        return ""
    parts = ["\nExemplar essays scored by the teacher (for calibration; do not quote them):"]
    for number, exemplar in enumerate(exemplars, start=1):
        scores = ", ".join(f"{name}: {score}" for name, score in exemplar.scores.items())
        parts.append(f"\nExemplar {number} ({scores}):\n{exemplar.text.strip()}")
    return "\n".join(parts)


def system_prompt(*, assignment, criteria, exemplars, version: str = PROMPT_VERSION) -> str:
    """The shared part: identical for every essay of an assignment."""
    return _prompt_template(version).format(
        essay_open=ESSAY_OPEN,
        essay_close=ESSAY_CLOSE,
        title=assignment.title,
        prompt=assignment.prompt or "",
        rubric=_rubric_text(criteria),
        exemplars=_exemplars_text(exemplars),
    )


def language_name(code: str) -> str:
    with translation.override("en"):
        return str(dict(settings.LANGUAGES).get(code, code))


def _neutralise(text: str) -> str:
    """The essay as the model reads it: invisible characters gone, and our own markers
    broken so the essay cannot close its block early."""
    text = invisible_characters_remove(text)
    return re.sub(r"<<<|>>>", lambda m: m.group(0)[0] * 2 + " " + m.group(0)[0], text)


def answer_tokens(criteria) -> int:
    return max(
        int(settings.LLM_MAX_TOKENS),
        ANSWER_TOKENS_PER_CRITERION * len(criteria) + ANSWER_TOKENS_FEEDBACK,
    )


def essay_fit(*, text: str, word_budget: int) -> tuple[str, str]:
    """The essay, or an excerpt of it within ``word_budget`` words, and a notice when cut.

    Strategy: 40% of the budget from the beginning (thesis, structure), 30% from the end
    (conclusion), and the rest in three evenly spaced samples of the middle.
    """
    words = text.split()
    if len(words) <= word_budget:
        return text, ""
    word_budget = max(word_budget, 60)
    head = int(word_budget * 0.4)
    tail = int(word_budget * 0.3)
    middle_total = word_budget - head - tail
    samples = 3
    sample = max(middle_total // samples, 1)
    pieces = [" ".join(words[:head])]
    middle_start, middle_end = head, len(words) - tail
    span = middle_end - middle_start
    previous_end = head
    for index in range(samples):
        centre = middle_start + span * (2 * index + 1) // (2 * samples)
        start = max(previous_end, centre - sample // 2)
        end = min(middle_end, start + sample)
        if start > previous_end:
            pieces.append(f"[… {start - previous_end} words omitted …]")
        pieces.append(" ".join(words[start:end]))
        previous_end = end
    if middle_end > previous_end:
        pieces.append(f"[… {middle_end - previous_end} words omitted …]")
    pieces.append(" ".join(words[middle_end:]))
    shown = sum(len(p.split()) for p in pieces if not p.startswith("[…"))
    notice = _(
        "This essay has %(total)d words, more than the language model can read at once. "
        "The AI graded an excerpt of %(shown)d words (the beginning, three samples of the "
        "middle and the end); please read the whole essay before confirming."
    ) % {"total": len(words), "shown": shown}
    return "\n\n".join(pieces), notice


def grade_messages(
    *, assignment, criteria, exemplars, text: str, language: str
) -> tuple[list[dict[str, str]], str]:
    """The chat messages for one essay, and the long-essay notice ('' when it fitted).

    The room for the essay is the model's context (the server's own when it says) less the
    shared part and the answer, counted in real tokens: with the server's tokenizer, else
    by a UTF-8 byte bound that no language exceeds (``ai.llm_capabilities``).
    """
    system = system_prompt(assignment=assignment, criteria=criteria, exemplars=exemplars)

    def messages_for(essay: str, cut: bool) -> list[dict[str, str]]:
        user = (
            f"Write the rationales and the feedback in {language_name(language)}.\n"
            f"{'The essay below is an excerpt of a longer essay.' if cut else ''}\n"
            f"{ESSAY_OPEN}\n{essay}\n{ESSAY_CLOSE}"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    budget = llm_context_tokens() - answer_tokens(criteria) - CONTEXT_MARGIN_TOKENS
    essay = _neutralise(text)
    messages = messages_for(essay, False)
    used, _source = prompt_tokens(messages)
    if used <= budget:
        return messages, ""
    empty, _source = prompt_tokens(messages_for("", True))
    if empty + 60 > budget:
        raise LLMContextExceeded(
            detail=f"the rubric and exemplars alone take {empty} tokens of {budget}",
            status_code=400,
        )
    words = len(essay.split())
    essay_tokens = max(used - empty, 1)
    notice = ""
    for _attempt in range(4):
        # Words in proportion to the room, then counted again: tokens per word vary.
        word_budget = max(int(words * (budget - empty) / essay_tokens * 0.95), 60)
        excerpt, notice = essay_fit(text=essay, word_budget=word_budget)
        messages = messages_for(excerpt, True)
        used, _source = prompt_tokens(messages)
        if used <= budget:
            return messages, notice
        essay_tokens = int(essay_tokens * used / max(budget, 1)) + 1
    raise LLMContextExceeded(
        detail=f"no excerpt of the essay fits the context ({used} tokens of {budget})",
        status_code=400,
    )


# --- evidence --------------------------------------------------------------------------

_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_MIN_QUOTE_CHARS = 4
# Near-verbatim quotes: how alike (difflib's ratio) and how long they must be.
QUOTE_MATCH_RATIO = 0.85
QUOTE_FUZZY_MIN_WORDS = 4


def quote_locate(text: str, quote: str) -> str | None:
    """The passage of ``text`` that ``quote`` reproduces, exactly as it stands in the text;
    None when it is not there.

    Verbatim first (whitespace and typographic quotes folded); else near-verbatim: the run
    of the essay's words most like the quote, accepted when at least QUOTE_MATCH_RATIO
    alike (case and punctuation aside), so a model that fixes a typo or drops a comma still
    cites the essay, and the teacher reads the essay's own words. A paraphrase is dropped.
    """
    words = quote.translate(_FOLD).split()
    if sum(len(w) for w in words) < _MIN_QUOTE_CHARS:
        return None
    folded = text.translate(_FOLD)  # same length: one character for one
    pattern = r"\s+".join(re.escape(word) for word in words)
    match = re.search(pattern, folded)
    if match is not None:
        return text[match.start() : match.end()]
    return _quote_near(text, words)


def _plain(word: str) -> str:
    return re.sub(r"[^\w]", "", word.casefold())


def _quote_near(text: str, quote_words: list[str]) -> str | None:
    if len(quote_words) < QUOTE_FUZZY_MIN_WORDS:
        return None  # a short quote must be verbatim: too many near matches otherwise
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    plain = [_plain(text[start:end]) for start, end in spans]
    wanted = " ".join(_plain(w) for w in quote_words)
    n = len(quote_words)
    best, best_at = 0.0, None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    for size in {n - 1, n, n + 1}:
        if size < 1:
            continue
        for start in range(0, max(len(spans) - size + 1, 0)):
            matcher.set_seq1(" ".join(plain[start : start + size]))
            if matcher.real_quick_ratio() < QUOTE_MATCH_RATIO:
                continue
            if matcher.quick_ratio() < QUOTE_MATCH_RATIO:
                continue
            ratio = matcher.ratio()
            if ratio > best:
                best, best_at = ratio, (start, size)
    if best_at is None or best < QUOTE_MATCH_RATIO:
        return None
    start, size = best_at
    return text[spans[start][0] : spans[start + size - 1][1]]


def quotes_verify(text: str, quotes: list[str]) -> tuple[list[str], int]:
    kept: list[str] = []
    dropped = 0
    for quote in quotes:
        found = quote_locate(text, quote) if isinstance(quote, str) else None
        if found is None:
            dropped += 1
        elif found not in kept:
            kept.append(found)
    return kept, dropped


def answer_check(*, data: dict[str, Any], criteria, text: str, capped: bool) -> GradeResult:
    """The model's answer as a proposal: scores on scale, quotes verified, text bounded."""
    answers = data["criteria"]
    result: dict[str, dict[str, Any]] = {}
    dropped_total = 0
    for criterion in criteria:
        answer = answers[criterion_key(criterion)]
        score = Decimal(str(answer["score"]))
        if not criterion.allows(score):
            # The schema already bounds it; a server that ignores schemas gets snapped.
            steps = round((score - criterion.min_score) / criterion.step)
            score = criterion.min_score + criterion.step * steps
            score = min(max(score, criterion.min_score), criterion.max_score)
        evidence, dropped = quotes_verify(text, list(answer.get("evidence") or [])[:MAX_QUOTES])
        dropped_total += dropped
        confidence = min(max(float(answer["confidence"]), 0.0), 1.0)
        if capped:
            confidence = min(confidence, EXCERPT_CONFIDENCE_CAP)
        result[str(criterion.pk)] = {
            "score": float(score),
            "rationale": str(answer["rationale"])[:_RATIONALE_CHARS],
            "evidence": evidence,
            "confidence": confidence,
        }
    feedback = data["feedback"]
    # Only passages really in the essay count: a model's invented quote flags nothing.
    reported = data.get("grader_directed") or []
    grader_directed, _dropped = quotes_verify(
        text, [q for q in reported if isinstance(q, str)][:MAX_QUOTES]
    )
    return GradeResult(
        grader_directed=grader_directed,
        criteria=result,
        feedback={
            "strengths": [str(s)[:_FEEDBACK_CHARS] for s in feedback["strengths"]][:3],
            "next_steps": [str(s)[:_FEEDBACK_CHARS] for s in feedback["next_steps"]][:3],
        },
        dropped_quotes=dropped_total,
    )


def essay_grade(
    *,
    assignment,
    criteria,
    exemplars,
    text: str,
    language: str,
    learner_id: int | None = None,
    retry: int = 0,
) -> GradeResult:
    """Ask the model; raises ``ai.llm.LLMError`` subclasses on failure. The call goes
    in the ledger under the learner whose essay it is (``learner_id``) and the course. A
    retry (after an unusable answer) samples at RETRY_TEMPERATURE: the same question at
    temperature 0 would get the same answer."""
    messages, notice = grade_messages(
        assignment=assignment, criteria=criteria, exemplars=exemplars, text=text, language=language
    )
    data, usage = chat_json(
        messages=messages,
        schema=grading_schema(criteria),
        schema_name=SCHEMA_NAME,
        prompt_version=PROMPT_VERSION,
        max_tokens=answer_tokens(criteria),
        temperature=0.0 if retry == 0 else RETRY_TEMPERATURE,
        call=LLMCallFor(
            purpose=Purpose.GRADING, user_id=learner_id, course_id=assignment.course_id
        ),
    )
    result = answer_check(data=data, criteria=criteria, text=text, capped=bool(notice))
    result.feedback["language"] = language
    result.notice = notice
    result.usage = usage.as_dict()
    result.model_name = usage.model
    return result
