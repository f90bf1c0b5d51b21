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

import difflib
import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ai.ledger import LLMCallFor, Purpose
from ai.llm import (
    LLMBadResponse,
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

logger = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 500
MASTERED = 0.85  # at or above this (with enough data) a concept is not practised further
PREREQUISITE_MET = 0.7  # a prerequisite at this level unlocks what depends on it
EDGE = 0.65  # practise where success is likely but not certain
QUESTIONS_PER_GENERATION = 6
PROMPT_VERSION = "practice-questions-v2"
_PROMPT_FILE = Path(__file__).parent / "prompts" / "practice_questions_v2.txt"
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


def cloze_question(*, prompt: str, answer: str, sentence: str) -> DraftQuestion:
    """A fill-in-the-blank draft: ``prompt`` is ``sentence`` (the material's own, shown as
    the explanation after answering) with ``answer`` blanked."""
    return DraftQuestion(
        kind=PracticeQuestion.Kind.CLOZE,
        prompt=prompt,
        answers=[answer],
        explanation=sentence,
        source_text=sentence,
    )


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
    return cloze_question(prompt=prompt, answer=term, sentence=sentence)


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


# What the model is asked for, one question a call: a sentence copied from the material and
# the key term of it. Small models (SmolLM2-135M) could not write a cloze with its blank or
# a question grounded in the material; they copy a sentence and name a term in it well, with
# one worked example. The product checks both against the material and makes the blank.
SENTENCE_MAX_CHARS = 200
ANSWER_MAX_CHARS = 40
# Enough for a sentence of SENTENCE_MAX_CHARS and its answer in any language (and the JSON
# around them): the tutor's LLM_MAX_TOKENS has nothing to do with it.
PRACTICE_MAX_TOKENS = 256
# Calls a job may spend on unusable replies beyond one call a question.
SPARE_CALLS = 3
TEMPERATURES = (0.3, 0.6, 0.9)
# The share of a copied sentence's words that must be the material's (sentence_copied).
SENTENCE_MATCH_RATIO = 0.8
CLOZE_MIN_WORDS = 4  # words a cloze keeps besides its blank
ANSWER_MAX_WORDS = 4  # a term, not a phrase (the prompt asks for one to three words)
# How alike a misspelt term must be to the sentence's own words (term_in_sentence).
ANSWER_MATCH_RATIO = 0.85
MATERIAL_MAX_CHARS = 12000
MATERIAL_MARGIN_TOKENS = 64
_EXAMPLE_FILE = Path(__file__).parent / "prompts" / "practice_questions_v2_example.json"


def _llm_schema() -> dict:
    # Short bounds only: the grammar engine enforces them (ai.llm.SERVER_MAX_LENGTH), so a
    # small model cannot ramble to max_tokens; long ones would not reach it.
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["sentence", "answer"],
        "properties": {
            "sentence": {"type": "string", "minLength": 10, "maxLength": SENTENCE_MAX_CHARS},
            "answer": {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS},
        },
    }


def _llm_messages(*, concept: Concept, material: str) -> list[dict]:
    description = f" ({concept.description})" if concept.description else ""
    system = _PROMPT_FILE.read_text().format(concept=concept.name, description=description)
    example = json.loads(_EXAMPLE_FILE.read_text())
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"<material>\n{example['material']}\n</material>"},
        {"role": "assistant", "content": json.dumps(example["reply"], ensure_ascii=False)},
        {"role": "user", "content": f"<material>\n{material}\n</material>"},
    ]


def _plain_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def llm_sentences(text: str) -> list[str]:
    """The material's statements: its sentences, and list items apart from the prose
    (questions are left out: a blank in one asks nothing)."""
    parts = re.split(r"\n\s*(?:[-*•]|\d+\.)\s+|\n\s*\n", text)
    return [
        s
        for part in parts
        for s in _sentences(part)
        if len(s.split()) >= CLOZE_MIN_WORDS and not s.endswith("?")
    ]


