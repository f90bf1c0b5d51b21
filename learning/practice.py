"""Practice questions: generated from the material, checked, and chosen where they help.

- Offline (no language model, or as a teacher's choice): cloze and short-answer questions
  built from the key sentences of the material's text.
- With a language model: questions written under a JSON schema.
- Either way a teacher approves (or edits, or rejects) each generated question before any
  student sees it (``question_review``).
- ``practice_answer`` checks an answer, records it as evidence for the mastery model and
  schedules the question for spaced review; ``practice_next`` picks the next question where
  the learner is not yet at mastery and the prerequisites are met.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.ledger import LLMCallFor, Purpose
from ai.llm import (
    LLMError,
    LLMUnavailable,
    chat_json,
    failure_reason,
    llm_context_tokens,
    llm_error_stored,
    prompt_tokens,
    text_fit,
)
from learners.models import Concept, Course, User
from learning.course_concepts import course_concepts
from learning.evidence import mastery_evidence_record
from learning.models import (
    ConceptMastery,
    MasteryEvidence,
    PracticeAttempt,
    PracticeQuestion,
    ReviewCard,
)
from learning.review import review_schedule

MAX_ANSWER_CHARS = 500
MASTERED = 0.85  # at or above this (with enough data) a concept is not practised further
PREREQUISITE_MET = 0.7  # a prerequisite at this level unlocks what depends on it
EDGE = 0.65  # practise where success is likely but not certain
QUESTIONS_PER_GENERATION = 6
PROMPT_VERSION = "practice-questions-v1"
_PROMPT_FILE = Path(__file__).parent / "prompts" / "practice_questions_v1.txt"
BLANK = "_____"

_STOPWORDS_EN = """
a an the and or but of to in on at by for with from as is are was were be been being it its
this that these those which who whom what when where why how than then there their they them
he she his her we our you your i not no can could may might will would should must do does
did has have had into onto over under also such each other more most some any all both only
very so if about between during through
"""
_STOPWORDS_ES = """
el la los las un una unos unas y o pero de del a al en con por para sin sobre entre es son
fue fueron ser era eran está están esta este estos estas ese esa eso que quien cual cuales
cuando donde como más menos muy también se su sus lo le les nos no sí ya hay ha han tiene
tienen puede pueden cada otro otra otros otras todo todos toda todas
"""
_STOPWORDS = {"en": frozenset(_STOPWORDS_EN.split()), "es": frozenset(_STOPWORDS_ES.split())}
_ARTICLES = {"a", "an", "the", "el", "la", "los", "las", "un", "una", "unos", "unas"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“¿¡(A-ZÁÉÍÓÚÑ0-9])")
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
_DEFINITION = re.compile(
    r"^(?P<term>[^,;:]{2,60}?)\s+(?P<verb>is|are|means|refers to|es|son|significa|se refiere a)\s+"
    r"(?P<definition>.{10,})$",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Casefolded, accents and punctuation removed, articles dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    words = re.findall(r"\w+", text)
    return " ".join(w for w in words if w not in _ARTICLES)


def _language(text: str) -> str:
    return text_language(text) or "en"


def text_language(text: str, *, min_words: int = 3) -> str | None:
    """The product language (``en``, ``es``) ``text`` is written in, by its function words;
    ``other`` when it has letters but hardly any Latin ones (Chinese, Russian...); None when
    too short to tell."""
    letters = [ch for ch in text if ch.isalpha()]
    if (
        len(letters) >= 20
        and sum(ch.isascii() or "À" <= ch <= "ɏ" for ch in letters) < len(letters) / 2
    ):
        return "other"
    words = [w.casefold() for w in _WORD.findall(text)]
    es = sum(w in _STOPWORDS["es"] for w in words)
    en = sum(w in _STOPWORDS["en"] for w in words)
    if max(es, en) < min_words:
        return None
    return "es" if es > en else "en"


def _content_words(text: str, language: str) -> list[str]:
    stop = _STOPWORDS[language]
    return [w for w in _WORD.findall(text) if len(w) > 3 and w.casefold() not in stop]


def _sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text).strip()
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclass(frozen=True)
class DraftQuestion:
    kind: str
    prompt: str
    answers: list[str]
    explanation: str
    source_text: str = ""


def _key_sentences(*, concept: Concept, texts: Sequence[str], language: str) -> list[str]:
    """The sentences that say most about the concept: they mention its name or description's
    words, are of a readable length, and carry the material's rarer (specific) terms."""
    sentences = [s for text in texts for s in _sentences(text)]
    sentences = [s for s in sentences if 6 <= len(s.split()) <= 40 and not s.endswith("?")]
    if not sentences:
        return []
    frequency = Counter(w.casefold() for s in sentences for w in _content_words(s, language))
    concept_words = {
        w.casefold() for w in _content_words(f"{concept.name} {concept.description}", language)
    }
    name = concept.name.casefold()

    def score(sentence: str) -> float:
        words = {w.casefold() for w in _content_words(sentence, language)}
        specific = sum(1.0 / math.sqrt(frequency[w]) for w in words)
        return (
            3.0 * (name in sentence.casefold())
            + 1.5 * len(words & concept_words)
            + specific / max(len(words), 1)
        )

    ranked = sorted(dict.fromkeys(sentences), key=score, reverse=True)
    return ranked


