"""Speech in the terminal: what ``dialoop chat --voice`` hears and how answers are spoken.

Heard: a line that names an audio file (wav, mp3, ogg, flac, webm, …) is transcribed
(:func:`dialoop.media.transcribe`); with a microphone (``arecord`` and a capture device,
Debian's ``alsa-utils``) an empty line records until a second of silence. Spoken: the
answer becomes a WAV file (:func:`dialoop.media.speak`) in ``$DIALOOP_HOME/voice/``
(or where ``-o`` says), played with ``aplay`` or ``ffplay`` when a terminal is attached.
"""

from __future__ import annotations

import array
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from dialoop.errors import DialoopError, InvalidInputError
from dialoop.media.speech import AUDIO_FORMATS, Transcript

__all__ = ["RATE", "audio_file", "has_microphone", "play", "record_until_silence",
           "speak_answer", "transcript_of", "until_silence"]

log = logging.getLogger(__name__)

RATE = 16_000  # Hz, mono, 16-bit: what Whisper hears
_CHUNK = RATE // 10 * 2  # 0.1 s of samples, in bytes
_SILENCE_RMS = 500  # below this (of 32767) a tenth of a second is silence
_SILENT_CHUNKS = 10  # a second of silence after speech ends the recording
_MAX_CHUNKS = 300  # 30 s at most


def audio_file(line: str) -> Path | None:
    """The audio file a typed line names, or None when the line is a message."""
    text = line.strip().strip("'\"")
    if not text or "\n" in text:
        return None
    path = Path(text).expanduser()
    if path.suffix.lower().lstrip(".") not in AUDIO_FORMATS:
        return None
    if not path.is_file():
        raise InvalidInputError(f"No audio file at {path}.")
    return path


def has_microphone() -> bool:
    """Whether ``arecord`` is installed and lists a capture device."""
    if shutil.which("arecord") is None:
        return False
    try:
        listed = subprocess.run(["arecord", "-l"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "card " in listed.stdout


def until_silence(chunks: Iterable[bytes]) -> bytes:
    """The 16-bit mono samples of ``chunks`` up to a second of silence after speech (at
    most 30 s; silence before the first word is waited through, and kept out)."""
    kept: list[bytes] = []
    quiet = 0
    for n, chunk in enumerate(chunks):
        loud = _rms(chunk) >= _SILENCE_RMS
        if kept or loud:
            kept.append(chunk)
        quiet = 0 if loud else quiet + 1
        if (kept and quiet >= _SILENT_CHUNKS) or n + 1 >= _MAX_CHUNKS:
            break
    return b"".join(kept)


def record_until_silence() -> bytes:
    """A WAV file of what the microphone hears until a second of silence after speech."""
    command = ["arecord", "-q", "-f", "S16_LE", "-r", str(RATE), "-c", "1", "-t", "raw"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        samples = until_silence(_read(process.stdout))  # type: ignore[arg-type]
    finally:
        process.terminate()
        process.wait()
    if not samples:
        raise InvalidInputError("Nothing was heard: speak after the prompt, or type.")
    return _wav(samples)


def speak_answer(text: str, path: Path, voice: str = "alloy") -> Path | None:
    """``text`` spoken into the WAV file ``path`` (its folder made); None if there is nothing
    to say."""
    from dialoop.media import speak
    from dialoop.media.voice import MAX_CHARS

    if not text.strip():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(speak(text.strip()[:MAX_CHARS], voice))
    return path


def play(path: Path) -> bool:
    """Play ``path`` with aplay or ffplay when a terminal is attached; whether it played."""
    if not sys.stdout.isatty():
        return False
    for command in (["aplay", "-q"], ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            return subprocess.run([*command, str(path)], timeout=300).returncode == 0
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not play %s with %s: %s", path, command[0], exc)
            return False
    return False


def transcript_of(path_or_wav: Path | bytes) -> Transcript:
    """What is said in an audio file (or WAV bytes); an error if nothing is."""
    from dialoop.media import transcribe

    heard = transcribe(path_or_wav)
    if not heard.text.strip():
        raise DialoopError("No speech was heard in that audio.")
    return heard


def _read(stream: Iterable[bytes] | None) -> Iterator[bytes]:
    assert stream is not None
    read = stream.read  # type: ignore[attr-defined]
    while chunk := read(_CHUNK):
        yield chunk


def _rms(chunk: bytes) -> float:
    samples = array.array("h", chunk[: len(chunk) // 2 * 2])
    if not samples:
        return 0.0
    return (sum(s * s for s in samples) / len(samples)) ** 0.5


def _wav(samples: bytes) -> bytes:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes(samples)
    return out.getvalue()
