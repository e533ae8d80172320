"""The value types every layer of a turn shares: evidence, scope, and the turn's trace.

They sit at the bottom of the package (beside ``config`` and ``errors``) so that the
knowledge graph, the correction memory and the dialogue manager can all produce and
read them without importing each other.

- :class:`Evidence`: something an answer rests on, with a citable source.
- :class:`Scope`: who a lesson, a fact or an adapter line applies to: everyone, or
  one user. Stored everywhere as its string form, ``"global"`` or ``"user:<id>"``.
- :class:`LessonMatch`, :class:`Recall`: the taught lessons that apply to a message, how
  well, and whether the memory is sure enough to say the taught answer as it is.
- :class:`TurnTrace`: what a turn understood, decided and used; stored with the
  answer as versioned JSON (:meth:`TurnTrace.to_dict` / :meth:`TurnTrace.from_dict`),
  read back by the CLI's ``trace``, the web page's "why" panel and the evaluations.
  The dialogue *state* is not read back from the trace: it has its own column
  (:attr:`dialoop.store.models.Turn.state`), migrated on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dialoop.errors import InvalidInputError

__all__ = [
    "RESPONSES", "TRACE_VERSION", "DialogueTrace", "Evidence", "LessonMatch", "Recall", "Scope",
    "Step", "TurnTrace", "render_evidence",
]


@dataclass(frozen=True)
class Evidence:
    """Something the answer should rest on, with where it came from."""

    kind: str  # "lesson" | "triple" | "document" | "tool" | …
    text: str  # what the model is shown
    source: str  # a citable reference: "lesson:12", "triple:881", "docs/returns.md#3"
    score: float = 1.0  # retrieval score, higher is better

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text, "source": self.source,
                "score": round(self.score, 4)}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Evidence:
        return cls(str(d["kind"]), str(d["text"]), str(d["source"]),
                   float(d.get("score", 1.0)))  # type: ignore[arg-type]


def render_evidence(evidence: Sequence[Evidence]) -> str:
    """The evidence block of the system message, numbered so that answers can cite it."""
    lines = [f"[{i}] {e.text}" for i, e in enumerate(evidence, 1)]
    return "Use these facts to answer. They are correct:\n" + "\n".join(lines)


@dataclass(frozen=True)
class Scope:
    """Who something applies to: everyone (``user is None``) or one user.

    One value for lessons, knowledge-graph facts and adapter lines; its string form
    (``"global"``, ``"user:ann"``) is what the database stores and what an adapter line
    is called.
    """

    user: str | None = None

    GLOBAL_NAME: ClassVar[str] = "global"
    _USER_PREFIX: ClassVar[str] = "user:"

    @classmethod
    def everyone(cls) -> Scope:
        return cls(None)

    @classmethod
    def of(cls, user: str) -> Scope:
        if not user:
            raise InvalidInputError("A user scope needs a user id.")
        return cls(user)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The scope a stored string names: ``"global"`` or ``"user:<id>"``."""
        if text == cls.GLOBAL_NAME:
            return cls.everyone()
        if text.startswith(cls._USER_PREFIX) and len(text) > len(cls._USER_PREFIX):
            return cls(text[len(cls._USER_PREFIX):])
        raise InvalidInputError(f"{text!r} is not a scope: use 'global' or 'user:<id>'.")

    @classmethod
    def named(cls, word: str, user: str) -> Scope:
        """The scope an API or CLI caller means by ``"user"`` (theirs) or ``"global"``."""
        if word == "user":
            return cls.of(user)
        if word == cls.GLOBAL_NAME:
            return cls.everyone()
        return cls.parse(word)

    @property
    def is_global(self) -> bool:
        return self.user is None

    @property
    def word(self) -> str:
        """``"global"`` or ``"user"``: how the API and CLI describe it to its owner."""
        return self.GLOBAL_NAME if self.user is None else "user"

    def visible_to(self, user: str) -> bool:
        return self.user is None or self.user == user

    @staticmethod
    def visible(user: str) -> list[str]:
        """The stored scope strings ``user`` sees: everyone's and their own."""
        return Scope.of(user).sees()

    def sees(self) -> list[str]:
        """The stored scope strings visible from this scope: everyone's, and its user's."""
        return [self.GLOBAL_NAME] if self.user is None else [self.GLOBAL_NAME, str(self)]

    def __str__(self) -> str:
        return self.GLOBAL_NAME if self.user is None else f"{self._USER_PREFIX}{self.user}"


@dataclass(frozen=True)
class LessonMatch:
    """A lesson that matched a message, and how well."""

    lesson_id: int
    question: str
    answer: str
    scope: Scope
    score: float  # cosine similarity of the questions

    def evidence(self) -> Evidence:
        return Evidence(kind="lesson", text=f"Q: {self.question} A: {self.answer}",
                        source=f"lesson:{self.lesson_id}", score=self.score)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.lesson_id, "score": round(self.score, 4), "scope": str(self.scope)}


@dataclass(frozen=True)
class Recall:
    """What the correction memory holds for one message."""

    matches: list[LessonMatch] = field(default_factory=list)  # best first
    sure: bool = False  # the best match is near-certain: its answer may be said as it is

    @property
    def direct(self) -> LessonMatch | None:
        """The lesson whose answer is the reply, when the memory is sure of it."""
        return self.matches[0] if self.sure and self.matches else None


# -- the trace of a turn ------------------------------------------------------------------

TRACE_VERSION = 2
"""1: the shape before it had a type (no "version" key; the same fields); 2: typed, with
"decided_by" saying which rule of the manager's precedence chose what was said."""

