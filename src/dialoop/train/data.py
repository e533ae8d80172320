"""Dialogue files: reading and checking JSONL transcripts, and splitting them.

Two formats are read, one conversation per line, told apart line by line (so they may be
mixed in one file); ``dialoop sessions export --format openai|sharegpt`` writes them:

    {"messages": [{"role": "system", "content": "…"},
                  {"role": "user", "content": "Where is my order?"},
                  {"role": "assistant", "content": "…", "keys": ["PP-10412"]}]}   OpenAI

    {"system": "…", "conversations": [{"from": "human", "value": "…"},
                                      {"from": "gpt", "value": "…"}]}             ShareGPT

An assistant message may carry ``keys``: strings a correct answer must contain
(for QA-style evaluation, see :mod:`dialoop.eval.model`); they never reach the
model. It may also carry ``"weight": 0`` (OpenAI's per-message weight; 1 is the
default): it stays in the conversation as context but is neither trained on nor
evaluated (an answer a user rated bad, exported with ``--bad mark``). Every problem is
reported with the file and line it is on, and nothing is trained on a file that has one.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialoop.engine import Message
from dialoop.errors import InvalidInputError

__all__ = ["Dialogue", "load_dialogues", "split_dialogues"]

log = logging.getLogger(__name__)

_ROLES = {"system", "user", "assistant"}
# ShareGPT speaker names seen in the wild → chat roles.
_SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "bot": "assistant", "chatgpt": "assistant",
}
MAX_ERRORS_SHOWN = 3


@dataclass(frozen=True)
class Dialogue:
    """One conversation to learn from (or to be evaluated on)."""

    messages: tuple[Message, ...]
    keys: dict[int, tuple[str, ...]] = field(default_factory=dict)  # message index → keys
    where: str = ""  # "file.jsonl:17", for messages about this dialogue
    untrained: frozenset[int] = frozenset()  # assistant messages of weight 0: context only

    @property
    def assistant_turns(self) -> list[int]:
        """The assistant messages to learn from (and to be evaluated on)."""
        return [i for i, m in enumerate(self.messages)
                if m["role"] == "assistant" and i not in self.untrained]


def load_dialogues(path: Path) -> list[Dialogue]:
    """Read every dialogue of a JSONL file; refuse the file if any line is invalid."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"No dialogue file at {path}: check the path.")
    dialogues: list[Dialogue] = []
    errors: list[str] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                dialogues.append(_parse_line(line, where))
            except InvalidInputError as exc:
                errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 1} more invalid lines)" if len(errors) > 1 else ""
        raise InvalidInputError(errors[0] + more)
    if not dialogues:
        raise InvalidInputError(f"{path} holds no dialogues: write one JSON object per line.")
    log.info("read %d dialogues from %s", len(dialogues), path)
    return dialogues


def split_dialogues(
    dialogues: Sequence[Dialogue], fraction: float, seed: int
) -> tuple[list[Dialogue], list[Dialogue]]:
    """(train, validation): a seeded random ``fraction`` of the dialogues held out."""
    if not 0 <= fraction < 1:
        raise InvalidInputError(f"The validation fraction must be in [0, 1), not {fraction}.")
    order = list(range(len(dialogues)))
    random.Random(seed).shuffle(order)
    n_val = round(len(dialogues) * fraction)
    if fraction > 0 and len(dialogues) - n_val < 1:
        raise InvalidInputError("Too few dialogues to hold some out for validation.")
    held = set(order[:n_val])
    train = [d for i, d in enumerate(dialogues) if i not in held]
    val = [d for i, d in enumerate(dialogues) if i in held]
    return train, val


def _parse_line(line: str, where: str) -> Dialogue:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{where}: not valid JSON ({exc.msg}, column {exc.colno})."
        ) from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: expected a JSON object with 'messages'.")
    if "turns" in record and "messages" not in record:
        raise InvalidInputError(
            f"{where}: this is dialoop's own session export; for training data export with "
            "`dialoop sessions export NAME --format openai` (or sharegpt)."
        )
    if "messages" in record and "conversations" in record:
        raise InvalidInputError(
            f"{where}: has both 'messages' and 'conversations'; keep one of them."
        )
    if "messages" in record:
        raw = _list(record["messages"], "messages", where)
        turns = [_openai_message(m, i, where) for i, m in enumerate(raw, start=1)]
    elif "conversations" in record:
        raw = _list(record["conversations"], "conversations", where)
        turns = [_sharegpt_message(m, i, where) for i, m in enumerate(raw, start=1)]
        system = record.get("system")
        if system:
            if not isinstance(system, str):
                raise InvalidInputError(f"{where}: 'system' must be a string.")
            turns.insert(0, ({"role": "system", "content": system}, (), True))
    else:
        raise InvalidInputError(
            f"{where}: no 'messages' (OpenAI format) or 'conversations' (ShareGPT format); "
            "write one JSON object per line in one of them."
        )
    return _check_dialogue(turns, where)


def _list(value: Any, name: str, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{where}: '{name}' must be a non-empty list.")
    return value


_Parsed = tuple[Message, tuple[str, ...], bool]  # message, keys, trained on


def _openai_message(m: Any, n: int, where: str) -> _Parsed:
    if not isinstance(m, dict):
        raise InvalidInputError(f"{where}: message {n} is not an object.")
    role, content = m.get("role"), m.get("content")
    if role not in _ROLES:
        raise InvalidInputError(
            f"{where}: message {n} has role {role!r}; use system, user or assistant."
        )
    return _message(role, content, m, n, where)


def _sharegpt_message(m: Any, n: int, where: str) -> _Parsed:
    if not isinstance(m, dict):
        raise InvalidInputError(f"{where}: turn {n} is not an object.")
    speaker = m.get("from")
    role = _SHAREGPT_ROLES.get(str(speaker).lower()) if speaker is not None else None
    if role is None:
        raise InvalidInputError(
            f"{where}: turn {n} is from {speaker!r}; use human, gpt or system."
        )
    return _message(role, m.get("value"), m, n, where)


def _message(role: str, content: Any, m: dict[str, Any], n: int, where: str) -> _Parsed:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInputError(f"{where}: message {n} ({role}) has no text.")
    keys, weight = m.get("keys"), m.get("weight", 1)
    if (keys is not None or "weight" in m) and role != "assistant":
        raise InvalidInputError(
            f"{where}: message {n}: only assistant messages have keys or a weight.")
    if keys is not None and (not isinstance(keys, list)
                             or not all(isinstance(k, str) and k for k in keys)):
        raise InvalidInputError(f"{where}: message {n}: 'keys' must be a list of strings.")
    if isinstance(weight, bool) or weight not in (0, 1):
        raise InvalidInputError(
            f"{where}: message {n}: 'weight' is 0 (context only) or 1 (learn from it), "
            f"not {weight!r}.")
    return {"role": role, "content": content}, tuple(keys or ()), weight == 1


def _check_dialogue(turns: list[_Parsed], where: str) -> Dialogue:
    messages = tuple(m for m, _, _ in turns)
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        n = roles.index("system", 1) + 1
        raise InvalidInputError(f"{where}: message {n} is a system message; only the first may be.")
    if "assistant" not in roles:
        raise InvalidInputError(f"{where}: no assistant message, so nothing to learn from.")
    first = next(r for r in roles if r != "system")
    if first != "user":
        raise InvalidInputError(f"{where}: the conversation must start with the user.")
    keys = {i: k for i, (_, k, _) in enumerate(turns) if k}
    untrained = frozenset(i for i, (_, _, trained) in enumerate(turns) if not trained)
    return Dialogue(messages, keys, where, untrained)
