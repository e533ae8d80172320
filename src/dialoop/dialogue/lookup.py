"""The seams through which knowledge and memories reach a turn, and a simple facts lookup.

- :class:`EvidenceProvider`: anything that finds :class:`Evidence` for a message
  (the correction memory's lessons, a document index). The manager asks every
  provider it was given whenever the model writes an answer.
- :class:`Lookup`: the knowledge the ``look_up`` action queries; it also names
  the entities of a knowledge type, which ``entity`` slots are filled from.
- :class:`Grounding`: knowledge that can answer a question outright, or decline
  it honestly, before the model is asked (the knowledge graph). The general
  assistant consults it on every message.

:class:`FactsLookup` is the small stand-in used until the knowledge graph lands:
subject–predicate–object facts from a YAML file, ranked by embedding similarity
to the message (facts about an entity the user named rank first).

    # facts.yaml
    entities:
      product:
        Aurora Kettle: [kettle]           # name: [aliases]
    facts:
      - [Aurora Kettle, price, 49 USD]
      - [Returns, window, 30 days from delivery]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialoop.dialogue.domain import DomainError
from dialoop.engine.embedding import Embedder
from dialoop.evidence import Evidence

if TYPE_CHECKING:
    from dialoop.dialogue.state import DialogueState

__all__ = ["EvidenceProvider", "FactsLookup", "Grounded", "Grounding", "Lookup"]


@runtime_checkable
class EvidenceProvider(Protocol):
    def find(self, message: str, *, user: str, state: DialogueState) -> list[Evidence]:
        """Evidence for answering ``message`` for ``user``, best first (may be empty)."""
        ...


@runtime_checkable
class Lookup(EvidenceProvider, Protocol):
    def entities(self, kind: str) -> Sequence[str]:
        """The names of the entities of knowledge type ``kind``, e.g. ``"product"``."""
        ...


class Grounded(Protocol):
    """What grounding knowledge says about a message."""

    reply: str | None  # say this instead of generating: a grounded answer or "I don't know …"
    answer: str | None  # the knowledge's own answer sentence (no citations), if it has one
    declined: bool  # about the knowledge, but not answered by it ("I don't know …")
    evidence: list[Evidence]  # otherwise, what the model's answer should rest on

    def describe(self) -> dict[str, Any]:
        """For the turn's trace."""
        ...


@runtime_checkable
class Grounding(Protocol):
    def lookup(self, question: str, *, user: str) -> Grounded:
        """What the knowledge says about ``question`` for ``user``."""
        ...


class _FactsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entities: dict[str, dict[str, list[str] | None]] = Field(default_factory=dict)
    facts: list[tuple[str, str, str]] = Field(min_length=1)


class FactsLookup:
    """Facts from a YAML file, found by meaning. Facts are not per user: every user sees them."""

    def __init__(self, path: str | Path, embedder: Embedder, *, top_k: int = 3,
                 min_score: float = 0.25) -> None:
        self.path = Path(path)
        self.top_k = top_k
        self.min_score = min_score
        self.embedder = embedder
        try:
            data = _FactsFile.model_validate(yaml.safe_load(self.path.read_text("utf-8")))
        except FileNotFoundError:
            raise DomainError(f"{self.path}: no such facts file.") from None
        except yaml.YAMLError as exc:
            raise DomainError(f"{self.path}: invalid YAML: {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise DomainError(f"{self.path}: {where}: {err['msg']} (a fact is "
                              "[subject, predicate, object]; quote values with commas)") from None
        self._entities = {kind: {name: [name, *(aliases or [])] for name, aliases in names.items()}
                          for kind, names in data.entities.items()}
        self.facts = list(data.facts)
        self._texts = [f"{s} {p}: {o}" for s, p, o in self.facts]
        self._vectors = embedder.embed(self._texts)  # (F, D), normalized

    def entities(self, kind: str) -> list[str]:
        return list(self._entities.get(kind, {}))

    def aliases(self, kind: str) -> dict[str, list[str]]:
        return dict(self._entities.get(kind, {}))

    def find(self, message: str, *, user: str, state: Any) -> list[Evidence]:
        named = {str(v).lower() for v in getattr(state, "slots", {}).values()}
        query = self.embedder.embed([message])[0]  # (D,)
        scores = self._vectors @ query  # (F,)
        # A fact about the entity the user is talking about gets a boost: "how much is it?"
        # after naming the kettle should find the kettle's price, not the toaster's.
        boost = np.array([0.3 if s.lower() in named else 0.0 for s, _, _ in self.facts])
        ranked = np.argsort(-(scores + boost))
        out = []
        for i in ranked[: self.top_k]:
            score = float(scores[i] + boost[i])
            if score >= self.min_score:
                out.append(Evidence("triple", self._texts[i], f"{self.path.name}#{i + 1}", score))
        return out