def sentence_copied(copy: str, sentences: Sequence[str]) -> str | None:
    """The sentence of ``sentences`` that ``copy`` reproduces, as the material has it: at
    least SENTENCE_MATCH_RATIO of the copy's words are runs (two words or more) of that
    sentence, so a model that drops a comma, changes a word, copies one clause or is cut at
    SENTENCE_MAX_CHARS still copied it; None for a sentence the material does not have."""
    wanted = _plain_words(copy)
    if len(wanted) < CLOZE_MIN_WORDS:
        return None
    matcher: difflib.SequenceMatcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    best, best_share = None, 0.0
    for sentence in sentences:
        matcher.set_seq1(_plain_words(sentence))
        copied = sum(b.size for b in matcher.get_matching_blocks() if b.size >= 2)
        share = copied / len(wanted)
        if share > best_share:
            best, best_share = sentence, share
    return best if best_share >= SENTENCE_MATCH_RATIO else None


def answer_trimmed(answer: str, *, language: str) -> str:
    """``answer`` less the punctuation and function words around it ("Aerobic respiration
    is a" → "Aerobic respiration"): what small models add to a term."""
    words = answer.strip().split()
    stop = _STOPWORDS[language] | _ARTICLES

    def bare(word: str) -> str:
        return word.strip(".,;:!?\"'()[]").casefold()

    while words and bare(words[-1]) in stop | {""}:
        words.pop()
    while words and bare(words[0]) in stop | {""}:
        words.pop(0)
    return " ".join(words).strip(".,;:!?\"'()[]")


def term_in_sentence(term: str, sentence: str) -> str | None:
    """``term`` as ``sentence`` writes it: the same words (any case), else, for a term of
    five letters or more, the run of as many words most like it when at least
    ANSWER_MATCH_RATIO alike (a model's misspelling, "chloroplastes"); None otherwise."""
    found = re.search(rf"(?<!\w){re.escape(term)}(?!\w)", sentence, flags=re.IGNORECASE)
    if found:
        return found.group(0)
    wanted = " ".join(_plain_words(term))
    if len(wanted.replace(" ", "")) < 5:
        return None
    spans = list(_WORD.finditer(sentence))
    size = len(wanted.split())
    best, best_ratio = None, 0.0
    for start in range(len(spans) - size + 1):
        run = sentence[spans[start].start() : spans[start + size - 1].end()]
        ratio = difflib.SequenceMatcher(None, " ".join(_plain_words(run)), wanted).ratio()
        if ratio > best_ratio:
            best, best_ratio = run, ratio
    return best if best_ratio >= ANSWER_MATCH_RATIO else None


def cloze_from_copy(
    *, copy: str, answer: str, sentences: Sequence[str], language: str
) -> DraftQuestion | None:
    """A cloze from the model's copied sentence and term: the material's own sentence with
    the term blanked. None when the sentence is not the material's, the term is not in it,
    is no content word, is longer than ANSWER_MAX_WORDS, or leaves too little of the
    sentence to answer from. A copy of two sentences counts as a copy of the one that has
    the term."""
    term = answer_trimmed(answer, language=language)
    if len(term.split()) > ANSWER_MAX_WORDS:
        return None
    if not _content_words(term, language) and not re.search(r"\d", term):
        return None
    for part in dict.fromkeys([copy, *_sentences(copy)]):
        original = sentence_copied(part, sentences)
        written = term_in_sentence(term, original) if original else None
        if original is None or written is None:
            continue
        # Every mention is blanked: a second one would give the answer away.
        prompt = re.sub(rf"(?<!\w){re.escape(written)}(?!\w)", BLANK, original, flags=re.IGNORECASE)
        if len(_WORD.findall(prompt.replace(BLANK, " "))) < CLOZE_MIN_WORDS:
            continue
        return cloze_question(prompt=prompt, answer=written, sentence=original)
    return None


def _usage_added(total: dict, usage: dict) -> dict:
    if not total:
        return dict(usage)
    added = dict(usage)
    for key in ("prompt_tokens", "completion_tokens"):
        if total.get(key) is not None or usage.get(key) is not None:
            added[key] = (total.get(key) or 0) + (usage.get(key) or 0)
    for key in ("total_s", "queue_wait_s", "attempts"):
        added[key] = (total.get(key) or 0) + (usage.get(key) or 0)
    added["calls"] = total.get("calls", 1) + 1
    return added


