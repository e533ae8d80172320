"""Speech in OpenAI's shape: ``POST /v1/audio/transcriptions``, ``/v1/audio/translations``
and ``/v1/audio/speech`` (see :mod:`dialoop.media` and docs/multimodal.md).

- **Transcriptions**: a multipart upload (``file``; ``model``, ``language``, ``prompt``,
  ``response_format`` json/text/srt/verbose_json/vtt, ``temperature`` accepted). The
  bundled model is Whisper tiny.en: English only, so a ``language`` other than English
  is refused with a 400.
- **Translations** (into English): the same model hears English only, so the
  translation of English speech is its transcript; audio in another language is not
  translated (it comes out as English-sounding guesses). Use it for English audio.
- **Speech**: JSON ``{model, input, voice, response_format, speed, stream_format}``; WAV
  always, and mp3/opus/aac/flac/pcm when ffmpeg is installed (without it those are
  refused by name). The default format is OpenAI's (mp3) when ffmpeg is there, else WAV.
  Voices: OpenAI's names and espeak-ng's, or ``flite:slt`` and flite's other voices.
  ``stream_format`` ``"audio"`` sends the audio as it is made, sentence by sentence (a
  WAV's header then says "length unknown"); ``"sse"`` sends the same pieces as
  ``speech.audio.delta`` events (base64 ``audio``) and ends with ``speech.audio.done``.
  wav, pcm, mp3 and aac stream; opus and flac come whole, in one piece. A failure before
  the first piece is an ordinary HTTP error; after it the stream ends early.

``model`` may be OpenAI's names (``whisper-1``, ``gpt-4o-transcribe``, ``tts-1``, …),
``default`` or the bundled model's own name; each means the bundled model. Nothing is
stored. Uploads are multipart/form-data (the Origin check still refuses other web
sites); media work runs on worker threads, :data:`MEDIA_SLOTS` at a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.media import speech, voice
from dialoop.serve.auth import CallerDep
from dialoop.serve.openai import _ERRORS

__all__ = ["FORM_PATHS", "MAX_UPLOAD", "MEDIA_SLOTS", "SpeechRequest", "router"]

MAX_UPLOAD = 25 * 2**20  # OpenAI's limit for an audio file
MEDIA_SLOTS = 2  # transcriptions and syntheses running at once
FORM_PATHS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
_HEARING = frozenset({"default", speech.MODEL_NAME, "whisper-1", "gpt-4o-transcribe",
                      "gpt-4o-mini-transcribe"})
_SPEAKING = frozenset({"default", "espeak-ng", "flite", "tts-1", "tts-1-hd",
                       "gpt-4o-mini-tts"})
_MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg",
                "aac": "audio/aac", "flac": "audio/flac", "pcm": "audio/pcm"}
TextFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
router = APIRouter(prefix="/v1/audio", tags=["OpenAI-compatible"], responses=_ERRORS)


class SpeechRequest(BaseModel):
    """The body of ``POST /v1/audio/speech`` (OpenAI's)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "tts-1", "input": "Your table is booked.", "voice": "alloy",
        "response_format": "wav"}]})
    model: str = Field(description="tts-1, tts-1-hd, gpt-4o-mini-tts, espeak-ng or default.")
    input: str = Field(min_length=1, max_length=voice.MAX_CHARS)
    voice: str = Field("alloy", description="An OpenAI voice name, an espeak-ng voice "
                                            "(en-gb, en-us+f3) or a flite voice (flite:slt, "
                                            "flite:kal, flite:awb, flite:rms).")
    response_format: str | None = Field(None, description="wav; mp3, opus, aac, flac, pcm "
                                                          "with ffmpeg. Default mp3, or wav.")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, description="Not supported: leave it out.")
    stream_format: Literal["audio", "sse"] | None = Field(
        None, description="'audio': the audio as it is made, sentence by sentence; 'sse': "
                          "the same as speech.audio.delta events. Left out: one whole file.")


