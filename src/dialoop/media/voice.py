"""Text to speech: the ``espeak-ng`` program (Debian package ``espeak-ng``), and CMU
``flite`` (Debian package ``flite``) as a second, different engine.

espeak-ng writes 22,050 Hz mono 16-bit WAV, flite 16,000 Hz (8,000 Hz for ``kal``).
Other formats (mp3, opus, aac, flac, and raw ``pcm`` at 24 kHz as OpenAI sends it) are
converted by ``ffmpeg`` when it is installed; without it only WAV is offered and the
others are refused by name.

Voices: OpenAI's voice names map to flite or espeak-ng voices (:data:`VOICES`), any
espeak-ng voice name (``en-gb``, ``en-us+f3``: voice + variant) is taken as it is, and
``flite:NAME`` is one of flite's built-in voices (:data:`FLITE_VOICES`; flite would also
take a file or a URL there, so only these names are passed on). The text goes to
espeak-ng on its standard input and to flite in a private temporary file, never on the
command line.

:func:`speak_stream` speaks sentence by sentence, so the first audio is ready once the
first sentence is (see docs/multimodal.md for which formats stream).
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

from dialoop.errors import ConfigError, InvalidInputError

__all__ = ["FLITE_VOICES", "MAX_CHARS", "SPEECH_FORMATS", "STREAMED_FORMATS", "VOICES",
           "sentences", "speak", "speak_stream", "speech_formats"]

MAX_CHARS = 4096  # OpenAI's limit for one request
# OpenAI's voices → flite voices (the three best understood in benchmarks/bench_speech.py:
# word error rate 0.03-0.05 against espeak-ng's 0.12-0.13) and espeak-ng voice+variant
# (male variants m*, female f*) for the rest, so that each name still sounds different.
VOICES = {
    "alloy": "flite:rms", "nova": "flite:slt", "fable": "flite:awb",
    "echo": "en-us+m3", "onyx": "en-us+m7", "shimmer": "en-us+f4", "ash": "en-gb+m3",
    "ballad": "en-gb+m5", "coral": "en-us+f2", "sage": "en-gb+f3", "verse": "en-us+m1",
}
# flite's built-in voices (``flite -lv``, less awb_time, which only tells the time).
FLITE_VOICES = {"kal": "male, US, diphone, 8 kHz", "kal16": "male, US, diphone",
                "awb": "male, Scottish", "rms": "male, US", "slt": "female, US"}
SPEECH_FORMATS = ("wav", "mp3", "opus", "aac", "flac", "pcm")  # wav always; others need ffmpeg
# Formats whose pieces can be sent one after the other: a WAV header with an open length
# and then samples, raw samples, and MP3/ADTS frames. An Ogg (opus) or FLAC file is made
# whole and sent in one piece.
STREAMED_FORMATS = ("wav", "pcm", "mp3", "aac")
_FFMPEG_ARGS = {
    "mp3": ["-f", "mp3", "-c:a", "libmp3lame"], "opus": ["-f", "ogg", "-c:a", "libopus"],
    "aac": ["-f", "adts", "-c:a", "aac"], "flac": ["-f", "flac"],
    "pcm": ["-f", "s16le", "-ar", "24000", "-ac", "1"],
}
_VOICE_NAME = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[a-z0-9]{1,12})?$")
_BASE_WPM = 175  # espeak-ng's own default rate: speed 1.0
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def speech_formats() -> tuple[str, ...]:
    """The output formats this machine can make: WAV, and the rest when ffmpeg is here."""
    return SPEECH_FORMATS if shutil.which("ffmpeg") else ("wav",)


def speak(text: str, voice: str = "alloy", speed: float = 1.0, format: str = "wav") -> bytes:
    """``text`` spoken by ``voice`` at ``speed`` (0.25–4, 1 = normal), as a ``format`` file."""
    text = _checked(text, voice, speed, format)
    wav = _synthesise(text, voice, speed)
    return wav if format == "wav" else _convert(wav, format)


def speak_stream(text: str, voice: str = "alloy", speed: float = 1.0,
                 format: str = "wav") -> Iterator[bytes]:
    """``text`` as :func:`speak` makes it, in pieces: one per sentence, each synthesised
    only when the one before it has been taken. Joined, the pieces are one ``format``
    file (a WAV's header says "length unknown", as a stream's must). Formats outside
    :data:`STREAMED_FORMATS` come whole, in one piece. Bad arguments raise here, before
    the first piece."""
    text = _checked(text, voice, speed, format)
    if format not in STREAMED_FORMATS:
        return _whole(text, voice, speed, format)
    return _pieces(sentences(text), voice, speed, format)


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence (and at line breaks), in order; a piece without a
    letter or digit ("…", "--") stays with a neighbour (alone it would make no sound)."""
    out: list[str] = []
    for piece in (p.strip() for p in _SENTENCE_END.split(text)):
        if out and not any(c.isalnum() for c in out[-1]):
            out[-1] = f"{out[-1]} {piece}".strip()  # a leading "…" joins the next piece
        elif piece and (not out or any(c.isalnum() for c in piece)):
            out.append(piece)
        elif piece:
            out[-1] = f"{out[-1]} {piece}"
    return out


def _whole(text: str, voice: str, speed: float, format: str) -> Iterator[bytes]:
    yield speak(text, voice, speed, format)  # made when asked for, like a piece


def _pieces(parts: list[str], voice: str, speed: float, format: str) -> Iterator[bytes]:
    for i, part in enumerate(parts):
        wav = _synthesise(part, voice, speed)
        if format == "wav":
            yield (_open_header(wav) if i == 0 else b"") + _frames(wav)
        else:
            yield _convert(wav, format, streamed=True)


