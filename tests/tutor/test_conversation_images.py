"""A student attaches a photo of their work or a diagram to a tutor message: the file is
judged by its bytes and size, read by OCR when the model cannot see images (the student
sees what was read), or sent to the model as an image when it can."""

from __future__ import annotations

import base64
import io
import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.material.material_files import media_root  # noqa: F401
from tutor import images
from tutor.conversations import message_post
from tutor.models import Message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

HTMX = {"HTTP_HX_REQUEST": "true"}


def _png(text: str = "", size: tuple[int, int] = (8, 8)) -> bytes:
    """A PNG; with ``text``, black letters large enough for OCR on white."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    if text:
        font = ImageFont.load_default(size=72)
        ImageDraw.Draw(image).text((40, 40), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _upload(data: bytes, name: str = "work.png", content_type: str = "image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def no_tasks(monkeypatch):
    queued = []
    monkeypatch.setattr("tutor.conversations._enqueue_reply", queued.append)
    return queued


def _post_url(course):
    return reverse("conversations:post", args=[course.pk])


# --- what is accepted ------------------------------------------------------------------


def test_a_png_named_file_with_text_inside_is_refused_and_nothing_is_stored(
    client, student, course, conversation, no_tasks
):
    client.force_login(student)
    fake = _upload(b"just some text, not an image at all", name="work.png")
    response = client.post(
        _post_url(course), {"text": "Look", "conversation": conversation.pk, "image": fake}
    )
    assert response.status_code == 400
    assert "not a PNG, JPEG, WebP or GIF image" in response.content.decode()
    assert not Message.objects.exists()
    assert no_tasks == []


def test_a_corrupt_image_is_refused(conversation, student):
    data = _png()[:40]  # the PNG signature and header, then nothing
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="damaged"):
        message_post(conversation=conversation, learner=student, text="", image=_upload(data))
    assert not Message.objects.exists()


def test_an_image_over_the_size_limit_is_refused(client, student, course, settings, no_tasks):
    settings.TUTOR_IMAGE_MAX_BYTES = 100
    client.force_login(student)
    response = client.post(
        _post_url(course), {"text": "Look", "image": _upload(_png(size=(200, 200)))}, **HTMX
    )
    assert response.status_code == 200  # the composer comes back with the error
    assert "The image is too big" in response.content.decode()
    assert not Message.objects.exists()


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("GIF", "image/gif")])
def test_the_type_comes_from_the_bytes_not_the_name(fmt, mime):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(out, format=fmt)
    checked = images.image_check(file=_upload(out.getvalue(), name="photo.png"))
    assert checked.mime_type == mime


def test_without_pillow_the_signature_bytes_decide():
    assert images._signature_type(_png()) == "image/png"
    assert images._signature_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert images._signature_type(b"%PDF-1.4") is None


# --- OCR when the model cannot see images ----------------------------------------------


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_ocr_text_is_shown_with_the_message_and_given_to_the_tutor(
    client, student, course, conversation, search, eager_tasks, settings
):
    settings.LLM_BASE_URL = ""
    client.force_login(student)
    response = client.post(
        _post_url(course),
        {
            "text": "Is my answer right?",
            "conversation": conversation.pk,
            "image": _upload(_png("ANSWER 42", size=(900, 200))),
        },
    )
    assert response.status_code == 302
    question = Message.objects.get(role=Message.Role.USER)
    assert question.image_ocr
    assert "42" in question.image_text
    assert question.image_type == "image/png"
    page = client.get(response["Location"]).content.decode()
    assert "Text read from your image:" in page
    assert "42" in page
    # The offline reply searched the course with the text read from the image as well.
    from tutor.replies import message_prompt_text

    prompt = message_prompt_text(question)
    assert prompt.startswith("Is my answer right?\n\n[Text read by OCR")
    assert "42" in prompt


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_the_composer_shows_what_ocr_read_before_the_message_is_sent(
    client, student, course, conversation, no_tasks, settings
):
    settings.LLM_BASE_URL = ""
    client.force_login(student)
    url = reverse("conversations:image-text", args=[course.pk])
    response = client.post(url, {"image": _upload(_png("ANSWER 42", size=(900, 200)))}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="image_text"' in page
    assert "42" in page
    assert not Message.objects.exists()  # reading stores nothing


def test_the_text_the_student_corrected_is_what_the_tutor_reads(
    client, student, course, conversation, no_tasks, settings
):
    settings.LLM_BASE_URL = ""
    client.force_login(student)
    response = client.post(
        _post_url(course),
        {
            "text": "Is my answer right?",
            "conversation": conversation.pk,
            "image": _upload(_png("ANSWER 42", size=(900, 200))),
            "image_text": "  x = 42, so y = 7  ",
        },
    )
    assert response.status_code == 302
    question = Message.objects.get(role=Message.Role.USER)
    assert question.image_ocr
    assert question.image_text == "x = 42, so y = 7"
    from tutor.replies import message_prompt_text

    assert "x = 42, so y = 7" in message_prompt_text(question)
    assert no_tasks


def test_corrected_text_over_the_limit_is_refused_and_nothing_is_stored(
    client, student, course, conversation, no_tasks, settings
):
    from tutor.conversations import MESSAGE_MAX_CHARS

    settings.LLM_BASE_URL = ""
    client.force_login(student)
    response = client.post(
        _post_url(course),
        {
            "conversation": conversation.pk,
            "image": _upload(_png()),
            "image_text": "x" * (MESSAGE_MAX_CHARS + 1),
        },
    )
    assert response.status_code == 400
    assert "text read from your image" in response.content.decode()
    assert not Message.objects.exists()
    assert not no_tasks


@pytest.mark.parametrize(
    ("files", "expected"),
    [({}, "Choose an image first."), ({"image": _upload(b"not an image")}, "not a PNG")],
)
def test_reading_no_image_or_a_fake_one_gives_a_clear_message(
    client, student, course, files, expected
):
    client.force_login(student)
    url = reverse("conversations:image-text", args=[course.pk])
    assert client.post(url, files).status_code == 400
    response = client.post(url, files, **HTMX)
    assert response.status_code == 200  # htmx swaps it into the composer
    assert expected in response.content.decode()


def test_with_a_vision_model_the_composer_says_the_tutor_sees_the_image(
    client, student, course, settings
):
    settings.LLM_SUPPORTS_IMAGES = True
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    client.force_login(student)
    url = reverse("conversations:image-text", args=[course.pk])
    response = client.post(url, {"image": _upload(_png())}, **HTMX)
    assert "look at your image itself" in response.content.decode()
    assert 'name="image_text"' not in response.content.decode()


def test_when_ocr_is_unavailable_the_student_is_told_and_nothing_crashes(
    client, student, course, conversation, no_tasks, settings, monkeypatch
):
    import pytesseract

    settings.LLM_BASE_URL = ""

    def missing(*args, **kwargs):
        raise pytesseract.TesseractNotFoundError()

    monkeypatch.setattr(pytesseract, "image_to_string", missing)
    client.force_login(student)
    response = client.post(
        _post_url(course),
        {"text": "", "conversation": conversation.pk, "image": _upload(_png())},
    )
    assert response.status_code == 302
    question = Message.objects.get(role=Message.Role.USER)
    assert question.image_unread
    page = client.get(response["Location"]).content.decode()
    assert "The image could not be read" in page
    assert no_tasks  # the reply is still written


# --- the model sees the image ----------------------------------------------------------


def test_an_image_goes_to_a_model_that_supports_images_as_an_image_part(
    conversation,
    student,
    search,
    eager_tasks,
    django_capture_on_commit_callbacks,
    llm_server,
    settings,
):
    settings.LLM_SUPPORTS_IMAGES = True
    llm_server.script(reply="What does the arrow in your diagram show? [1]")
    data = _png(size=(16, 16))
    with django_capture_on_commit_callbacks(execute=True):
        question, reply = message_post(
            conversation=conversation,
            learner=student,
            text="Here is my diagram",
            image=_upload(data),
        )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DONE
    assert not question.image_ocr

    last = llm_server.stats.last_request["messages"][-1]
    assert last["role"] == "user"
    text_part, image_part = last["content"]
    assert text_part["type"] == "text"
    assert "Here is my diagram" in text_part["text"]
    assert image_part == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()},
    }
