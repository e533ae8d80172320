"""The native API's chat: ``POST /api/chat``, one message in, the stored answer out.

The message may be typed (``message``) or spoken (``audio``: a ``data:audio/...;base64,``
URL, transcribed by :func:`dialoop.media.transcribe`; the user turn's trace records the
transcript's language, confidence and length). It may carry ``images`` (data URLs),
read by OCR into evidence for this turn alone (:func:`dialoop.media.images.image_evidence`),
cited in the answer's trace. ``modality`` (default: the ``answer_modality`` setting, or
speech when the message was spoken) adds the answer's speech as base64 WAV.

The turn runs on the same scheduler as ``/v1/chat/completions`` (:func:`.openai.start_turn`);
the route is mounted by :mod:`.api`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from dialoop.assistant import Assistant
from dialoop.dialogue.session import check_session_name
from dialoop.errors import InvalidInputError
from dialoop.media import speech, voice
from dialoop.media.images import MAX_IMAGES
from dialoop.serve.audio import _run as run_media
from dialoop.serve.auth import CallerDep
from dialoop.serve.openai import _CLIENT_GONE, TurnRequest, read_images, start_turn

__all__ = ["ChatIn", "ChatOut", "router"]

router = APIRouter()
Modality = Literal["text", "speech", "both"]


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "message": "What is the total on this receipt?", "session": "receipts",
        "images": ["data:image/png;base64,iVBORw0KGgo..."], "modality": "both"}]})
    message: str | None = Field(None, description="What the user types (or send audio).")
    audio: str | None = Field(None, description="The message spoken: data:audio/wav;base64,… "
                                                "(wav, mp3, ogg, webm, …), transcribed.")
    session: str | None = Field(None, max_length=200, description="A session name or id of "
                                "yours (created if new); none: a new session.")
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES,
                              description="data:image/...;base64,… URLs, read by OCR.")
    modality: Modality | None = Field(None, description="text, speech or both (default: the "
                                      "answer_modality setting; speech for a spoken message).")
    voice: str = Field("alloy", description="The voice of a spoken answer (as /v1/audio/speech).")


class AudioOut(BaseModel):
    format: Literal["wav"]
    data: str = Field(description="The answer spoken, a base64 WAV file.")


class ChatOut(BaseModel):
    answer: str
    session: str
    session_id: str
    turn_id: int
    user_turn_id: int
    finish_reason: str
    user_text: str = Field(description="The stored user turn (the transcript, for audio).")
    evidence: list[dict[str, Any]] = Field(description="What the answer rests on (its trace).")
    transcript: dict[str, Any] | None = Field(None, description="A spoken message's transcript.")
    audio: AudioOut | None = None


@router.post("/chat", response_model=ChatOut, tags=["chat"],
             summary="Send a message (typed or spoken, with images); the answer, spoken if asked")
async def chat(body: ChatIn, request: Request, caller: CallerDep) -> Any:
    assistant: Assistant = request.app.state.assistant
    if (body.message is None) == (body.audio is None):
        raise InvalidInputError("Send a message or its audio (one of the two).")
    heard = None
    message = body.message or ""
    if body.audio is not None:
        heard = await run_media(request.app, speech.transcribe, _audio_bytes(body.audio))
        if not heard.text.strip():
            raise InvalidInputError("No speech was heard in the audio: record it again.")
        message = heard.text
    evidence = await read_images(request, body.images) if body.images else []
    if body.images:  # the stored text marks where each image was, as in /v1/chat/completions
        marks = " ".join(f"[image {n}]" for n in range(1, len(body.images) + 1))
        message = f"{message.strip()} {marks}".strip()
    turn = TurnRequest(model="default", user=caller.user,
                       session_ref=check_session_name(body.session) if body.session else None,
                       system=None, history=[], new=message, params=assistant.default_params(),
                       evidence=evidence, spoken=heard)
    started = await start_turn(request, turn)
    if started is None:
        return Response(status_code=_CLIENT_GONE)
    reply, _ = await started.finish()
    modality = body.modality or ("speech" if heard is not None
                                 else assistant.settings.answer_modality)
    audio = None
    if modality != "text" and reply.text.strip():
        wav = await run_media(request.app, voice.speak, reply.text[:voice.MAX_CHARS], body.voice)
        audio = {"format": "wav", "data": base64.b64encode(wav).decode()}
    return {"answer": reply.text, "session": reply.session, "session_id": reply.session_id,
            "turn_id": reply.turn_id, "user_turn_id": reply.user_turn_id,
            "finish_reason": reply.finish_reason, "user_text": message,
            "evidence": reply.trace.context.get("evidence", []),
            "transcript": heard.to_dict() if heard is not None else None, "audio": audio}


def _audio_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if not header.lower().startswith("data:audio/") or not header.endswith(";base64"):
        raise InvalidInputError("audio must be a data URL: data:audio/wav;base64,...")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError("The audio data URL is not valid base64.") from exc
