"""Images a student attaches to a tutor message: the check of what the bytes really are,
and reading their text with OCR (tesseract through pytesseract) when the language model
cannot look at images itself.

The only module that opens an attached image; Pillow and pytesseract load lazily.
"""

from __future__ import annotations

import dataclasses
import io
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# Pillow's format name -> the MIME type sent to the model.
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
OCR_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    data: bytes
    mime_type: str

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.mime_type]


def image_max_bytes() -> int:
    return int(getattr(settings, "TUTOR_IMAGE_MAX_BYTES", DEFAULT_MAX_BYTES))


def _signature_type(data: bytes) -> str | None:
    """The image type by its signature bytes (when Pillow is not installed)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _pillow_type(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except Exception:  # Pillow raises many kinds for a corrupt or hostile file
        return None
    return MIME_TYPES.get(kind or "")


def image_check(*, file: UploadedFile) -> CheckedImage:
    """The attached image's bytes and type, judged by its content (never its name or the
    browser's claim); ValidationError when too big, not PNG/JPEG/WebP/GIF, or corrupt."""
    limit = image_max_bytes()
    if file.size is not None and file.size > limit:
        raise ValidationError(
            _("The image is too big (%(size)s MB); the limit is %(limit)s MB.")
            % {"size": f"{file.size / 1_048_576:.1f}", "limit": f"{limit / 1_048_576:g}"},
            code="image_too_big",
        )
    file.seek(0)
    data = file.read(limit + 1)
    file.seek(0)
    if len(data) > limit:
        raise ValidationError(
            _("The image is too big; the limit is %(limit)s MB.")
            % {"limit": f"{limit / 1_048_576:g}"},
            code="image_too_big",
        )
    try:
        import PIL  # noqa: F401
    except ImportError:
        mime_type = _signature_type(data)
    else:
        mime_type = _pillow_type(data)
    if mime_type is None:
        raise ValidationError(
            _("That file is not a PNG, JPEG, WebP or GIF image, or it is damaged."),
            code="image_type",
        )
    return CheckedImage(data=data, mime_type=mime_type)


def image_text_read(*, data: bytes) -> str:
    """The text OCR reads in the image; "" when there is none or OCR is unavailable."""
    try:
        import pytesseract
        from PIL import Image
    except ImportError:
        logger.warning("pytesseract or Pillow is not installed; attached images are not read.")
        return ""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)  # the first frame of an animated GIF
            text = pytesseract.image_to_string(image.convert("RGB"), timeout=OCR_SECONDS)
    except pytesseract.TesseractNotFoundError:
        logger.warning("tesseract is not installed; attached images are not read.")
        return ""
    except Exception:
        logger.exception("Reading the text of an attached image failed")
        return ""
    return text.strip()