def _cloze(
    *, concept: Concept, sentence: str, frequency: Counter, language: str
) -> DraftQuestion | None:
    match = re.search(re.escape(concept.name), sentence, re.IGNORECASE)
    if match and len(concept.name.split()) <= 4:
        term = match.group(0)
    else:
        candidates = [w for w in _content_words(sentence, language) if len(w) >= 5]
        if not candidates:
            return None
        # The sentence's most specific term: rare in the material, then long.
        term = min(candidates, key=lambda w: (frequency[w.casefold()], -len(w)))
        match = re.search(r"\b" + re.escape(term) + r"\b", sentence)
        if match is None:
            return None
    # Every occurrence of the answer is blanked: a second mention would give it away.
    prompt = re.sub(r"(?<!\w)" + re.escape(term) + r"(?!\w)", BLANK, sentence, flags=re.IGNORECASE)
    if BLANK not in prompt:
        prompt = sentence[: match.start()] + BLANK + sentence[match.end() :]
    return DraftQuestion(
        kind=PracticeQuestion.Kind.CLOZE,
        prompt=prompt,
        answers=[term],
        explanation=sentence,
        source_text=sentence,
    )


_GENERIC_WORDS = """
process processes thing things type types kind kinds way ways part parts called
proceso procesos cosa cosas tipo tipos forma formas manera parte partes llamado llamada
"""
_GENERIC = frozenset(_GENERIC_WORDS.split())
KEY_TERMS = 3


def _short_answer(*, sentence: str, frequency: Counter, language: str) -> DraftQuestion | None:
    match = _DEFINITION.match(sentence.rstrip("."))
    if not match:
        return None
    term = match.group("term").strip()
    if len(term.split()) > 6:
        return None
    words = [
        w
        for w in _content_words(match.group("definition"), language)
        if w.casefold() not in _GENERIC
    ]
    # The definition's most specific words: rare in the material, then long.
    ranked = sorted(dict.fromkeys(words), key=lambda w: (frequency[w.casefold()], -len(w)))
    key_terms = [w for w in words if w in ranked[:KEY_TERMS]]
    key_terms = list(dict.fromkeys(key_terms))
    if len(key_terms) < 2:
        return None
    plural = match.group("verb").casefold() in {"are", "son"}
    if language == "es":
        prompt = f"¿Qué {'son' if plural else 'es'} {term[0].lower() + term[1:]}?"
    else:
        prompt = f"What {'are' if plural else 'is'} {term[0].lower() + term[1:]}?"
    return DraftQuestion(
        kind=PracticeQuestion.Kind.SHORT_ANSWER,
        prompt=prompt,
        answers=key_terms,
        explanation=sentence,
        source_text=sentence,
    )


