"""Text in images: OCR character error rate, and questions about receipts answered.

The benchmark draws its own images with Pillow from known text, in four DejaVu fonts
(Sans, Sans Bold, Serif, Sans Mono: Debian's fonts-dejavu-core) at three sizes, each
clean and "photo-like" (rotated 1°, blurred, Gaussian noise σ=12, saved as JPEG at
quality 60), and reads them with dialoop.media.read_image (Tesseract 5, English).

- **CER**: character error rate (jiwer) of the OCR text against the drawn text, with
  runs of whitespace made one space, per font size and noise level.
- **Receipt QA**: receipts with made-up shops, items and prices. ``extraction`` is the
  OCR-only rate: the total's figure appears in the OCR text on the TOTAL line. With
  ``--model``, the question "What is the total on this receipt?" is also asked of the
  bundled chat model through the real server (an ``image_url`` part, OCR evidence,
  the official openai client), and an answer is right when it contains the total.

    python benchmarks/bench_vision.py [--limit 20] [--model]

Targets (issue 17): CER ≤ 0.05; receipt QA ≥ 0.8.
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
SIZES = (14, 20, 32)
TEXTS = [
    "Your order 4471 was shipped on Monday and should arrive within three days.",
    "Error: could not connect to the database at localhost:5432 (timeout after 30 s).",
    "Opening hours: Monday to Friday 9:00 to 17:30, Saturday 10:00 to 14:00.",
    "Please keep this receipt. Returns are accepted within 30 days of purchase.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps on the mat.",
    "Invoice 2024-118: 3 x Printer paper A4 at 4.99 each, total 14.97 EUR.",
    "Meeting moved to room B12 on the second floor, starting at 10:15 sharp.",
    "Warning: battery level low (7%). Connect the charger to keep working.",
]
SHOPS = ["CORNER CAFE", "GREEN GROCER", "CITY BOOKS", "HARBOUR DELI", "PARK BAKERY"]
ITEMS = ["Coffee", "Tea", "Muffin", "Bagel", "Apples", "Bread", "Notebook", "Juice", "Soup",
         "Salad", "Cookies", "Milk"]


def draw(text: str, face: str, size: int, noisy: bool, width: int = 1000) -> bytes:
    font = ImageFont.truetype(str(FONTS / face), size)
    lines = _wrap(text, font, width - 40)
    image = Image.new("L", (width, 40 + len(lines) * int(size * 1.6)), 255)
    ImageDraw.Draw(image).multiline_text((20, 20), "\n".join(lines), font=font, fill=0,
                                         spacing=int(size * 0.5))
    if noisy:
        rng = random.Random(size * 1000 + len(text))
        image = image.rotate(1.0, resample=Image.Resampling.BICUBIC, fillcolor=255, expand=True)
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        noise = Image.effect_noise(image.size, 12)
        image = Image.blend(image, noise, 0.15 + rng.random() * 0.05)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG" if noisy else "PNG", quality=60)
    return out.getvalue()


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            trial = word
        line = trial
    return [*lines, line]


def receipt(rng: random.Random) -> tuple[str, str]:
    """(the receipt's text, its total as printed)."""
    items = rng.sample(ITEMS, rng.randint(2, 5))
    prices = [rng.randint(100, 1500) / 100 for _ in items]
    rows = [f"{name:<12}{price:>8.2f}" for name, price in zip(items, prices, strict=True)]
    total = f"{sum(prices):.2f}"
    text = "\n".join([rng.choice(SHOPS), f"Date 2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                      *rows, f"{'TOTAL':<12}{total:>8}", "Thank you!"])
    return text, total


def draw_receipt(text: str, noisy: bool) -> bytes:
    font = ImageFont.truetype(str(FONTS / "DejaVuSansMono.ttf"), 22)
    lines = text.splitlines()
    image = Image.new("L", (420, 40 + len(lines) * 34), 255)
    ImageDraw.Draw(image).multiline_text((20, 20), text, font=font, fill=0, spacing=10)
    if noisy:
        image = image.filter(ImageFilter.GaussianBlur(0.6))
        image = Image.blend(image, Image.effect_noise(image.size, 12), 0.15)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG" if noisy else "PNG", quality=60)
    return out.getvalue()


def ocr_cer(limit: int) -> None:
    import jiwer

    from dialoop.media import read_image

    texts = TEXTS[:limit]
    print(f"OCR CER: {len(texts)} texts x {len(FACES)} fonts, per size and noise")
    print(f"{'size':>5} {'clean':>7} {'photo':>7} {'s/image':>8}")
    everything: list[float] = []
    for size in SIZES:
        row, spent, n = {}, 0.0, 0
        for noisy in (False, True):
            refs, hyps = [], []
            for text in texts:
                for face in FACES:
                    start = time.perf_counter()
                    found = read_image(draw(text, face, size, noisy)).text
                    spent, n = spent + time.perf_counter() - start, n + 1
                    refs.append(" ".join(text.split()))
                    hyps.append(" ".join(found.split()) or "<empty>")
            row[noisy] = jiwer.cer(refs, hyps)
            everything.append(row[noisy])
        print(f"{size:>5} {row[False]:7.3f} {row[True]:7.3f} {spent / n:8.2f}")
    print(f"mean CER over sizes and noise levels: {statistics.mean(everything):.3f}")


def receipts_qa(limit: int, model: bool) -> None:
    from dialoop.media import read_image

    rng = random.Random(17)
    cases = [receipt(rng) for _ in range(limit)]
    extracted = 0
    for i, (text, total) in enumerate(cases):
        found = read_image(draw_receipt(text, noisy=i % 2 == 1)).text
        line = next((ln for ln in found.splitlines() if "TOTAL" in ln.upper()), "")
        extracted += total in re.sub(r"\s", "", line)
    print(f"receipt QA, OCR-only extraction (total on the TOTAL line): "
          f"{extracted / len(cases):.2f} of {len(cases)} (half photo-like)")
    if model:
        print(f"receipt QA, bundled model via /v1/chat/completions: "
              f"{_ask_model(cases):.2f} of {len(cases)}")


def _ask_model(cases: list[tuple[str, str]]) -> float:
    import openai

    from dialoop.assistant import open_assistant
    from dialoop.config import load_settings
    from dialoop.serve import create_app
    from dialoop.serve.server import background_server

    right = 0
    with tempfile.TemporaryDirectory() as home, \
            open_assistant(load_settings(home=Path(home), temperature=0.0)) as bot, \
            background_server(create_app(bot)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="local", max_retries=0)
        for i, (text, total) in enumerate(cases):
            url = "data:image/jpeg;base64," + base64.b64encode(
                draw_receipt(text, noisy=i % 2 == 1)).decode()
            answer = client.chat.completions.create(model="default", max_tokens=40, messages=[
                {"role": "user", "content": [
                    {"type": "text", "text": "What is the total on this receipt?"},
                    {"type": "image_url", "image_url": {"url": url}}]}])
            said = answer.choices[0].message.content or ""
            right += total in said
            if i < 3:
                print(f"    total {total}: {said.strip()[:100]!r}")
    return right / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="Receipts (and texts, at most "
                                                              f"{len(TEXTS)}).")
    parser.add_argument("--model", action="store_true",
                        help="Also ask the bundled chat model about each receipt.")
    args = parser.parse_args()
    ocr_cer(args.limit)
    receipts_qa(args.limit, args.model)


if __name__ == "__main__":
    main()
