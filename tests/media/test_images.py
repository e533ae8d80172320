"""Images: OCR on rendered text, image_url parts read into evidence, and what is refused."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from dialoop.errors import InvalidInputError
from dialoop.media import read_image
from dialoop.media.images import NO_TEXT, image_bytes, ocr_evidence
from tests.media.conftest import data_url, rendered

RECEIPT = "CORNER CAFE\nCoffee 3.50\nMuffin 2.75\nTOTAL 6.25"


def _blank() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (40, 90, 200)).save(out, "PNG")
    return out.getvalue()


def test_rendered_text_is_read_line_by_line() -> None:
    found = read_image(rendered(RECEIPT))
    assert found.text.splitlines() == RECEIPT.splitlines()
    assert found.confidence > 0.8 and found.words == 8


def test_an_image_without_text_says_so_in_its_evidence() -> None:
    assert read_image(_blank()).text == ""
    [evidence] = ocr_evidence([_blank()])
    assert evidence.text == NO_TEXT.format(n=1) and evidence.source == "image:1"


@pytest.mark.parametrize(("data", "message"), [(b"", "empty"), (b"GIF89a not really", "Cannot read")])
def test_bad_image_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_image(data)


def test_data_urls_are_decoded_and_nothing_is_fetched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    png = rendered("hello")
    assert image_bytes(data_url(png), allow_files=False) == png
    with pytest.raises(InvalidInputError, match="never fetched"):
        image_bytes("https://example.com/cat.png", allow_files=True)
    with pytest.raises(InvalidInputError, match="must be an image"):
        image_bytes("data:text/plain;base64," + base64.b64encode(b"x").decode(), allow_files=True)
    with pytest.raises(InvalidInputError, match="not valid base64"):
        image_bytes("data:image/png;base64,@@@", allow_files=False)
    path = tmp_path / "shot.png"
    path.write_bytes(png)
    with pytest.raises(InvalidInputError, match="does not read local image files"):
        image_bytes(str(path), allow_files=False)
    assert image_bytes(str(path), allow_files=True) == png
    assert image_bytes(path.as_uri(), allow_files=True) == png