@router.post("/transcriptions", summary="Speech to text (OpenAI-compatible, English)")
async def transcriptions(
    request: Request, caller: CallerDep, file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()], language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[TextFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    return await _hear(request, file, model, language, prompt, response_format, "transcribe")


@router.post("/translations", summary="Speech to English text (English audio only)")
async def translations(
    request: Request, caller: CallerDep, file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()], prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[TextFormat, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    return await _hear(request, file, model, None, prompt, response_format, "translate")


@router.post("/speech", summary="Text to speech (OpenAI-compatible)", response_class=Response,
             responses={200: {"content": {t: {} for t in _MEDIA_TYPES.values()},
                              "description": "The audio file."}})
async def speech_endpoint(body: SpeechRequest, request: Request, caller: CallerDep) -> Response:
    if body.model not in _SPEAKING:
        raise NotFoundError(f"The model {body.model!r} is not served here: use one of "
                            f"{', '.join(sorted(_SPEAKING))} (the voice chooses the engine: "
                            "espeak-ng, or flite for flite:… voices).")
    if body.instructions:
        raise InvalidInputError("instructions are not supported by espeak-ng: leave them out "
                                "and choose a voice and speed instead.")
    fmt = body.response_format or ("mp3" if "mp3" in voice.speech_formats() else "wav")
    media_type = _MEDIA_TYPES.get(fmt, "application/octet-stream")
    if body.stream_format is None:
        audio = await _run(request.app, voice.speak, body.input, body.voice, body.speed, fmt)
        return Response(audio, media_type=media_type)
    pieces = voice.speak_stream(body.input, body.voice, body.speed, fmt)  # checks, raises
    first = await _run(request.app, next, pieces)  # a failure here is still an HTTP error
    audio_pieces = _pieces(request.app, first, pieces)
    if body.stream_format == "audio":
        return StreamingResponse(audio_pieces, media_type=media_type)
    return StreamingResponse(_speech_events(audio_pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _pieces(app: FastAPI, first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``first``, then the rest of the pieces, each made on a worker thread when the one
    before it has gone out."""
    yield first
    while (piece := await _run(app, next, rest, None)) is not None:
        yield piece


async def _speech_events(pieces: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """OpenAI's speech events: ``speech.audio.delta`` per piece, then ``speech.audio.done``
    (its ``usage`` counts no tokens: neither engine has any)."""
    async for piece in pieces:
        delta = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
        yield f"data: {json.dumps(delta)}\n\n"
    done = {"type": "speech.audio.done",
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
    yield f"data: {json.dumps(done)}\n\n"


async def _hear(request: Request, file: UploadFile, model: str, language: str | None,
                prompt: str | None, response_format: str, task: str) -> Response:
    if model not in _HEARING:
        raise NotFoundError(f"The model {model!r} is not served here: use one of "
                            f"{', '.join(sorted(_HEARING))} (all mean {speech.MODEL_NAME}).")
    data = await file.read()
    if not data:
        raise InvalidInputError("The uploaded audio file is empty: send a recording.")
    heard = await _run(request.app, speech.transcribe, data, language or None, prompt=prompt)
    return _transcript_response(heard, response_format, task)


def _transcript_response(heard: speech.Transcript, response_format: str,
                         task: str) -> Response:
    if response_format == "text":
        return PlainTextResponse(heard.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(heard.subtitles("srt"))
    if response_format == "vtt":
        return PlainTextResponse(heard.subtitles("vtt"), media_type="text/vtt")
    extra = {"language": heard.language, "confidence": round(heard.confidence, 4),
             "model": speech.MODEL_NAME}
    if response_format == "json":
        return JSONResponse({"text": heard.text, "dialoop": extra})
    segments = [{"id": i, "seek": 0, "start": s.start, "end": s.end, "text": " " + s.text,
                 "tokens": [], "temperature": 0.0, "avg_logprob": _log(s.confidence),
                 "compression_ratio": 1.0, "no_speech_prob": 0.0}
                for i, s in enumerate(heard.segments)]
    return JSONResponse({"task": task, "language": "english", "duration": heard.duration,
                         "text": heard.text, "segments": segments, "dialoop": extra})


def _log(p: float) -> float:
    return round(math.log(p), 4) if p > 0 else -99.0


async def _run(app: FastAPI, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn`` on a worker thread, at most :data:`MEDIA_SLOTS` at once across the server."""
    slots = getattr(app.state, "media_slots", None)
    if slots is None:
        slots = app.state.media_slots = asyncio.Semaphore(MEDIA_SLOTS)
    async with slots:
        return await asyncio.to_thread(fn, *args, **kwargs)