def questions_draft_llm(
    *,
    concept: Concept,
    texts: Sequence[str],
    limit: int = QUESTIONS_PER_GENERATION,
    requested_by_id: int | None = None,
) -> tuple[list[DraftQuestion], dict]:
    """Fill-in-the-blank questions chosen by the language model, one a call, and the
    generation record (model, prompt version, usage summed over the calls).

    Each call asks for a sentence copied from the material and its key term; the product
    keeps it only when the sentence is the material's and the term is in it, and blanks the
    term itself (``cloze_from_copy``). A sentence used once leaves the material the next
    call sees, so questions do not repeat; an unusable reply costs one of SPARE_CALLS, and
    the next call runs warmer. Raises ``ai.llm.LLMError`` when a call fails before any
    question was written (a reply that is not valid JSON only when no call gave one). Each
    call goes in the ledger, under the course and the teacher who asked."""
    joined = "\n\n".join(texts)[:MATERIAL_MAX_CHARS]
    language = _language(joined)
    sentences = llm_sentences(joined)
    used: set[str] = set()
    drafts: list[DraftQuestion] = []
    usage_total: dict = {}
    bad_reply: LLMBadResponse | None = None
    answered = False  # a call gave valid JSON
    focus = ""
    for call_index in range(limit + SPARE_CALLS):
        if len(drafts) >= limit:
            break
        remaining = [s for s in sentences if s not in used]
        if not remaining:
            break
        material_left = focus or " ".join(remaining)
        focus = ""
        # The material gets what the model's context leaves after the instructions and the
        # answer, in real tokens (the server's tokenizer, else a byte bound).
        room = (
            llm_context_tokens()
            - PRACTICE_MAX_TOKENS
            - prompt_tokens(_llm_messages(concept=concept, material=""))[0]
            - MATERIAL_MARGIN_TOKENS
        )
        messages = _llm_messages(concept=concept, material=text_fit(material_left, room))
        try:
            data, usage = chat_json(
                messages=messages,
                schema=_llm_schema(),
                schema_name="practice_question",
                prompt_version=PROMPT_VERSION,
                max_tokens=PRACTICE_MAX_TOKENS,
                temperature=TEMPERATURES[min(call_index, len(TEMPERATURES) - 1)],
                call=LLMCallFor(
                    purpose=Purpose.PRACTICE, user_id=requested_by_id, course_id=concept.course_id
                ),
            )
        except LLMBadResponse as error:
            bad_reply = error
            if error.usage is not None:
                usage_total = _usage_added(usage_total, error.usage.as_dict())
            continue
        except LLMError:
            if drafts:
                break  # keep what was written; the server can be asked again later
            raise
        answered = True
        usage_total = _usage_added(usage_total, usage.as_dict())
        draft = cloze_from_copy(
            copy=data["sentence"], answer=data["answer"], sentences=remaining, language=language
        )
        if draft is None:
            logger.info("LLM practice reply unusable for %s: %r", concept.pk, data)
            # A sentence of the material with a term not in it: the next call is asked for a
            # term of that sentence alone.
            copied = sentence_copied(data["sentence"], remaining)
            if copied is not None and copied != material_left:
                focus = copied
            else:
                used.update([copied] if copied else [])
            continue
        used.add(draft.source_text)
        if all(d.prompt != draft.prompt for d in drafts):
            drafts.append(draft)
    if not answered and bad_reply is not None:
        raise bad_reply
    return drafts, usage_total


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
    *, learner: User, concept: Concept | int, exclude: int | None = None
) -> PracticeQuestion | None:
    """The concept's (a concept or its id) approved question the learner has not seen, or
    saw longest ago."""
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
    # One query for the concepts that qualify (``_is_mastered`` in SQL), one for the question.
    mastered = ConceptMastery.objects.filter(
        learner=learner, enough_data=True, probability__gte=MASTERED
    ).values("concept_id")
    candidates = set(
        PracticeQuestion.objects.approved()
        .filter(concept_id__in=concept_ids)
        .exclude(concept_id__in=mastered)
        .values_list("concept_id", flat=True)
    )
    for concept_id in concept_ids:
        if concept_id in candidates:
            return practice_question_for(learner=learner, concept=concept_id)
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
