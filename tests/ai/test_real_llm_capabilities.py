"""What the product learns of a real model server, and the pipelines that depend on it:
llama.cpp with SmolLM2 started for the run, or the server LLM_BASE_URL names
(`pytest -m real_llm`). Assertions hold for any server; those about llama.cpp itself only
when the run started it."""

from __future__ import annotations

import html
import time

import pytest

from ai import llm
from ai.llm_capabilities import bytes_bound

pytestmark = [pytest.mark.real_llm, pytest.mark.django_db]

SAMPLES = {
    "en": "Photosynthesis turns light energy into chemical energy stored in sugar. " * 12,
    "es": "La fotosíntesis convierte la energía luminosa en energía química almacenada. " * 12,
    "ru": "Фотосинтез превращает энергию света в химическую энергию, запасённую в сахаре. " * 12,
    "zh": "光合作用是植物利用光能把二氧化碳和水转化为葡萄糖和氧气的过程。" * 12,
    "ko": "광합성은 식물이 빛 에너지를 화학 에너지로 바꾸는 과정입니다. " * 12,
    "digits": "6 CO2 + 6 H2O -> C6H12O6 + 6 O2; 31415926535 and 2.718281828 " * 12,
}


def test_the_server_is_probed_for_its_context_tokenizer_and_structured_output(real_llm):
    llm.capabilities_clear()
    caps = llm.capabilities()
    if real_llm.started_here:
        assert caps.kind == "llama.cpp"
        assert caps.tokenize_form == "content"
        # Per slot: the run's server shares a 4 x 8192 context among 4 slots.
        assert llm.llm_context_tokens() == 8192
    counted, source = llm.prompt_tokens([{"role": "user", "content": SAMPLES["zh"]}])
    assert counted > 0 and source in ("tokenizer", "bytes")


def test_the_byte_bound_never_undercounts_the_real_tokenizer(real_llm):
    llm.capabilities_clear()
    count = llm.server_tokens_counter()
    if count is None:
        pytest.skip("this server has no tokenizer endpoint")
    for language, text in SAMPLES.items():
        real = count([text])
        assert bytes_bound(text) >= real, language


def test_a_stream_and_a_schema_reply_carry_real_token_counts(real_llm):
    stream = llm.chat_stream(
        messages=[{"role": "user", "content": "Say hello in five words."}],
        prompt_version="tutor-v1",
        max_tokens=24,
    )
    text = "".join(stream)
    assert text.strip()
    assert stream.usage.prompt_tokens > 0 and stream.usage.completion_tokens > 0
    assert stream.usage.usage_source in ("server", "tokenizer", "bytes")

    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "maxLength": 800}},
        "required": ["summary"],
        "additionalProperties": False,
    }
    data, usage = llm.chat_json(
        messages=[{"role": "user", "content": "Summarise: plants make sugar from light."}],
        schema=schema,
        schema_name="summary",
        prompt_version="memory_summary.v1",
        max_tokens=200,
    )
    assert isinstance(data["summary"], str)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    # The form that worked is remembered for the next call.
    assert llm.capabilities().structured_form is not None


@pytest.mark.worker
@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)
def test_a_question_job_writes_a_usable_question_through_a_real_worker(
    real_llm, celery_worker, client, teacher, course, settings, monkeypatch
):
    from learners.models import Concept
    from learning import practice
    from learning.models import PracticeQuestion, QuestionGeneration

    # One question: a CPU server shared with the whole run is slow. The tutor's reply
    # length does not bound the practice call (it has its own).
    monkeypatch.setattr(practice, "QUESTIONS_PER_GENERATION", 1)
    settings.LLM_MAX_TOKENS = 400
    # A paragraph of the demo material (02-cellular-respiration.md): SmolLM2 copies one of
    # its sentences and names a term of it; it paraphrased a three-sentence summary instead.
    text = (
        "Every living cell needs a steady supply of usable energy to build molecules, move "
        "and keep its internal conditions stable. Cellular respiration releases the energy "
        "stored in glucose and captures it in ATP, the cell's energy currency. Plants respire "
        "too: they make sugar by photosynthesis and then break it down by respiration, day "
        "and night."
    )
    concept = Concept.objects.create(course=course, name="Cellular respiration")
    client.force_login(teacher)
    client.post(
        f"/courses/{course.pk}/questions/generate/",
        {"concept": concept.pk, "use_llm": "1", "text": text},
    )
    generation = QuestionGeneration.objects.get(concept=concept)
    deadline = time.monotonic() + 560
    while generation.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        generation.refresh_from_db()
    assert generation.status == "done", (generation.status, generation.error)
    assert generation.usage["prompt_tokens"] > 0
    assert generation.usage["completion_tokens"] > 0
    assert generation.questions_created >= 1
    question = PracticeQuestion.objects.get(concept=concept)
    assert question.origin == PracticeQuestion.Origin.LLM
    assert question.status == PracticeQuestion.Status.PENDING
    # A fill-in-the-blank of a sentence of the text, whose answer fills the blank back in.
    assert question.kind == PracticeQuestion.Kind.CLOZE
    assert question.prompt.count(practice.BLANK) >= 1
    assert question.source_text in " ".join(text.split())
    assert question.answers and question.answers[0].casefold() in question.source_text.casefold()
    assert question.answers[0].casefold() not in question.prompt.casefold()
    practice.question_check(kind=question.kind, prompt=question.prompt, answers=question.answers)
    page = client.get(f"/courses/{course.pk}/concepts/").content.decode()
    assert generation.get_status_display() in page
    review = client.get(f"/courses/{course.pk}/questions/").content.decode()
    assert html.escape(question.prompt) in review
