"""Reading a Rasa 3.x project: its YAML files with line numbers, and its NLU data.

Every mapping and list read here remembers the line it starts on (``.line``), so that
whatever the importer cannot convert is reported as ``file:line: what and why``.

NLU examples carry entity annotations in two spellings, both read:
``[afghan](cuisine)`` and ``[NYC]{"entity": "city", "value": "New York"}`` (and the
older ``[NYC](city:New York)``). The annotation is removed from the text, and the
value (with the annotated words as a synonym of it) is kept for the entity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialoop.errors import ConfigError

__all__ = ["Nlu", "Skipped", "YamlFile", "parse_example", "read_nlu", "read_yaml"]

_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<short>[^)]+)\)|(?P<json>\{[^}]*\}))")


class _Map(dict):  # type: ignore[type-arg]
    line = 0


class _List(list):  # type: ignore[type-arg]
    line = 0


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings and lists know their line (1-based)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    out = _Map(loader.construct_pairs(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> _List:
    out = _List(loader.construct_sequence(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


@dataclass
class Skipped:
    """Something of the Rasa project that was not converted (or only approximately)."""

    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


@dataclass
class YamlFile:
    path: Path
    name: str  # relative to the project, for reports
    data: dict[str, Any]


def read_yaml(path: Path, project: Path) -> YamlFile:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc}); fix the file and import again.") \
            from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}).") from None
    return YamlFile(path, str(path.relative_to(project)), data if isinstance(data, dict) else {})


def line_of(item: Any, default: int = 1) -> int:
    return getattr(item, "line", 0) or default


@dataclass
class Nlu:
    """The NLU data of a project."""

    examples: dict[str, list[str]] = field(default_factory=dict)  # intent → plain texts
    example_lines: dict[str, int] = field(default_factory=dict)  # intent → first line
    entities: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """entity → value → phrases naming it (annotations, synonyms, lookup tables)."""
    entity_intents: dict[str, set[str]] = field(default_factory=dict)
    """entity → the intents whose examples annotate it."""
    regexes: dict[str, list[str]] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    def add_value(self, entity: str, value: str, phrase: str) -> None:
        phrases = self.entities.setdefault(entity, {}).setdefault(value, [])
        if phrase not in phrases:
            phrases.append(phrase)


def parse_example(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The plain text of an annotated example, and its (entity, value, words) triples."""
    found: list[tuple[str, str, str]] = []

    def plain(m: re.Match[str]) -> str:
        words = m["text"]
        if m["short"]:
            entity, _, value = m["short"].partition(":")
            found.append((entity.strip(), (value or words).strip(), words))
        else:
            try:
                spec = json.loads(m["json"])
            except json.JSONDecodeError:
                return words
            if isinstance(spec, dict) and spec.get("entity"):
                found.append((str(spec["entity"]), str(spec.get("value", words)), words))
        return words

    return _ANNOTATION.sub(plain, text), found


def _items(block: Any) -> list[str]:
    """The examples of an NLU block: a "- a\\n- b" string (or a list of them)."""
    if isinstance(block, list):
        return [str(x.get("text", "")) if isinstance(x, dict) else str(x) for x in block]
    lines = str(block or "").splitlines()
    return [ln.strip()[2:].strip() for ln in lines if ln.strip().startswith("- ")]


def read_nlu(files: list[YamlFile], skipped: list[Skipped]) -> Nlu:
    nlu = Nlu()
    for f in files:
        for block in f.data.get("nlu") or []:
            if not isinstance(block, dict):
                continue
            line = line_of(block)
            examples = _items(block.get("examples"))
            if "intent" in block:
                _add_intent(nlu, str(block["intent"]), examples, f.name, line, skipped)
            elif "synonym" in block:
                value = str(block["synonym"])
                nlu.synonyms.setdefault(value, []).extend(examples)
            elif "regex" in block:
                nlu.regexes.setdefault(str(block["regex"]), []).extend(examples)
            elif "lookup" in block:
                for value in examples:
                    nlu.add_value(str(block["lookup"]), value, value)
            else:
                skipped.append(Skipped(f.name, line, f"NLU block {sorted(block)} not understood"))
    for value, phrases in nlu.synonyms.items():  # a synonym names a value of any entity
        for values in nlu.entities.values():
            if value in values:
                values[value] += [p for p in phrases if p not in values[value]]
    return nlu


def _add_intent(nlu: Nlu, intent: str, examples: list[str], file: str, line: int,
                skipped: list[Skipped]) -> None:
    if "/" in intent:
        skipped.append(Skipped(file, line, f"retrieval intent {intent!r} (a response selector): "
                                           "its examples are kept under the intent "
                                           f"{intent.split('/')[0]!r}"))
        intent = intent.split("/")[0]
    texts = nlu.examples.setdefault(intent, [])
    nlu.example_lines.setdefault(intent, line)
    for example in examples:
        text, found = parse_example(example)
        if text and text not in texts:
            texts.append(text)
        for entity, value, words in found:
            nlu.add_value(entity, value, words)
            nlu.entity_intents.setdefault(entity, set()).add(intent)
