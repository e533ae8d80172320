"""Text in images: Tesseract 5 (Debian ``tesseract-ocr`` + ``tesseract-ocr-eng``).

Tesseract runs as a program (through ``pytesseract``), on a grayscale copy of the image
that is enlarged when small: Tesseract reads glyphs best at 20–40 px high, and a
screenshot's 11 px text is read far better at twice the size.

Page segmentation mode 6 (one uniform block of text) keeps each row whole: with the
default (3, automatic layout) a receipt's prices become a column of their own, read
apart from their items and often misread (benchmarks/bench_vision.py: the total found on
its TOTAL line in 3 of 10 receipts with mode 3, 9 with mode 4, 10 with mode 6; the same
CER on running text). Text set in several columns is read row by row across them.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from typing import Any

from dialoop.errors import ConfigError, InvalidInputError

__all__ = ["IMAGE_FORMATS", "MAX_PIXELS", "OcrResult", "read_image"]

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp", "bmp", "tiff")
MAX_PIXELS = 40_000_000  # beyond this a "picture" is a decompression bomb or a poster
_MIN_HEIGHT = 600  # smaller images are enlarged (see above)


@dataclass(frozen=True)
class OcrResult:
    """The text read from an image (lines kept; empty if none) and a 0..1 confidence."""

    text: str
    confidence: float
    words: int

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": round(self.confidence, 4), "words": self.words}


def read_image(data: bytes) -> OcrResult:
    """The text in the image whose file is ``data`` (PNG, JPEG, GIF, WebP, BMP, TIFF)."""
    import pytesseract

    image = _open(data)
    if shutil.which("tesseract") is None:
        raise ConfigError("Reading images needs the tesseract program: install the Debian "
                          "packages tesseract-ocr tesseract-ocr-eng (`make install` does).")
    table = pytesseract.image_to_data(image, lang="eng", config="--psm 6",
                                      output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for i, word in enumerate(table["text"]):
        conf = float(table["conf"][i])
        if not word.strip() or conf < 0:
            continue
        key = (table["block_num"][i], table["par_num"][i], table["line_num"][i])
        lines.setdefault(key, []).append(word.strip())
        confidences.append(conf / 100)
    text = "\n".join(" ".join(words) for words in lines.values())
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrResult(text, confidence, len(confidences))


def _open(data: bytes) -> Any:
    """``data`` decoded, grayscale, enlarged when small (a PIL image)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidInputError("The image is empty: send a PNG or JPEG file.")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise InvalidInputError(f"The image has {image.width}x{image.height} pixels; at "
                                    f"most {MAX_PIXELS:,} are read: send a smaller one.")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidInputError(f"Cannot read this image: send one of "
                                f"{', '.join(IMAGE_FORMATS)}.") from exc
    if image.mode in ("RGBA", "LA", "P"):  # transparent text on nothing: put it on white
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image)
    image = image.convert("L")
    if image.height < _MIN_HEIGHT:
        scale = min(4.0, _MIN_HEIGHT / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.Resampling.LANCZOS)
    return image
