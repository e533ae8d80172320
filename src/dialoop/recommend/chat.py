"""Recommendations in a conversation: "what should I watch next?", "I loved Heat".

:class:`RecommendGrounding` sits in the dialogue manager's grounding seam in front of
the knowledge graph. When a message asks for a recommendation (:func:`asks_for_one`)
and the catalogue has items, it answers with the user's list and each item's reason,
written by dialoop (a 135M model would garble a ranked list) and cited item by item
in the trace. A message that names catalogue items with a clear like or dislike
("I loved Heat", "I didn't like Casino") is recorded as a ``said`` event of that user
first, so the list already reflects it. Any other message goes to the grounding behind
it (the knowledge graph), unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from dialoop.evidence import Evidence
from dialoop.recommend.read import EventIn
from dialoop.recommend.recommender import Recommendation, Recommender

__all__ = ["RecommendGrounding", "asks_for_one", "stated_opinions"]

LIST_SIZE = 5
_ASK = re.compile(
    r"\b(recommend\w*|suggest\w*|what (should|could|can) i (read|watch|see|buy|try|play|"
    r"listen to|order)|anything (good |new )?(to|i could|i should) (read|watch|see)|"
    r"(something|more|anything) (else )?(like|similar to)|what('s| is) (good|worth) "
    r"(reading|watching|seeing))\b", re.I)
_NOT_ASKING = re.compile(r"\b(do you|would you|did you) (recommend|suggest)\w* (that|it|"
                         r"this|against)\b|\bsuggestions? box\b", re.I)
_LIKE = re.compile(r"\b(loved?|liked?|enjoyed?|adored?|favou?rite|really good|great)\b", re.I)
_DISLIKE = re.compile(r"\b(hated?|disliked?|(did ?n[o']?t|do ?n[o']?t|didnt|dont) (like|enjoy)|"
                      r"boring|awful|terrible)\b", re.I)


def asks_for_one(message: str) -> bool:
    """Whether ``message`` asks for a recommendation ("any suggestions?", "what should I
    read next?", "something like Heat?")."""
    return bool(_ASK.search(message)) and not _NOT_ASKING.search(message)


def stated_opinions(message: str, titles: dict[str, str]) -> list[tuple[str, str]]:
    """``(item key, "like" | "dislike")`` for each catalogue title (``titles``: lowercase
    title → key) the message names in a sentence that says it liked or disliked it."""
    out: list[tuple[str, str]] = []
    for sentence in re.split(r"(?<=[.!?;])\s+|\bbut\b", message):
        kind = ("dislike" if _DISLIKE.search(sentence) else
                "like" if _LIKE.search(sentence) else None)
        if kind is None:
            continue
        words = re.findall(r"[\w'&:-]+", sentence.lower())
        for n in range(min(8, len(words)), 0, -1):
            for start in range(len(words) - n + 1):
                key = titles.get(" ".join(words[start:start + n]))
                if key is not None and all(key != k for k, _ in out):
                    out.append((key, kind))
    return out


class Grounding(Protocol):
    def lookup(self, question: str, *, user: str) -> Any: ...


@dataclass
class Recommended:
    """What :class:`RecommendGrounding` says (the dialogue manager's ``Grounded``)."""

    reply: str | None
    answer: str | None
    declined: bool = False
    evidence: list[Evidence] = field(default_factory=list)
    items: list[Recommendation] = field(default_factory=list)
    said: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"found": bool(self.items), "declined": self.declined, "answer": self.answer,
                "direct": self.reply is not None,
                "recommend": {"items": [r.to_dict() for r in self.items],
                              "recorded": [{"item": k, "kind": v} for k, v in self.said]}}


class RecommendGrounding:
    """Recommendation requests answered from the catalogue; everything else to ``behind``."""

    def __init__(self, recommender: Recommender, behind: Grounding | None = None, *,
                 k: int = LIST_SIZE) -> None:
        self.recommender = recommender
        self.behind = behind
        self.k = k

    def lookup(self, question: str, *, user: str) -> Any:
        asking = asks_for_one(question)
        said = self._record_opinions(question, user) if asking or _LIKE.search(question) \
            or _DISLIKE.search(question) else []
        if not asking or not self.recommender.size():
            if self.behind is not None:
                return self.behind.lookup(question, user=user)
            return Recommended(None, None, said=said)
        items = self.recommender.recommend(user, k=self.k)
        if not items:
            return Recommended(None, None, said=said)
        lines = [f"{n}. {r.title}: {r.reason}." for n, r in enumerate(items, 1)]
        intro = "Here is what I would suggest"
        if said:
            intro += " (I noted what you told me you " + " and ".join(
                sorted({"liked" if v == "like" else "did not like" for _, v in said})) + ")"
        reply = intro + ":\n" + "\n".join(lines)
        evidence = [Evidence("recommendation", f"{r.title}: {r.reason}", f"item:{r.key}",
                             r.score) for r in items]
        return Recommended(reply, reply, evidence=evidence, items=items, said=said)

    def _record_opinions(self, message: str, user: str) -> list[tuple[str, str]]:
        if not self.recommender.size():
            return []
        said = stated_opinions(message, self.recommender.titles())
        if said:
            self.recommender.record_many([EventIn(user, key, "said" if kind == "like"
                                                  else "dislike") for key, kind in said])
        return said
