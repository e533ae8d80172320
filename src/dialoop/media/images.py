"""Images in a chat message become evidence for its turn.

An ``image_url`` part (OpenAI's shape) carries a ``data:image/...;base64,`` URL, or, when
the server allows it (``allow_files``), a local file path or ``file://`` URL. Nothing is
ever fetched from the network: ``http(s)`` URLs are refused.

Each image is read by OCR (:func:`dialoop.media.read_image`) and becomes one
:class:`~dialoop.evidence.Evidence` of kind ``"image"``, source ``image:N``, that the
model is shown in its numbered evidence block and that the turn's trace keeps. An image
with no readable text gives evidence that says so, so the answer can say plainly that
it cannot read the image instead of making something up.

The evidence belongs to one turn: it is passed to that turn alone, as
``Assistant.stream(message, evidence=ocr_evidence(images))``, so it can never reach
another user's answer or a later turn.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence
from dialoop.media.ocr import OcrResult, read_image

__all__ = ["MAX_IMAGES", "NO_TEXT", "check_image_url", "image_bytes", "image_evidence",
           "ocr_evidence"]

NO_TEXT = ("Image {n} contains no readable text (OCR found none). Say plainly that you "
           "cannot read or see what the image shows; do not guess its content.")
MAX_IMAGES = 8  # per message


def check_image_url(url: str, *, allow_files: bool) -> None:
    """Refuse, before any work, a URL that :func:`image_bytes` would not read."""
    if url[:5].lower() == "data:":
        if not url[5:11].lower() == "image/":
            raise InvalidInputError("An image_url data URL must be an image "
                                    "(data:image/png;base64,...).")
        return
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        raise InvalidInputError("Images are never fetched from the internet: send the image "
                                "itself as a data URL (data:image/png;base64,...).")
    if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
        raise InvalidInputError(f"Cannot read an image_url of scheme {scheme!r}: send a "
                                "data URL (data:image/png;base64,...).")
    if not allow_files:
        raise InvalidInputError("This server does not read local image files: send the image "
                                "as a data URL (data:image/png;base64,...).")


def image_bytes(url: str, *, allow_files: bool) -> bytes:
    """The image file an ``image_url`` names (see the module's doc for what is read)."""
    check_image_url(url, allow_files=allow_files)
    if url[:5].lower() == "data:":
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise InvalidInputError("An image data URL must be base64: "
                                    "data:image/png;base64,...")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInputError("The image data URL is not valid base64.") from exc
    path = Path(unquote(urlsplit(url).path) if url.startswith("file:") else url).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"No image file at {path}.")
    return path.read_bytes()


def ocr_evidence(images: Sequence[bytes]) -> list[Evidence]:
    """One piece of evidence per image: the text OCR read from it, or that it has none."""
    if len(images) > MAX_IMAGES:
        raise InvalidInputError(f"A message may carry at most {MAX_IMAGES} images.")
    return [_evidence(n, read_image(data)) for n, data in enumerate(images, 1)]


def image_evidence(urls: Sequence[str], *, allow_files: bool) -> list[Evidence]:
    """The evidence of the ``image_url``s of a message (see :func:`image_bytes`), in order."""
    if len(urls) > MAX_IMAGES:
        raise InvalidInputError(f"A message may carry at most {MAX_IMAGES} images.")
    for url in urls:  # refuse a bad one before reading any
        check_image_url(url, allow_files=allow_files)
    return ocr_evidence([image_bytes(url, allow_files=allow_files) for url in urls])


def _evidence(n: int, found: OcrResult) -> Evidence:
    if not found.text.strip():
        return Evidence("image", NO_TEXT.format(n=n), f"image:{n}", 0.0)
    text = f"Text read from image {n} (by OCR, confidence {found.confidence:.2f}):\n{found.text}"
    return Evidence("image", text, f"image:{n}", found.confidence)