def questions_draft_offline(
    *, concept: Concept, texts: Sequence[str], limit: int = QUESTIONS_PER_GENERATION
) -> list[DraftQuestion]:
    """Cloze and short-answer questions from the key sentences of ``texts`` (no model)."""
    joined = " ".join(texts)
    language = _language(joined)
    sentences = _key_sentences(concept=concept, texts=texts, language=language)
    frequency = Counter(w.casefold() for s in sentences for w in _content_words(s, language))
    drafts: list[DraftQuestion] = []
    for sentence in sentences:
        if len(drafts) >= limit:
            break
        short = _short_answer(sentence=sentence, frequency=frequency, language=language)
        if short is not None:
            drafts.append(short)
            if len(drafts) >= limit:
                break
        cloze = _cloze(concept=concept, sentence=sentence, frequency=frequency, language=language)
        if cloze is not None:
            drafts.append(cloze)
    return drafts


# Lengths the model's questions are cut to (the schema leaves them out, see _llm_schema).
PROMPT_MAX_CHARS = 1000
ANSWER_MAX_CHARS = 100
EXPLANATION_MAX_CHARS = 1500
MATERIAL_MAX_CHARS = 12000
MATERIAL_MARGIN_TOKENS = 64


def _llm_schema(limit: int) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["questions"],
        "properties": {
            "questions": {
                "type": "array",
                "maxItems": limit,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["kind", "prompt", "answers", "explanation"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["cloze", "short_answer"]},
                        # No maxLength: grammar engines compile long bounds into huge
                        # automata (llama.cpp's crashed on 1000); lengths are cut below.
                        "prompt": {"type": "string", "minLength": 5},
                        "answers": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 6,
                            "items": {"type": "string", "minLength": 1},
                        },
                        "explanation": {"type": "string"},
                    },
                },
            }
        },
    }


def questions_draft_llm(
    *,
    concept: Concept,
    texts: Sequence[str],
    limit: int = QUESTIONS_PER_GENERATION,
    requested_by_id: int | None = None,
) -> tuple[list[DraftQuestion], dict]:
    """Questions written by the language model under a JSON schema, and the generation
    record (model, prompt version, usage). Raises ``ai.llm.LLMError`` on failure. The
    call goes in the ledger once, under the course and the teacher who asked."""
    description = f" ({concept.description})" if concept.description else ""
    system = _PROMPT_FILE.read_text().format(
        count=limit, concept=concept.name, description=description
    )
    # The material gets what the model's context leaves after the instructions and the
    # answer, in real tokens (the server's tokenizer, else a byte bound).
    room = (
        llm_context_tokens()
        - int(settings.LLM_MAX_TOKENS)
        - prompt_tokens([{"role": "system", "content": system}])[0]
        - MATERIAL_MARGIN_TOKENS
    )
    material = text_fit("\n\n".join(texts)[:MATERIAL_MAX_CHARS], room)
    data, usage = chat_json(
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": f"<material>\n{material}\n</material>"},
        ],
        schema=_llm_schema(limit),
        schema_name="practice_questions",
        prompt_version=PROMPT_VERSION,
        temperature=0.3,
        call=LLMCallFor(
            purpose=Purpose.PRACTICE, user_id=requested_by_id, course_id=concept.course_id
        ),
    )
    drafts = []
    for item in data["questions"][:limit]:
        prompt = item["prompt"].strip()[:PROMPT_MAX_CHARS]
        answers = [a.strip()[:ANSWER_MAX_CHARS] for a in item["answers"] if a.strip()]
        if item["kind"] == "cloze" and BLANK not in prompt:
            # Small models often write the whole sentence: blank out the answer in it.
            blanked = cloze_blank_answer(prompt, answers)
            if blanked is None:
                continue  # a cloze with no blank cannot be answered
            prompt = blanked
        drafts.append(
            DraftQuestion(
                kind=item["kind"],
                prompt=prompt,
                answers=answers,
                explanation=item["explanation"].strip()[:EXPLANATION_MAX_CHARS],
            )
        )
    return drafts, usage.as_dict()


