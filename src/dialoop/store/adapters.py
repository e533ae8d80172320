"""Versioned LoRA adapters: one store for what consolidation and ``train sft`` produce.

An *adapter line* has a name: ``global`` (lessons for everyone), ``user:<id>`` (one
user's lessons) or a name chosen for a trained model (``store-support``). Each
training run adds a *version*; exactly one version of a line serves at a time (its
*head*), or none. Files live in ``$DIALOOP_HOME/adapters/<line>/v<N>/``:

    adapter_config.json, adapter_model.safetensors   the PEFT form (torch engine, training)
    adapter.gguf                                     the llama.cpp form (default engine)
    bottleneck_config.json, bottleneck.safetensors   or a bottleneck adapter (torch engine)
    style/adapter_config.json, …safetensors          the style adapter's PEFT form (if any)
    style.gguf                                       its llama.cpp form

A version has up to two *parts*: its lessons adapter (scoped: served behind its
router) and a *style* adapter trained on the line's ratings (unscoped: applies to
every message of the line). Engines know them as ``line@vN`` and ``line@vN#style``
(the syntax of :mod:`dialoop.engine.adapters`); :meth:`AdapterStore.locate` finds the
file of either. A version may have only one of the two.

Adding a version writes every file first and registers it last; promoting or
rolling back is one database update. A crash at any point leaves the previous head
serving.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dialoop.engine.adapters import PART_SEP, split_part
from dialoop.engine.bottleneck import BOTTLENECK_CONFIG, BOTTLENECK_WEIGHTS, is_bottleneck_folder
from dialoop.engine.lora import export_lora_gguf
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import Database
from dialoop.store.models import AdapterHead, AdapterVersion, utcnow

__all__ = ["AdapterStore", "AdapterVersion", "parse_ref"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
GGUF_FILE = "adapter.gguf"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
BOTTLENECK_FILES = (BOTTLENECK_CONFIG, BOTTLENECK_WEIGHTS)  # dialoop's own kind
STYLE = "style"  # the part name: "line@vN#style"
STYLE_DIR = "style"  # its PEFT folder inside the version's folder
STYLE_GGUF = "style.gguf"


class AdapterStore:
    """Add, judge, promote and roll back adapter versions."""

    def __init__(self, db: Database, home: Path) -> None:
        self.db = db
        self.home = home
        self.root = home / "adapters"

    # -- adding -------------------------------------------------------------------

    def add(
        self,
        name: str,
        peft_dir: Path | None,
        *,
        source: str,
        base_model: str,
        base_gguf: Path | None,
        user_id: str | None = None,
        report: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        style_dir: Path | None = None,
    ) -> AdapterVersion:
        """Copy a trained PEFT adapter in as the next version of ``name`` (a candidate);
        ``style_dir``, a style adapter trained on ratings, becomes the version's style part.
        Either may be None, not both.

        With ``base_gguf`` the llama.cpp forms are exported too.
        """
        check_name(name)
        if peft_dir is None and style_dir is None:
            raise InvalidInputError("An adapter version needs a lessons or a style adapter.")
        for folder in (peft_dir, style_dir):
            if folder is not None and not _is_adapter(folder):
                raise InvalidInputError(f"{folder} is not an adapter folder (PEFT or bottleneck).")
        line = self.root / _folder_name(name)
        staging = line / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            if peft_dir is not None:
                _copy_peft(peft_dir, staging, staging / GGUF_FILE, base_gguf)
            if style_dir is not None:
                _copy_peft(style_dir, staging / STYLE_DIR, staging / STYLE_GGUF, base_gguf)
            with self.db.write() as s:
                last = s.scalar(sa.select(sa.func.max(AdapterVersion.version))
                                .where(AdapterVersion.name == name))
                version = (last or 0) + 1
                final = line / f"v{version}"
                shutil.rmtree(final, ignore_errors=True)  # debris of a crash before commit
                staging.rename(final)
                row = AdapterVersion(
                    name=name, version=version, status="candidate", source=source,
                    user_id=user_id, base_model=base_model,
                    path=str(final.relative_to(self.home)), report=report or {}, meta=meta or {},
                )
                s.add(row)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return row

    # -- judging and serving --------------------------------------------------------

    def set_report(self, name: str, version: int, report: dict[str, Any]) -> None:
        with self.db.write() as s:
            self._get(s, name, version).report = report

    def promote(self, name: str, version: int) -> AdapterVersion:
        """Make ``version`` the one that serves for ``name``."""
        with self.db.write() as s:
            row = self._get(s, name, version)
            if row.status == "rejected":
                raise InvalidInputError(
                    f"{row.key} was rejected by the gate; promote another version."
                )
            row.status = "promoted"
            self._set_head(s, name, version)
        return row

    def reject(self, name: str, version: int, report: dict[str, Any] | None = None) -> None:
        with self.db.write() as s:
            row = self._get(s, name, version)
            row.status = "rejected"
            if report is not None:
                row.report = report

    def rollback(self, name: str, version: int | None) -> AdapterVersion | None:
        """Serve an earlier promoted ``version`` of ``name`` again, or none (the base model)."""
        with self.db.write() as s:
            row = None
            if version is not None:
                row = self._get(s, name, version)
                if row.status != "promoted":
                    raise InvalidInputError(
                        f"{row.key} never served ({row.status}); roll back to a version that "
                        "was promoted, or to none."
                    )
            elif s.get(AdapterHead, name) is None:
                raise NotFoundError(f"No adapter line {name!r}.")
            self._set_head(s, name, version)
        return row

    # -- reading ----------------------------------------------------------------------

    def active(self, name: str) -> AdapterVersion | None:
        with self.db.read() as s:
            head = s.get(AdapterHead, name)
            if head is None or head.version is None:
                return None
            return self._get(s, name, head.version)

    def get(self, name: str, version: int) -> AdapterVersion:
        with self.db.read() as s:
            return self._get(s, name, version)

    def history(self, name: str | None = None) -> list[AdapterVersion]:
        query = sa.select(AdapterVersion).order_by(AdapterVersion.name, AdapterVersion.version)
        if name is not None:
            query = query.where(AdapterVersion.name == name)
        with self.db.read() as s:
            return list(s.scalars(query))

    def heads(self) -> dict[str, int | None]:
        with self.db.read() as s:
            return {h.name: h.version for h in s.scalars(sa.select(AdapterHead))}

    def resolve(self, ref: str) -> AdapterVersion:
        """``name`` (its head) or ``name@vN`` (that version)."""
        name, version = parse_ref(ref)
        if version is not None:
            return self.get(name, version)
        row = self.active(name)
        if row is None:
            raise NotFoundError(
                f"Adapter {name!r} has no version serving: `dialoop learn history` lists them."
            )
        return row

    def files(self, row: AdapterVersion, engine_kind: str, part: str | None = None) -> Path:
        """What an engine of ``engine_kind`` loads: the GGUF file, or the PEFT folder, of
        the version's lessons adapter, or of its ``part`` (``"style"``)."""
        if part not in (None, STYLE):
            raise InvalidInputError(f"Unknown adapter part {part!r}: the parts are {STYLE!r}.")
        folder = self.home / row.path
        name = row.key + (f"{PART_SEP}{part}" if part else "")
        peft, gguf = ((folder / STYLE_DIR, folder / STYLE_GGUF) if part
                      else (folder, folder / GGUF_FILE))
        if not _is_adapter(peft):
            raise NotFoundError(f"No adapter {name}: `dialoop learn history` lists them.")
        if engine_kind == "llamacpp":
            if not gguf.is_file():
                raise NotFoundError(f"{name} has no GGUF form; use --engine torch for it.")
            return gguf
        return peft

    def has_style(self, row: AdapterVersion) -> bool:
        """Whether version ``row`` has a style part (``line@vN#style``)."""
        return (self.home / row.path / STYLE_DIR / "adapter_config.json").is_file()

    def locate(self, part: str, engine_kind: str) -> Path:
        """What an engine loads for one adapter part: ``name``, ``name@vN`` or
        ``name@vN#style`` (the ``locate`` of :class:`~dialoop.engine.adapters.LoadedAdapters`)."""
        ref, name = split_part(part)
        return self.files(self.resolve(ref), engine_kind, name)

    # -- internals ----------------------------------------------------------------------

    def _get(self, s: Any, name: str, version: int) -> AdapterVersion:
        row = s.scalar(sa.select(AdapterVersion).where(
            AdapterVersion.name == name, AdapterVersion.version == version))
        if row is None:
            raise NotFoundError(f"No adapter {name}@v{version}.")
        return row

    @staticmethod
    def _set_head(s: Any, name: str, version: int | None) -> None:
        head = s.get(AdapterHead, name)
        if head is None:
            s.add(AdapterHead(name=name, version=version, updated_at=utcnow()))
        else:
            head.version, head.updated_at = version, utcnow()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"Invalid adapter name {name!r}: use letters, digits and . _ : - (at most 100)."
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"global@v3"`` → ("global", 3); ``"global"`` → ("global", None)."""
    name, sep, version = ref.partition("@v")
    if sep and not version.isdigit():
        raise InvalidInputError(f"Invalid adapter reference {ref!r}: use NAME or NAME@vN.")
    return check_name(name), int(version) if sep else None


def _is_adapter(folder: Path) -> bool:
    """A PEFT adapter folder, or one of dialoop's bottleneck adapters (torch engine only)."""
    return (folder / "adapter_config.json").is_file() or is_bottleneck_folder(folder)


def _copy_peft(peft_dir: Path, folder: Path, gguf: Path, base_gguf: Path | None) -> None:
    """An adapter's files into ``folder``, and (with ``base_gguf``) its GGUF form."""
    folder.mkdir(parents=True, exist_ok=True)
    bottleneck = is_bottleneck_folder(peft_dir)
    for f in (BOTTLENECK_FILES if bottleneck else PEFT_FILES):
        shutil.copy2(peft_dir / f, folder / f)
    if base_gguf is not None:
        export_lora_gguf(folder, gguf, base_gguf=base_gguf)


def _folder_name(name: str) -> str:
    """A folder per line; the hash keeps "user:a" and "user_a" apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