RESPONSES = ("hand_off", "tool", "question", "lesson", "knowledge", "template", "fixed",
             "generated")
"""Where an answer's words came from (``DialogueTrace.response`` starts with one of these;
a template or question adds its name after a colon: ``template:greet``)."""


@dataclass
class Step:
    """One decide → act step of a turn: the action, why, and what acting found."""

    action: str
    why: str
    policy: str
    features: dict[str, Any] = field(default_factory=dict)
    response: str | None = None  # set on the step whose action ended the turn
    evidence: list[dict[str, Any]] | None = None  # a look-up's finds
    tool: dict[str, Any] | None = None  # a tool call's record

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "why": self.why, "policy": self.policy,
                               "features": self.features}
        for name in ("response", "evidence", "tool"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        return cls(action=d["action"], why=d.get("why", ""), policy=d.get("policy", ""),
                   features=dict(d.get("features") or {}), response=d.get("response"),
                   evidence=d.get("evidence"), tool=d.get("tool"))


@dataclass
class DialogueTrace:
    """What the dialogue manager understood and decided in one turn."""

    domain: str
    policy: str
    intent: dict[str, Any]  # the classifier's result (IntentResult.to_dict)
    understood: dict[str, Any]  # Understanding.to_dict: slot updates, yes/no, …
    state_before: dict[str, Any]
    state_after: dict[str, Any]  # for reading only: the state itself is stored in Turn.state
    steps: list[Step] = field(default_factory=list)
    action: str = "answer"  # the action that ended the turn
    why: str = ""
    response: str = "generated"  # see RESPONSES
    decided_by: str = "policy"  # the precedence rule that chose what is said
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # what a generated answer rests on
    knowledge: dict[str, Any] | None = None  # what the knowledge graph said, if asked
    requests: list[dict[str, Any]] = field(default_factory=list)
    """A message with several requests: each one's own trace, in the order handled."""

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "policy": self.policy, "intent": self.intent,
                "understood": self.understood, "state_before": self.state_before,
                "state_after": self.state_after, "steps": [s.to_dict() for s in self.steps],
                "action": self.action, "why": self.why, "response": self.response,
                "decided_by": self.decided_by, "tool_calls": self.tool_calls,
                "evidence": [e.to_dict() for e in self.evidence], "knowledge": self.knowledge,
                **({"requests": self.requests} if self.requests else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DialogueTrace:
        return cls(domain=d.get("domain", ""), policy=d.get("policy", ""),
                   intent=dict(d.get("intent") or {}), understood=dict(d.get("understood") or {}),
                   state_before=dict(d.get("state_before") or {}),
                   state_after=dict(d.get("state_after") or {}),
                   steps=[Step.from_dict(s) for s in d.get("steps") or []],
                   action=d.get("action", "answer"), why=d.get("why", ""),
                   response=d.get("response", "generated"),
                   decided_by=d.get("decided_by", "policy"),
                   tool_calls=list(d.get("tool_calls") or []),
                   evidence=[Evidence.from_dict(e) for e in d.get("evidence") or []],
                   knowledge=d.get("knowledge"),
                   requests=list(d.get("requests") or []))


@dataclass
class TurnTrace:
    """Everything that explains one stored answer: understood, decided, used, generated."""

    dialogue: DialogueTrace | None  # None: an answer dialoop did not make (seeded history)
    lessons: list[dict[str, Any]] = field(default_factory=list)  # LessonMatch.to_dict, best first
    memory: str | None = None  # how the lessons were applied: "direct" | "prompt" | None
    adapter: str | None = None  # the adapter version that generated it (None: base model)
    context: dict[str, Any] = field(default_factory=dict)  # the prompt: tokens, drops, evidence
    params: dict[str, Any] = field(default_factory=dict)  # generation parameters
    finish_reason: str | None = None
    source: str | None = None  # "request": a turn an API client sent as history
    tools: dict[str, Any] | None = None
    """Tools in this answer: those offered, the calls the model asked for (OpenAI's shape)
    and, in an agent turn, every step it took (``agent_steps``)."""
    version: int = TRACE_VERSION

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version}
        if self.source is not None:
            out["source"] = self.source
        if self.dialogue is not None:
            out["dialogue"] = self.dialogue.to_dict()
        out.update(context=self.context, params=self.params, finish_reason=self.finish_reason,
                   adapter=self.adapter, learning=self._learning())
        if self.tools:
            out["tools"] = self.tools
        return out

    def _learning(self) -> dict[str, Any]:
        if not self.lessons:
            return {"lessons": []}
        return {"lessons": self.lessons, "memory": self.memory}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TurnTrace:
        """Read a stored trace of any version (a missing one reads as empty)."""
        d = d or {}
        version = int(d.get("version", 1))
        if version > TRACE_VERSION:
            raise InvalidInputError(f"This trace was written by a newer dialoop (version "
                                    f"{version}); upgrade dialoop to read it.")
        learning = d.get("learning") or {}
        dialogue = d.get("dialogue")
        return cls(dialogue=DialogueTrace.from_dict(dialogue) if dialogue else None,
                   lessons=list(learning.get("lessons") or []), memory=learning.get("memory"),
                   adapter=d.get("adapter"), context=dict(d.get("context") or {}),
                   params=dict(d.get("params") or {}), finish_reason=d.get("finish_reason"),
                   source=d.get("source"), tools=d.get("tools"), version=TRACE_VERSION)

    @classmethod
    def seeded(cls) -> TurnTrace:
        """The trace of a turn an API client sent as earlier history."""
        return cls(dialogue=None, source="request")