def cloze_blank_answer(prompt: str, answers: Sequence[str]) -> str | None:
    """``prompt`` with the first of ``answers`` that it contains (as whole words, any case)
    replaced by the blank; None when it contains none of them."""
    for answer in answers:
        found = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", prompt, flags=re.IGNORECASE)
        if found:
            return prompt[: found.start()] + BLANK + prompt[found.end() :]
    return None


def llm_failure(error: BaseException) -> tuple[str, bool] | None:
    """For a failed call to the model: what to store (the kind and the server's words) and
    whether a later try may help (unreachable, overloaded); None for any other error."""
    if not isinstance(error, LLMError):
        return None
    return llm_error_stored(error), isinstance(error, LLMUnavailable) and not error.permanent


def llm_failure_reason(stored: str) -> str:
    """The translated reason of a failure ``llm_failure`` stored ('' for other errors)."""
    return failure_reason(stored)


def questions_save(
    *,
    concept: Concept,
    drafts: Sequence[DraftQuestion],
    origin: str,
    generation: dict | None = None,
) -> list[PracticeQuestion]:
    """Store drafts. Generated questions (the language model's, and those made from the
    material offline) wait in the teacher's queue; only a teacher's own are approved at
    once. A prompt the concept already has is skipped."""
    status = (
        PracticeQuestion.Status.APPROVED
        if origin == PracticeQuestion.Origin.TEACHER
        else PracticeQuestion.Status.PENDING
    )
    saved = []
    for draft in drafts:
        if not draft.answers:
            continue
        try:
            with transaction.atomic():
                saved.append(
                    PracticeQuestion.objects.create(
                        concept=concept,
                        kind=draft.kind,
                        prompt=draft.prompt[:2000],
                        answers=draft.answers,
                        explanation=draft.explanation[:4000],
                        source_text=draft.source_text[:4000],
                        origin=origin,
                        status=status,
                        generation=generation or {},
                    )
                )
        except IntegrityError:
            continue
    return saved