def _checked(text: str, voice: str, speed: float, format: str) -> str:
    text = text.strip()
    if not text:
        raise InvalidInputError("Nothing to say: the text is empty.")
    if len(text) > MAX_CHARS:
        raise InvalidInputError(f"The text has {len(text):,} characters; at most {MAX_CHARS:,} "
                                "are spoken at once: split it.")
    if not 0.25 <= speed <= 4.0:
        raise InvalidInputError(f"speed must be between 0.25 and 4.0, not {speed}.")
    if format not in SPEECH_FORMATS:
        raise InvalidInputError(f"Cannot make {format!r} audio: use one of "
                                f"{', '.join(speech_formats())}.")
    if format not in speech_formats():
        raise InvalidInputError(f"{format} audio needs ffmpeg, which this machine lacks: use "
                                "wav (or install the Debian package ffmpeg).")
    voice = VOICES.get(voice.lower(), voice)
    if voice.lower().startswith("flite:"):
        _flite_voice(voice)
    else:
        _espeak_voice(voice)
    return text


def _synthesise(text: str, voice: str, speed: float) -> bytes:
    """WAV bytes (with their true length in the header) of ``text`` by either engine."""
    voice = VOICES.get(voice.lower(), voice)
    if voice.lower().startswith("flite:"):
        return _flite(text, _flite_voice(voice), speed)
    return _espeak(text, _espeak_voice(voice), round(_BASE_WPM * speed))


def _espeak_voice(voice: str) -> str:
    name = VOICES.get(voice.lower(), voice.lower())
    if not _VOICE_NAME.match(name):
        raise InvalidInputError(_no_voice(voice))
    return name


def _flite_voice(voice: str) -> str:
    name = voice.lower().removeprefix("flite:")
    if name not in FLITE_VOICES:
        raise InvalidInputError(_no_voice(voice))
    return name


def _no_voice(voice: str) -> str:
    return (f"No voice {voice!r}: use one of {', '.join(VOICES)}, an espeak-ng voice such "
            "as en-gb or en-us+f3 (`espeak-ng --voices` lists them), or a flite voice: "
            f"{', '.join('flite:' + name for name in FLITE_VOICES)}.")


def _espeak(text: str, voice: str, wpm: int) -> bytes:
    # -s: words per minute (espeak-ng takes 80–450 well); -b 1: the input is UTF-8.
    wpm = max(80, min(wpm, 450))
    try:
        wav = _run([_binary(), "-v", voice, "-s", str(wpm), "-b", "1", "--stdout"],
                   text.encode())
    except ConfigError as exc:
        if "voice does not exist" in str(exc):
            raise InvalidInputError(_no_voice(voice)) from exc
        raise
    return _fixed_header(wav)


def _flite(text: str, voice: str, speed: float) -> bytes:
    # flite cannot write WAV to a pipe (it seeks back to fill in the length), so it writes
    # to a file; duration_stretch > 1 is slower speech.
    with tempfile.TemporaryDirectory(prefix="dialoop-flite-") as folder:
        said, wav = Path(folder) / "text.txt", Path(folder) / "speech.wav"
        said.write_text(text, encoding="utf-8")
        _run([_binary("flite"), "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}",
              "-f", str(said), "-o", str(wav)], b"")
        if not wav.exists():
            raise ConfigError("flite wrote no audio file: check that the flite package "
                              "is complete (`flite -lv` lists its voices).")
        return _fixed_header(wav.read_bytes(), "flite")


def _frames(wav: bytes) -> bytes:
    with wave.open(io.BytesIO(wav)) as r:
        return r.readframes(r.getnframes())


def _open_header(wav: bytes) -> bytes:
    """A 44-byte WAV header for ``wav``'s format whose lengths say "unknown" (0xFFFFFFFF),
    as streamed WAV is sent: readers take the samples up to the end of the stream."""
    with wave.open(io.BytesIO(wav)) as r:
        channels, width, rate = r.getnchannels(), r.getsampwidth(), r.getframerate()
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * width,
                          channels * width, 8 * width)
            + b"data" + struct.pack("<I", unknown))


def _fixed_header(wav: bytes, engine: str = "espeak-ng") -> bytes:
    """``wav`` with its real length in the header: espeak-ng writing to a pipe cannot go
    back to fill it in, and leaves a placeholder (about 2**30 frames) that players trust."""
    with wave.open(io.BytesIO(wav)) as r:
        channels, width, rate = r.getnchannels(), r.getsampwidth(), r.getframerate()
        frames = r.readframes(r.getnframes())  # up to the end of the data
    if not frames:
        raise InvalidInputError(f"{engine} made no sound from this text: send words.")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def _convert(wav: bytes, format: str, streamed: bool = False) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None  # checked by speech_formats()
    # A piece of a stream of MP3 frames carries no ID3 tag and no Xing header: those
    # belong at the start of a whole file and would tell players a wrong length.
    bare = ["-write_xing", "0", "-id3v2_version", "0"] if streamed and format == "mp3" else []
    return _run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
                 *_FFMPEG_ARGS[format], *bare, "pipe:1"], wav)


def _binary(program: str = "espeak-ng") -> str:
    found = shutil.which(program)
    if found is None:
        raise ConfigError(f"Speech synthesis needs the {program} program: install the Debian "
                          f"package {program} (apt-get install {program}; `make install` "
                          "does).")
    return found


def _run(command: list[str], stdin: bytes) -> bytes:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise InvalidInputError(f"{command[0]} took over 2 minutes: send less text.") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(f"{command[0]} failed ({done.returncode}): "
                          f"{message[-1] if message else 'no message'}")
    return done.stdout
