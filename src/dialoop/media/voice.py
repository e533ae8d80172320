"""Text to speech: the ``espeak-ng`` program (Debian package ``espeak-ng``).

espeak-ng writes 22,050 Hz mono 16-bit WAV. Other formats (mp3, opus, aac, flac, and
raw ``pcm`` at 24 kHz as OpenAI sends it) are converted by ``ffmpeg`` when it is
installed; without it only WAV is offered and the others are refused by name.

Voices: OpenAI's voice names map to espeak-ng voices (below), and any espeak-ng voice
name (``en-gb``, ``en-us+f3``: voice + variant) is taken as it is. The text goes to
espeak-ng on its standard input, never on the command line.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave

from dialoop.errors import ConfigError, InvalidInputError

__all__ = ["MAX_CHARS", "SPEECH_FORMATS", "VOICES", "speak", "speech_formats"]

MAX_CHARS = 4096  # OpenAI's limit for one request
# OpenAI's voices → espeak-ng voice+variant (male variants m*, female f*).
VOICES = {
    "alloy": "en-us", "echo": "en-us+m3", "fable": "en-gb", "onyx": "en-us+m7",
    "nova": "en-us+f3", "shimmer": "en-us+f4", "ash": "en-gb+m3", "ballad": "en-gb+m5",
    "coral": "en-us+f2", "sage": "en-gb+f3", "verse": "en-us+m1",
}
SPEECH_FORMATS = ("wav", "mp3", "opus", "aac", "flac", "pcm")  # wav always; others need ffmpeg
_FFMPEG_ARGS = {
    "mp3": ["-f", "mp3", "-c:a", "libmp3lame"], "opus": ["-f", "ogg", "-c:a", "libopus"],
    "aac": ["-f", "adts", "-c:a", "aac"], "flac": ["-f", "flac"],
    "pcm": ["-f", "s16le", "-ar", "24000", "-ac", "1"],
}
_VOICE_NAME = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[a-z0-9]{1,12})?$")
_BASE_WPM = 175  # espeak-ng's own default rate: speed 1.0


def speech_formats() -> tuple[str, ...]:
    """The output formats this machine can make: WAV, and the rest when ffmpeg is here."""
    return SPEECH_FORMATS if shutil.which("ffmpeg") else ("wav",)


def speak(text: str, voice: str = "alloy", speed: float = 1.0, format: str = "wav") -> bytes:
    """``text`` spoken by ``voice`` at ``speed`` (0.25–4, 1 = normal), as a ``format`` file."""
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
    wav = _espeak(text, _espeak_voice(voice), round(_BASE_WPM * speed))
    return wav if format == "wav" else _convert(wav, format)


def _espeak_voice(voice: str) -> str:
    name = VOICES.get(voice.lower(), voice.lower())
    if not _VOICE_NAME.match(name):
        raise InvalidInputError(_no_voice(voice))
    return name


def _no_voice(voice: str) -> str:
    return (f"No voice {voice!r}: use one of {', '.join(VOICES)}, or an espeak-ng voice "
            "such as en-gb or en-us+f3 (`espeak-ng --voices` lists them).")


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


def _fixed_header(wav: bytes) -> bytes:
    """``wav`` with its real length in the header: espeak-ng writing to a pipe cannot go
    back to fill it in, and leaves a placeholder (about 2**30 frames) that players trust."""
    with wave.open(io.BytesIO(wav)) as r:
        channels, width, rate = r.getnchannels(), r.getsampwidth(), r.getframerate()
        frames = r.readframes(r.getnframes())  # up to the end of the data
    if not frames:
        raise InvalidInputError("espeak-ng made no sound from this text: send words.")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def _convert(wav: bytes, format: str) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None  # checked by speech_formats()
    return _run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
                 *_FFMPEG_ARGS[format], "pipe:1"], wav)


def _binary() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise ConfigError("Speech synthesis needs the espeak-ng program: install the Debian "
                          "package espeak-ng (apt-get install espeak-ng; `make install` does).")
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