def questions_generate(
    *,
    concept: Concept,
    texts: Sequence[str],
    use_llm: bool = False,
    requested_by_id: int | None = None,
) -> list[PracticeQuestion]:
    """Generate and store questions for ``concept`` from ``texts`` (``requested_by_id``:
    the teacher who asked, for the ledger of model calls)."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return []
    if use_llm:
        drafts, generation = questions_draft_llm(
            concept=concept, texts=texts, requested_by_id=requested_by_id
        )
        return questions_save(
            concept=concept,
            drafts=drafts,
            origin=PracticeQuestion.Origin.LLM,
            generation=generation,
        )
    drafts = questions_draft_offline(concept=concept, texts=texts)
    return questions_save(concept=concept, drafts=drafts, origin=PracticeQuestion.Origin.MATERIAL)


def question_check(*, kind: str, prompt: str, answers: Sequence[str]) -> None:
    """Raise ``ValidationError`` naming each thing that would make a question unusable."""
    problems = []
    if not prompt:
        problems.append(_("Write the question."))
    if not answers:
        problems.append(_("Give at least one accepted answer."))
    if kind == PracticeQuestion.Kind.CLOZE and prompt:
        if BLANK not in prompt:
            problems.append(
                _("A fill-in-the-blank question needs a blank: %(blank)s.") % {"blank": BLANK}
            )
        shown = f" {normalise(prompt)} "
        for answer in answers:
            if normalise(answer) and f" {normalise(answer)} " in shown:
                problems.append(
                    _("The answer “%(answer)s” is in the question itself.") % {"answer": answer}
                )
    if problems:
        raise ValidationError(problems)


def question_review(
    *,
    question: PracticeQuestion,
    reviewer: User,
    approve: bool,
    prompt: str | None = None,
    answers: Sequence[str] | None = None,
    explanation: str | None = None,
) -> PracticeQuestion:
    """Approve a question (with the teacher's edits to its wording, when given) or reject
    it. Edits are checked first: a question that cannot be answered is not approved."""
    fields = ["status", "reviewed_by", "reviewed_at"]
    if approve and prompt is not None:
        prompt = prompt.strip()[:2000]
        answers = [a.strip()[:200] for a in (answers or []) if a.strip()][:20]
        question_check(kind=question.kind, prompt=prompt, answers=answers)
        question.prompt, question.answers = prompt, answers
        question.explanation = (explanation or "").strip()[:4000]
        fields += ["prompt", "answers", "explanation"]
    question.status = (
        PracticeQuestion.Status.APPROVED if approve else PracticeQuestion.Status.REJECTED
    )
    question.reviewed_by = reviewer
    question.reviewed_at = timezone.now()
    try:
        with transaction.atomic():
            question.save(update_fields=fields)
    except IntegrityError:
        raise ValidationError(_("This concept already has a question worded like that.")) from None
    return question


def questions_approve(
    *, questions: Sequence[PracticeQuestion], reviewer: User
) -> tuple[list[PracticeQuestion], list[PracticeQuestion]]:
    """Approve each waiting question as it stands; returns (approved, held back): one that
    would give its answer away or cannot be answered stays waiting for an edit."""
    approved, held = [], []
    for question in questions:
        if question.status != PracticeQuestion.Status.PENDING:
            continue
        try:
            question_check(kind=question.kind, prompt=question.prompt, answers=question.answers)
        except ValidationError:
            held.append(question)
            continue
        approved.append(question_review(question=question, reviewer=reviewer, approve=True))
    return approved, held


# --- answering --------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCheck:
    correct: bool
    expected: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _stem(word: str) -> str:
    # Tolerates plurals and gender endings ("proteins" ~ "protein", "celulas" ~ "celula").
    return word[:6] if len(word) > 6 else word.rstrip("s")


def answer_validate(answer: str) -> str:
    answer = answer.strip()
    if not answer:
        raise ValidationError(_("Write an answer first."), code="empty")
    if len(answer) > MAX_ANSWER_CHARS:
        raise ValidationError(
            _("That answer is too long: at most %(max)d characters.") % {"max": MAX_ANSWER_CHARS},
            code="too_long",
        )
    return answer


def answer_check(*, question: PracticeQuestion, answer: str) -> AnswerCheck:
    """Cloze: the answer equals an accepted answer once normalised. Short answer: at least
    half of the key terms (rounded up) appear in it."""
    given = normalise(answer)
    if question.kind == PracticeQuestion.Kind.CLOZE:
        correct = any(given == normalise(a) for a in question.answers)
        return AnswerCheck(correct=correct, expected=question.answers[0])
    stems = {_stem(w) for w in given.split()}
    matched = [t for t in question.answers if all(_stem(w) in stems for w in normalise(t).split())]
    missing = [t for t in question.answers if t not in matched]
    needed = math.ceil(len(question.answers) / 2)
    return AnswerCheck(
        correct=len(matched) >= needed,
        expected=", ".join(question.answers),
        matched=matched,
        missing=missing,
    )


@dataclass(frozen=True)
class PracticeResult:
    attempt: PracticeAttempt
    check: AnswerCheck
    mastery: ConceptMastery
    review: ReviewCard


@transaction.atomic
def practice_answer(
    *,
    learner: User,
    question: PracticeQuestion,
    answer: str,
    is_review: bool = False,
    source: str | None = None,
) -> PracticeResult:
    """Check and record an answer: evidence for mastery, and the question's next review.
    ``source`` (a ``MasteryEvidence.Source``) says where it was asked when not in practice
    or review, e.g. under a tutor's reply. Raises ``ValidationError`` for an empty or
    over-long answer."""
    answer = answer_validate(answer)
    if question.status != PracticeQuestion.Status.APPROVED:
        raise ValidationError(_("This question is not available."), code="unavailable")
    check = answer_check(question=question, answer=answer)
    attempt = PracticeAttempt.objects.create(
        learner=learner,
        question=question,
        answer=answer,
        correct=check.correct,
        is_review=is_review,
    )
    if source is None:
        source = MasteryEvidence.Source.REVIEW if is_review else MasteryEvidence.Source.PRACTICE
    estimate = mastery_evidence_record(
        learner=learner, concept=question.concept, correct=check.correct, source=source
    )
    card = review_schedule(learner=learner, question=question, correct=check.correct)
    return PracticeResult(attempt=attempt, check=check, mastery=estimate, review=card)


# --- choosing what to practise ---------------------------------------------------------


def _is_mastered(row: ConceptMastery | None) -> bool:
    return row is not None and row.enough_data and row.probability >= MASTERED


def practice_concepts(*, learner: User, course: Course) -> list[Concept]:
    """Concepts the learner can practise now, the best first: they have approved questions,
    are not mastered, and every practicable prerequisite is at ``PREREQUISITE_MET``;
    among them, those whose estimate is nearest the edge of mastery."""
    concepts = course_concepts(course=course)
    practicable = {c.pk for c in concepts if c.approved}  # type: ignore[attr-defined]
    estimates = {
        row.concept_id: row
        for row in ConceptMastery.objects.filter(learner=learner, concept__course=course)
    }

    def prerequisites_met(concept: Concept) -> bool:
        for prerequisite in concept.prerequisites.all():
            if prerequisite.pk not in practicable:
                continue  # nothing to practise it with: it cannot block
            row = estimates.get(prerequisite.pk)
            if row is None or not row.enough_data or row.probability < PREREQUISITE_MET:
                return False
        return True

    candidates = [
        c
        for c in concepts
        if c.pk in practicable and not _is_mastered(estimates.get(c.pk)) and prerequisites_met(c)
    ]

    def distance_to_edge(concept: Concept) -> tuple[float, int, str]:
        row = estimates.get(concept.pk)
        probability = row.probability if row else 0.5
        return (abs(probability - EDGE), row.attempts if row else 0, concept.name)

    return sorted(candidates, key=distance_to_edge)


def practice_question_for(
    *, learner: User, concept: Concept, exclude: int | None = None
) -> PracticeQuestion | None:
    """The concept's approved question the learner has not seen, or saw longest ago."""
    questions = (
        PracticeQuestion.objects.approved()
        .filter(concept=concept)
        .select_related("concept")
        .annotate(last_seen=Max("attempts__created_at", filter=Q(attempts__learner=learner)))
    )
    ranked = sorted(
        questions, key=lambda q: (q.last_seen is not None, q.last_seen or timezone.now(), q.pk)
    )
    if exclude is not None and len(ranked) > 1:
        ranked = [q for q in ranked if q.pk != exclude]
    return ranked[0] if ranked else None


def check_question_for(*, learner: User, concept_ids: list[int]) -> PracticeQuestion | None:
    """A question to check understanding of what the tutor just explained: on the first of
    ``concept_ids`` (best passage first) that has approved questions and that the learner
    has not mastered, the question they have not seen or saw longest ago."""
    if not concept_ids:
        return None
    mastered = {
        row.concept_id
        for row in ConceptMastery.objects.filter(learner=learner, concept_id__in=concept_ids)
        if _is_mastered(row)
    }
    with_questions = set(
        PracticeQuestion.objects.approved()
        .filter(concept_id__in=concept_ids)
        .values_list("concept_id", flat=True)
    )
    for concept_id in concept_ids:
        if concept_id in with_questions and concept_id not in mastered:
            concept = Concept.objects.get(pk=concept_id)
            return practice_question_for(learner=learner, concept=concept)
    return None


def practice_next(
    *, learner: User, course: Course, exclude: int | None = None
) -> PracticeQuestion | None:
    """The next question to practise in the course, or None when nothing is left to
    practise (everything mastered, locked behind prerequisites, or no questions yet)."""
    for concept in practice_concepts(learner=learner, course=course):
        question = practice_question_for(learner=learner, concept=concept, exclude=exclude)
        if question is not None:
            return question
    return None
