"""Catalogues and interactions from files: JSONL, CSV, and RecBole's atomic files.

A catalogue row has an ``id`` (or ``item_id``), a ``title`` (or ``name``), optional
``text`` (or ``description``) and any other fields, kept as the item's attributes
(lists in JSON; ``a|b`` in CSV). An interaction row has ``user``, ``item``, ``kind``
(view, click, like, purchase, rating, dislike, skip; default ``rating`` when there is
a ``rating``/``value``, else ``like``), ``value`` and ``time`` (ISO 8601 or Unix
seconds).

RecBole's atomic files (``NAME.item``, ``NAME.inter``: tab-separated, headers like
``item_id:token``) are read from their folder or straight from a wheel or zip that
holds them, e.g. the MovieLens-100K example inside RecBole's own wheel.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dialoop.errors import InvalidInputError
from dialoop.monitor.read import json_lines, parse_time
from dialoop.recommend.model import EVENT_KINDS

__all__ = ["EventIn", "Item", "read_catalogue", "read_interactions"]

MAX_FIELD = 4000
_ID = ("id", "item_id", "item")
_TITLE = ("title", "name", "movie_title")
_TEXT = ("text", "description", "summary")
_RENAME = {"class": "genre", "release_year": "year"}  # RecBole's MovieLens columns


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    text: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def document(self) -> str:
        """What the content model embeds: the title, the text and the attributes."""
        attrs = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.attributes.items() if v)
        return ". ".join(p for p in (self.title, self.text, attrs) if p)


@dataclass(frozen=True)
class EventIn:
    user: str
    item: str
    kind: str
    value: float | None = None
    time: datetime | None = None


def read_catalogue(path: Path) -> list[Item]:
    """The items of a catalogue file (see the module's docstring)."""
    rows = list(_rows(path, "item"))
    items, seen = [], set()
    for n, row in enumerate(rows, 1):
        key = next((k for k in _ID if row.get(k) not in (None, "")), None)
        title_key = next((k for k in _TITLE if row.get(k) not in (None, "")), None)
        if key is None or title_key is None:
            raise InvalidInputError(f"{path.name}: item {n} needs an id and a title (fields "
                                    f"id/item_id and title/name); it has {sorted(row)}.")
        item_id = str(row[key]).strip()
        if item_id in seen:
            raise InvalidInputError(f"{path.name}: item {n}: the id {item_id!r} is repeated.")
        seen.add(item_id)
        text_key = next((k for k in _TEXT if row.get(k)), None)
        attributes = {}
        for k, v in row.items():
            if k in (key, title_key, text_key) or v in (None, "", []):
                continue
            values = v if isinstance(v, list) else str(v).split("|")
            attributes[_RENAME.get(k, k)] = [str(x).strip()[:200] for x in values
                                             if str(x).strip()]
        items.append(Item(item_id, _text(row[title_key], 300),
                          _text(row[text_key], MAX_FIELD) if text_key else "", attributes))
    if not items:
        raise InvalidInputError(f"{path.name}: no items.")
    return items


def read_interactions(path: Path) -> Iterator[EventIn]:
    """The interactions of a file, in file order (see the module's docstring)."""
    for n, row in enumerate(_rows(path, "inter"), 1):
        user = row.get("user") or row.get("user_id")
        item = row.get("item") or row.get("item_id")
        if user in (None, "") or item in (None, ""):
            raise InvalidInputError(f"{path.name}: interaction {n} needs a user and an item.")
        raw = row.get("value", row.get("rating"))
        kind = str(row.get("kind") or ("rating" if raw not in (None, "") else "like"))
        if kind not in EVENT_KINDS:
            raise InvalidInputError(f"{path.name}: interaction {n}: unknown kind {kind!r}; "
                                    f"one of {', '.join(EVENT_KINDS)}.")
        try:
            value = float(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            raise InvalidInputError(f"{path.name}: interaction {n}: value {raw!r} is not a "
                                    "number.") from None
        yield EventIn(str(user), str(item), kind, value,
                      _time(row.get("time", row.get("timestamp")), path, n))


def _rows(path: Path, atomic: str) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder.")
    if path.is_dir() or path.suffix in (".whl", ".zip"):
        yield from _atomic(path, atomic)
        return
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as f:
        if suffix in (".jsonl", ".ndjson"):
            for n, row in json_lines(f, path.name):
                if not isinstance(row, dict):
                    raise InvalidInputError(f"{path.name}:{n}: a line is a JSON object.")
                yield row
        elif suffix in (".csv", ".tsv"):
            yield from csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        elif suffix in (".item", ".inter"):
            yield from _atomic_rows(f)
        else:
            raise InvalidInputError(f"{path.name}: read .jsonl, .csv, .tsv, RecBole's .item/"
                                    ".inter files, or a folder or wheel that holds them.")


def _atomic(path: Path, suffix: str) -> Iterator[dict[str, Any]]:
    """The rows of the one ``*.<suffix>`` atomic file in a folder, wheel or zip."""
    if path.is_dir():
        found = sorted(path.rglob(f"*.{suffix}"))
        if len(found) != 1:
            raise InvalidInputError(f"{path}: expected one *.{suffix} file, found {len(found)}.")
        with found[0].open(encoding="utf-8") as f:
            yield from _atomic_rows(f)
        return
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(f".{suffix}")]
        if len(names) != 1:
            raise InvalidInputError(f"{path.name}: expected one *.{suffix} file inside, found "
                                    f"{len(names)}: {names[:5]}.")
        with z.open(names[0]) as raw:
            yield from _atomic_rows(io.TextIOWrapper(raw, encoding="utf-8"))


def _atomic_rows(f: Any) -> Iterator[dict[str, Any]]:
    header = f.readline().rstrip("\n").split("\t")
    fields = [h.partition(":") for h in header]  # name:token | name:token_seq | name:float
    for line in f:
        cells = line.rstrip("\n").split("\t")
        row: dict[str, Any] = {}
        for (name, _, kind), cell in zip(fields, cells, strict=False):
            if kind == "token_seq":
                row[name] = cell if name in _TITLE else cell.split()
            else:
                row[name] = cell
        yield row


def _text(v: Any, limit: int) -> str:
    s = " ".join(v) if isinstance(v, list) else str(v)
    return s.strip()[:limit]


def _time(v: Any, path: Path, n: int) -> datetime | None:
    return None if v in (None, "") else parse_time(v, f"{path.name}: interaction {n}")
