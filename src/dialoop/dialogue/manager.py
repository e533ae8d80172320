"""The turn pipeline: understand → decide → act, ending in the whole decision of a turn.

    manager = DialogueManager(load_domain("examples/store_support/domain.yaml"), engine=engine)
    plan = manager.plan("Where is my order?", user="ann", turns=turns, ...)
    plan.text      # fixed wording (a question, a template, a lesson), or None: generate
    plan.evidence  # what a generated answer rests on
    plan.adapter   # the adapter version that generates it (None: the base model)
    plan.state     # the dialogue state after this turn (stored in its own column)
    plan.trace     # a DialogueTrace: intent, state before/after, each action and why

:class:`~dialoop.assistant.Assistant` only carries the plan out: it stores the
user's message, generates (or says ``plan.text``) and stores the answer.

Understand: the intent classifier (with its LLM fallback when unsure), slot values
found in the message (by each slot's rules, or by the values tracker of
``dialogue/tracker.py`` when the domain sets ``understanding.tracker``: it also reads
the assistant's previous reply), the state update (:func:`~dialoop.dialogue.state.advance`)
and the lessons the correction memory holds for the message. Decide: the policy
picks one action. Act: a look-up or tool call adds to what is known and the policy
is asked again; answer, clarify and hand_off end the turn. ``policy.max_steps``
bounds the loop: at the last step the answer is forced.

Guards between decide and act keep any policy safe: a tool whose required
arguments are missing becomes a question for them; an intent that asks for
confirmation is never acted on before the user said yes to these values; a tool
or look-up already run in this turn is not run again.

Who decides what is said is written in one place, :data:`PRECEDENCE` (applied by
:meth:`DialogueManager._choose`): the first rule that applies wins, the trace says
which (``decided_by``), and only the winner's effect on the state is applied.

Seams for other parts, each a Protocol: ``memory`` (the correction memory's
lessons), ``evidence`` providers (asked whenever the model writes an answer),
``lookup`` (the knowledge the ``look_up`` action queries), ``grounding`` (the
knowledge graph, which may answer or decline a general assistant's question) and
``adapters`` (who chooses the LoRA adapter per user, first non-None wins).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2

from dialoop.agent.tools import ToolCall, ToolContext
from dialoop.dialogue.domain import Domain
from dialoop.dialogue.gate import LearnedGate
from dialoop.dialogue.intent import EncoderIntentClassifier, IntentClassifier, IntentResult
from dialoop.dialogue.lookup import EvidenceProvider, FactsLookup, Grounded, Grounding, Lookup
from dialoop.dialogue.policy import (
    TERMINAL,
    Decision,
    Features,
    Policy,
    apply_effect,
    clarify_target,
    make_policy,
)
from dialoop.dialogue.state import (
    DialogueState,
    Understanding,
    advance,
    extract_slots,
    normalize_value,
)
from dialoop.dialogue.tracker import TrackerSchema, ValueTracker, domain_schema
from dialoop.engine import Engine, Message
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.evidence import DialogueTrace, Evidence, LessonMatch, Recall, Step

__all__ = ["PRECEDENCE", "AdapterChooser", "DialogueManager", "Memory", "TurnPlan",
           "state_from_turns"]

log = logging.getLogger(__name__)

MAX_REQUESTS = 3
# Where one request may end and another begin: after a sentence, at a semicolon, or at
# "and" / "also" / "plus" before a question word or a first-person request.
_REQUEST_SPLIT = re.compile(
    r"(?<=[?!.;])\s+|;\s*|,?\s+(?:and|also|plus)\s+(?:also\s+)?(?=(?:what|when|where|which|"
    r"who|how|why|can|could|would|will|do|does|is|are|i|i'd|i'm|please|tell|track|cancel|"
    r"return|send|show)\b)", re.IGNORECASE)


# A later part that points back at an earlier one continues its request.
_BACK_REFERENCE = re.compile(r"\b(?:it|its|it's|they|them|their|that|this|those|these|"
                             r"one|ones|same)\b", re.IGNORECASE)


def _asks(plan: TurnPlan) -> bool:
    """The plan's reply is a question to the user and nothing was done yet."""
    return plan.trace.response.startswith("question:") and not plan.trace.tool_calls \
        and not plan.handed_off


PRECEDENCE: tuple[tuple[str, str], ...] = (
    ("hand_off", "the policy hands the conversation to a person"),
    ("tool", "a tool ran in this turn: say what it did (no lesson or fact can know that)"),
    ("task", "the task needs an answer first: a tool argument or a confirmation the guard "
             "asks for, or the user is answering the question we asked"),
    ("lesson", "a lesson the correction memory is sure of: a user's own correction (or any "
               "lesson that matched, where the knowledge graph would only decline)"),
    ("knowledge", "the knowledge graph answers, or declines what it knows it cannot answer "
                  "and no lesson matched"),
    ("policy", "the policy's own wording: a template, a fixed reply or a clarifying question"),
    ("model", "the model writes the answer from the evidence"),
)
"""Who decides what is said, first rule that applies wins (see ``DialogueManager._choose``)."""


class AdapterChooser(Protocol):
    def adapter_for(self, user: str, message: str) -> str | None:
        """The adapter version (``line@vN``) to answer ``message`` of ``user`` with (None: no
        opinion, or the message is outside what the adapter was trained for)."""
        ...


class Memory(Protocol):
    def recall(self, message: str, *, user: str) -> Recall:
        """The lessons that apply to ``message`` for ``user``, and whether one is sure."""
        ...


@dataclass
class TurnPlan:
    """The whole decision of a turn: what to say (or generate from), with what, and why."""

    text: str | None  # fixed wording; None: the model writes the answer
    system: str | None  # the system prompt to generate with
    evidence: list[Evidence]
    adapter: str | None  # the adapter version that generates (None: the base model)
    state: DialogueState  # after this turn
    trace: DialogueTrace
    lessons: list[LessonMatch] = field(default_factory=list)  # what the memory matched
    handed_off: bool = False  # this turn handed the session to a person
    prefix: str | None = None  # fixed answers said before the model's own (several requests)
    suffix: str | None = None  # a question said after the model's answer (asked last)

    @property
    def memory(self) -> str | None:
        """How the lessons were applied: "direct" (said as taught), "prompt" or None."""
        if not self.lessons:
            return None
        return "direct" if self.trace.response == "lesson" else "prompt"


@dataclass(frozen=True)
class _Candidate:
    """What the policy's final action would say, before precedence decides."""

    action: str
    text: str | None  # None: generate
    response: str  # "question:SLOT", "template:NAME", "fixed" or "generated"
    forced: bool  # a guard turned the policy's action into this question


@dataclass
class _Turn:
    """Working memory of one turn's act loop."""

    understood: Understanding
    state: DialogueState
    ranking: list[tuple[str, float]]  # the classifier's intents, best first
    steps: list[Step] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    acted: str | None = None
    looked_up: bool = False
    grounded: Grounded | None = None  # what the knowledge said to a look-up, if asked
    given: tuple[Evidence, ...] = ()  # the turn's own evidence (Assistant.stream(evidence=))

    @property
    def last_call(self) -> ToolCall | None:
        """The tool call of the last step, if the last step called a tool."""
        if self.calls and self.acted == f"call_tool:{self.calls[-1].name}":
            return self.calls[-1]
        return None


class DialogueManager:
    """Understands, decides and acts for one domain. Holds no per-session state: one manager
    serves every session (the state is read back from the session's turns)."""

    def __init__(
        self,
        domain: Domain,
        *,
        engine: Engine,
        policy: Policy | str | None = None,
        embedder: Embedder | None = None,
        lookup: Lookup | None = None,
        evidence: Sequence[EvidenceProvider] = (),
        memory: Memory | None = None,
        adapters: Sequence[AdapterChooser] = (),
        classifier: IntentClassifier | EncoderIntentClassifier | None = None,
        grounding: Grounding | None = None,
    ) -> None:
        self.domain = domain
        self.grounding = grounding
        self.engine = engine
        self.policy = make_policy(domain, policy) if policy is None or isinstance(policy, str) \
            else policy
        self.evidence = list(evidence)
        self.memory = memory
        self.adapters = list(adapters)
        self.classifier: IntentClassifier | EncoderIntentClassifier | None = None
        self.lookup = lookup
        if not domain.is_general:
            embedder = embedder or default_embedder()
            named = domain.spec.understanding.classifier
            self.classifier = classifier or (
                EncoderIntentClassifier(domain, domain.resolve(named)) if named
                else IntentClassifier(domain, embedder))
            if lookup is None and domain.spec.knowledge:
                self.lookup = FactsLookup(domain.resolve(domain.spec.knowledge), embedder)
        self._schema: TrackerSchema | None = None  # built on first use (entity names)
        gate = domain.spec.understanding.tracker_gate
        self._gate = LearnedGate.load(domain.resolve(gate)) if gate else None

    def plan(
        self,
        message: str,
        *,
        user: str,
        turns: Sequence[Any] = (),
        history: Sequence[Message] = (),
        system: str | None = None,
        session_id: str | None = None,
        home: Path | None = None,
        adapter: str | None = None,
        use_memory: bool = True,
        evidence: Sequence[Evidence] = (),
    ) -> TurnPlan:
        """Understand ``message``, decide and act; ``turns`` are the session's earlier turns.

        ``adapter`` fixes the adapter version a generated answer uses (``"none"``: the
        base model) instead of asking the choosers; ``use_memory=False`` leaves the
        correction memory out of this turn. ``evidence`` belongs to this turn alone (the
        text read from the message's images, say): the model writing the answer is given
        it before the providers' evidence, and the knowledge graph's "I don't know" does
        not stand in for an answer it may hold.
        """
        before = state_from_turns(turns, self.domain)
        options = {"user": user, "history": history, "system": system,
                   "session_id": session_id, "home": home, "adapter": adapter,
                   "use_memory": use_memory, "given": tuple(evidence),
                   "previous": _previous_reply(turns)}
        if (requests := self._requests(message, before)) is not None:
            return self._plan_requests(requests, before, **options)
        plan = self._plan(message, before, **options)
        if (target := self._interrupted(before, plan)) is not None:
            return self._resume(message, before, plan, target, user=user, system=system,
                                adapter=adapter)
        return plan

    def _plan(self, message: str, before: DialogueState, *, user: str,
              history: Sequence[Message], system: str | None, session_id: str | None,
              home: Path | None, adapter: str | None, use_memory: bool,
              given: tuple[Evidence, ...] = (), previous: str = "") -> TurnPlan:
        """:meth:`plan` for one request, from the state ``before`` it; ``given`` is the
        turn's own evidence (see :meth:`plan`), ``previous`` the assistant's last reply."""
        result, understood = self._understand(message, before, history, user, previous)
        recall = self.memory.recall(message, user=user) \
            if self.memory is not None and use_memory else Recall()
        turn = _Turn(understood, understood.state, result.ranking, given=given)
        context = ToolContext(user=user, session_id=session_id, home=home)
        candidate = self._run_steps(turn, message, user, context)
        rule, text, response, why, grounded = self._choose(candidate, turn, before, recall,
                                                           message, user)
        if rule in ("hand_off", "tool", "task", "policy", "model"):
            apply_effect(self.domain, turn.state, candidate.action)
        action = candidate.action if rule in ("hand_off", "tool", "task", "policy", "model") \
            else "answer"
        evidence = list(turn.evidence)
        if text is None:  # the model writes the answer: give it everything it should rest on
            evidence += [*given, *self._provided(message, user, turn.state)]
            if (call := turn.last_call) and call.ok:
                evidence.append(Evidence("tool", f"{call.name} returned: {call.result}",
                                         f"tool:{call.name}"))
            evidence += [m.evidence() for m in recall.matches]
        trace = DialogueTrace(
            domain=self.domain.name, policy=self.policy.name, intent=result.to_dict(),
            understood=understood.to_dict(), state_before=before.to_dict(),
            state_after=turn.state.to_dict(), steps=turn.steps, action=action,
            why=why or turn.steps[-1].why, response=response, decided_by=rule,
            tool_calls=[c.to_dict() for c in turn.calls], evidence=evidence,
            knowledge=(grounded or turn.grounded).describe()
            if (grounded or turn.grounded) is not None else None,
        )
        summary = turn.state.summary(self.domain)
        return TurnPlan(
            text=text,
            system="\n\n".join(p for p in (system, summary) if p) or None,
            evidence=evidence,
            adapter=self._adapter(user, message, adapter) if text is None else None,
            state=turn.state,
            trace=trace,
            lessons=list(recall.matches),
            handed_off=turn.state.handed_off and not before.handed_off,
        )

    # -- several requests in one message ---------------------------------------------------

    def _requests(self, message: str, before: DialogueState) -> list[str] | None:
        """The separate requests of ``message`` ("Where is order 5521, and when are you
        open on Saturday?"), or None when it makes one request. A split is kept only when
        every part is confidently a different in-domain intent: "return the lamp and get
        a refund" stays one request. An answer to our own question is never split."""
        if self.classifier is None or before.requested or before.confirming:
            return None
        parts = [p.strip(" ,;") for p in _REQUEST_SPLIT.split(message)]
        parts = [p for p in parts if len(p.split()) >= 2]
        if len(parts) < 2 or len(parts) > MAX_REQUESTS or any(
                _BACK_REFERENCE.search(p) for p in parts[1:]):
            return None  # "… express shipping and what does it cost?": one request
        u = self.domain.spec.understanding
        results = self.classifier.classify_many(parts)
        intents = [r.intent for r in results]
        if len(set(intents)) < len(intents) or any(
                r.out_of_domain or r.confidence < u.confidence_threshold for r in results):
            return None
        return parts

    def _plan_requests(self, requests: list[str], before: DialogueState, *, user: str,
                       history: Sequence[Message], system: str | None,
                       session_id: str | None, home: Path | None, adapter: str | None,
                       use_memory: bool, given: tuple[Evidence, ...],
                       previous: str = "") -> TurnPlan:
        """Each request understood and acted on in turn, one reply for all. A request that
        needs a question from the user waits until the others are done and is asked last,
        so the state the dialogue goes on from holds its pending question; two such
        requests conflict, and the reply asks which to do first. If any answer is the
        model's to write, it writes one answer to everything, with every request's
        evidence and the fixed answers as context."""
        options = {"user": user, "history": history, "system": system,
                   "session_id": session_id, "home": home, "adapter": adapter,
                   "use_memory": use_memory, "given": given, "previous": previous}
        state = before
        done: list[tuple[str, TurnPlan]] = []
        waiting: list[str] = []
        for request in requests:
            plan = self._plan(request, state, **options)
            if _asks(plan):
                waiting.append(request)  # a question has no effect yet: plan it again later
                continue
            done.append((request, plan))
            state = plan.state
            if plan.handed_off:
                waiting = []
                break
        texts = [p.text for _, p in done]
        asked: list[tuple[str, TurnPlan]] = []
        if len(waiting) == 1:
            plan = self._plan(waiting[0], state, **options)
            done.append((waiting[0], plan))
            texts.append(plan.text)
            state = plan.state
        elif waiting:
            asked = [(r, self._plan(r, state, **options)) for r in waiting]
            which = " and ".join(self._intent_words(p.trace.intent.get("intent", ""))
                                 for _, p in asked)
            texts.append(f"You {'also ' if done else ''}asked about {which}: "
                         "which shall we start with?")
        pairs = done + asked
        return self._merged([p for _, p in pairs], texts, before, state,
                            why=f"{len(requests)} requests in one message", response="requests",
                            decided_by="requests", user=user, system=system, adapter=adapter,
                            message=" ".join(requests),
                            requests=[{"message": r, **p.trace.to_dict()} for r, p in pairs])

    def _merged(self, plans: list[TurnPlan], texts: list[str | None], before: DialogueState,
                state: DialogueState, *, why: str, response: str, decided_by: str, user: str,
                system: str | None, adapter: str | None, message: str,
                requests: list[dict[str, Any]]) -> TurnPlan:
        """One plan saying ``texts`` in order, from the ``plans`` acted on in one turn (their
        steps, tool calls and evidence in order); the dialogue goes on from ``state``. A
        text that is None is the model's to write: the fixed answers are said before it and
        a question asked last after it."""
        generate = any(t is None for t in texts)
        ask = texts[-1] if generate and texts[-1] is not None and _asks(plans[-1]) else None
        if ask is not None:
            texts = texts[:-1]
        evidence = _distinct([e for p in plans for e in p.evidence])  # the turn's own: once
        fixed = " ".join(t for t in texts if t)
        if generate and fixed:  # said first, word for word; the model is told it was said
            evidence.append(Evidence("answer", f"Already answered: {fixed}", "dialogue"))
        traces = [p.trace for p in plans]
        trace = DialogueTrace(
            domain=self.domain.name, policy=self.policy.name, intent=traces[0].intent,
            understood=traces[0].understood, state_before=before.to_dict(),
            state_after=state.to_dict(), steps=[s for t in traces for s in t.steps],
            action=traces[-1].action, why=why,
            response="generated" if generate else response, decided_by=decided_by,
            tool_calls=[c for t in traces for c in t.tool_calls], evidence=evidence,
            knowledge=next((t.knowledge for t in traces if t.knowledge), None),
            requests=requests)
        summary = state.summary(self.domain)
        return TurnPlan(
            text=None if generate else fixed, prefix=(fixed or None) if generate else None,
            suffix=ask, system="\n\n".join(p for p in (system, summary) if p) or None,
            evidence=evidence,
            adapter=self._adapter(user, message, adapter) if generate else None,
            state=state, trace=trace, lessons=[m for p in plans for m in p.lessons],
            handed_off=state.handed_off and not before.handed_off)

    # -- a side question inside an open task ------------------------------------------------

    def _interrupted(self, before: DialogueState, plan: TurnPlan) -> str | None:
        """The slot to ask for again when ``plan`` answered a side question while the
        assistant was waiting for that slot (None: no interruption). A side question is a
        confident, in-domain intent other than the goal that needs no slots of its own and
        is answered (a template, a look-up, the model: chitchat, help, "why do you need
        this?"); the message gave no value for the slot asked for. An intent that needs
        slots of its own, a tool call or a hand-off is a new goal, as before."""
        understood = plan.trace.understood
        intent = understood.get("intent")
        if (before.requested is None or before.intent is None or before.handed_off
                or understood.get("continued") or not understood.get("confident")
                or understood.get("out_of_domain") or intent == before.intent
                or intent not in self.domain.spec.intents or self.domain.required(intent)):
            return None
        if (plan.trace.action != "answer" or plan.trace.tool_calls or plan.handed_off
                or plan.state.intent != intent):
            return None
        if any(u["slot"] == before.requested for u in understood.get("slot_updates", [])):
            return None
        return before.requested

    def _resume(self, message: str, before: DialogueState, side: TurnPlan, target: str, *,
                user: str, system: str | None, adapter: str | None) -> TurnPlan:
        """``side`` answered, then the open question asked again in the same reply: the
        goal and the slot asked for stay what they were (like a request asked last)."""
        state = side.state.copy()
        state.intent, state.confirmed = before.intent, before.confirmed
        action = f"clarify:{target}"
        apply_effect(self.domain, state, action)
        step = Step(action=action, why=f"{side.trace.understood.get('intent')} answered in "
                    f"passing; {before.intent} still needs the "
                    f"{self.domain.slot_label(target)}: ask again", policy=self.policy.name,
                    response=f"question:{target}")
        question = self.domain.slot_question(target)
        resumed = TurnPlan(text=question, system=None, evidence=[], adapter=None, state=state,
                           trace=dataclasses.replace(side.trace, steps=[step], action=action,
                                                     response=f"question:{target}",
                                                     tool_calls=[], evidence=[],
                                                     knowledge=None))
        return self._merged([side, resumed], [side.text, question], before, state,
                            why=f"a side question inside {before.intent}: answered, then "
                                f"the {self.domain.slot_label(target)} asked again",
                            response=f"question:{target}", decided_by="interruption",
                            user=user, system=system, adapter=adapter, message=message,
                            requests=[])

    def _intent_words(self, intent: str) -> str:
        spec = self.domain.spec.intents.get(intent)
        return (spec.description if spec and spec.description else intent.replace("_", " "))

    # -- who decides what is said -----------------------------------------------------------

    def _choose(
        self, c: _Candidate, turn: _Turn, before: DialogueState, recall: Recall, message: str,
        user: str,
    ) -> tuple[str, str | None, str, str | None, Grounded | None]:
        """Apply :data:`PRECEDENCE`: (rule, text or None to generate, response, why, what the
        knowledge graph said if it was asked)."""
        kind = c.action.partition(":")[0]
        if kind == "hand_off":
            return "hand_off", c.text, c.response, None, None
        if turn.calls:
            return "tool", c.text, c.response, None, None
        if c.forced or before.requested or before.confirming:
            return "task", c.text, c.response, None, None
        if (lesson := recall.direct) is not None:
            why = (f"lesson {lesson.lesson_id} taught this answer (similarity "
                   f"{lesson.score:.2f}); the policy chose {c.action}")
            return "lesson", lesson.answer, "lesson", why, None
        grounded = None
        if self.grounding is not None and self.domain.is_general:
            grounded = self.grounding.lookup(message, user=user)
            turn.evidence += grounded.evidence
            if grounded.reply is not None and grounded.declined and recall.matches:
                # "I don't know" is no answer when a lesson says what to answer.
                lesson = recall.matches[0]
                why = (f"the knowledge graph declined; lesson {lesson.lesson_id} matched "
                       f"(similarity {lesson.score:.2f}) and says what to answer")
                return "lesson", lesson.answer, "lesson", why, grounded
            # The knowledge answers, or honestly declines; a decline does not stand when the
            # turn brought evidence of its own (an image's text): the model reads that.
            if grounded.reply is not None and not (grounded.declined and turn.given):
                return "knowledge", grounded.reply, "knowledge", None, grounded
        if c.text is not None:
            return "policy", c.text, c.response, None, grounded
        return "model", None, "generated", None, grounded

    def _adapter(self, user: str, message: str, fixed: str | None) -> str | None:
        """The adapter version a generated answer uses: the fixed one, else the first
        chooser with an opinion, else none (the base model)."""
        if fixed is not None:
            return None if fixed == "none" else fixed
        for chooser in self.adapters:
            if (chosen := chooser.adapter_for(user, message)) is not None:
                return chosen
        return None

    def _run_steps(self, turn: _Turn, message: str, user: str,
                   context: ToolContext) -> _Candidate:
        """Decide and act until a final action (at most ``max_steps``); what it would say."""
        max_steps = self.domain.spec.policy.max_steps
        for step in range(max_steps):
            features = Features.of(self.domain, turn.understood, turn.state, acted=turn.acted,
                                   tool_failed=bool(turn.calls and not turn.calls[-1].ok),
                                   evidence_found=bool(turn.evidence))
            decision = self.policy.decide(features)
            action, why = self._guard(decision, turn, last=step == max_steps - 1)
            record = Step(action=action, why=why, policy=decision.policy,
                          features=features.to_dict())
            turn.steps.append(record)
            if action.partition(":")[0] in TERMINAL:
                # a question the guard asks (a tool argument, a confirmation) serves the task
                asked = action.startswith("clarify") and not decision.action.startswith("clarify")
                return self._final(action, decision, record, turn, message, asked)
            self._act(action, record, turn, message, user, context)
        raise AssertionError("the last step is always forced to a final action")

    # -- understand -----------------------------------------------------------------------

    def _understand(self, message: str, before: DialogueState, history: Sequence[Message],
                    user: str, previous: str = "") -> tuple[IntentResult, Understanding]:
        if self.classifier is None:  # the general domain: one intent, nothing to fill
            only = next(iter(self.domain.spec.intents))
            result = IntentResult(only, 1.0, [(only, 1.0)], source="only intent")
            return result, advance(before, self.domain, message, intent=only, confidence=1.0,
                                   out_of_domain=False, found={})
        result = self.classifier.classify(message)
        u = self.domain.spec.understanding
        if result.confidence < u.confidence_threshold and u.llm_fallback and not (
                before.requested or before.confirming):  # an answer to our question is no intent
            result = self.classifier.fallback(message, result, self.engine, history,
                                              cache_scope=user)
        slots = [*self.domain.intent_slots(result.intent), *self.domain.intent_slots(before.intent)]
        if before.requested:
            slots.append(before.requested)
        found = extract_slots(message, self.domain, slots, requested=before.requested,
                              entities=self._entities)
        mode = self.domain.spec.understanding.tracker
        if mode != "rules":
            found = self._tracked(message, previous, before, slots, found, mode)
        understood = advance(before, self.domain, message, intent=result.intent,
                             confidence=result.confidence, out_of_domain=result.out_of_domain,
                             found=found)
        return result, understood

    def _tracked(self, message: str, previous: str, before: DialogueState,
                 slots: Sequence[str], found: dict[str, Any], mode: str) -> dict[str, Any]:
        """``found`` (the rules' values) with the values tracker's reading of the enum and
        entity slots among ``slots``: ``values``: the tracker alone fills those; ``both``:
        the tracker first, the rules' value where it found none. The tracker sees what the
        rules cannot (the question just asked, cue words, "doesn't matter", "not X"), so
        where both read a slot its reading wins."""
        if self._schema is None:
            self._schema = domain_schema(self.domain, self._entities)
        tracked = {s.name for s in self._schema.slots}
        # like the rules, only the slots this turn may fill: "in the north" is an area
        # while finding a restaurant, even if a taxi's destination could be "north" too
        schema = dataclasses.replace(self._schema, slots=tuple(
            s for s in self._schema.slots if s.name in slots))
        tracker = ValueTracker(schema, self._gate)
        tracker.state = {k: str(v) for k, v in before.slots.items() if k in tracked}
        after = tracker.update(message, previous)
        changed = {k: v for k, v in after.items() if before.slots.get(k) != v}
        # the rules' value stands for the slots the tracker does not read, where it agrees
        # with the tracker (a value said again still answers the question), and in
        # ``both`` where the tracker changed nothing
        kept = {k: v for k, v in found.items() if k not in tracked or after.get(k) == str(v)
                or (mode == "both" and k not in changed)}
        return {**kept, **changed}

    def _entities(self, kind: str) -> dict[str, list[str]]:
        if self.lookup is None:
            return {}
        aliases = getattr(self.lookup, "aliases", None)
        if callable(aliases):
            return aliases(kind)
        return {name: [name] for name in self.lookup.entities(kind)}

    # -- decide (guards) ------------------------------------------------------------------

    def _guard(self, decision: Decision, turn: _Turn, *, last: bool) -> tuple[str, str]:
        """The action to run instead of ``decision`` when that one would be unsafe."""
        action, why = decision.action, decision.why
        kind, _, tool = action.partition(":")
        if kind == "call_tool":
            if tool not in self.domain.tools:
                return "answer", f"{why}; but there is no tool {tool!r}: answer instead"
            missing = self._missing_arguments(tool, turn.state)
            if missing:
                return f"clarify:{missing[0]}", f"{why}; but {tool} needs the " \
                                                f"{self.domain.slot_label(missing[0])}: ask"
            if turn.state.needs_confirmation(self.domain):
                return "clarify:confirm", f"{why}; but the customer has not confirmed: ask first"
            if any(c.name == tool for c in turn.calls):
                return "answer", f"{why}; but {tool} already ran in this turn: answer"
        if kind == "look_up" and (turn.looked_up or (self.lookup is None
                                                      and self.grounding is None)):
            return "answer", f"{why}; but " + (
                "the facts were already looked up: answer" if turn.looked_up
                else "this domain has nothing to look up: answer")
        if last and kind not in TERMINAL:
            return "answer", f"{why}; but this is the last step allowed in a turn: answer"
        return action, why

    def _missing_arguments(self, tool: str, state: DialogueState) -> list[str]:
        schema = self.domain.tools.get(tool).parameters  # type: ignore[union-attr]
        binding = self.domain.spec.tools[tool].arguments
        return [slot for param in schema.get("required", [])
                if (slot := binding.get(param, param)) in self.domain.spec.slots
                and slot not in state.slots]

    def _arguments(self, tool: str, state: DialogueState) -> dict[str, Any]:
        schema = self.domain.tools.get(tool).parameters  # type: ignore[union-attr]
        binding = self.domain.spec.tools[tool].arguments
        args = {}
        for param in schema.get("properties", {}):
            slot = binding.get(param, param)
            if slot in state.slots:
                args[param] = state.slots[slot]
        return args

    # -- act ----------------------------------------------------------------------------

    def _act(self, action: str, record: Step, turn: _Turn, message: str, user: str,
             context: ToolContext) -> None:
        """Run a non-final action (a look-up or a tool call): it adds to what is known."""
        kind, _, target = action.partition(":")
        if kind == "look_up":
            found = self._look_up(message, user, turn)
            turn.evidence += found
            turn.acted, turn.looked_up = "look_up", True
            record.evidence = [e.to_dict() for e in found]
            return
        assert kind == "call_tool", f"not an action to run: {action}"
        call = self.domain.tools.call(target, self._arguments(target, turn.state), context)
        turn.calls.append(call)
        turn.acted = action
        record.tool = call.to_dict()
        apply_effect(self.domain, turn.state, action)  # the tool ran: its effect stands
        self._set_by_tool(call, turn.state)

    def _set_by_tool(self, call: ToolCall, state: DialogueState) -> None:
        """A tool may set slots: a result with a ``slots`` mapping (a Rasa action's slot
        events) sets the domain's slots it names; None clears one."""
        found = call.result.get("slots") if call.ok and isinstance(call.result, dict) else None
        if not isinstance(found, dict):
            return
        for slot, value in found.items():
            if slot not in self.domain.spec.slots:
                continue
            if value is None:
                state.slots.pop(slot, None)
            else:
                state.slots[slot] = normalize_value(self.domain, slot, value)

    def _look_up(self, message: str, user: str, turn: _Turn) -> list[Evidence]:
        """Everything the assistant knows about ``message``, best first, each with its
        source: the knowledge graph's own answer (with its triples), the domain's facts
        file, then the graph's and documents' other evidence. The same knowledge (and the
        same per-user scope) as general mode; a graph that declines adds nothing."""
        facts = self.lookup.find(message, user=user, state=turn.state) \
            if self.lookup is not None else []
        if self.grounding is None:
            return facts
        grounded = turn.grounded = self.grounding.lookup(message, user=user)
        if grounded.declined:
            return facts
        first: list[Evidence] = []
        if grounded.reply is not None and grounded.answer:
            cited = [e.source for e in grounded.evidence if e.kind == "triple"]
            first.append(Evidence("knowledge", f"{grounded.answer.rstrip('.')} "
                                  f"[{', '.join(cited) or 'knowledge graph'}]",
                                  ", ".join(cited) or "knowledge"))
        seen: set[str] = set()
        fused = []
        for e in (*first, *facts, *grounded.evidence):
            if e.text not in seen:
                seen.add(e.text)
                fused.append(e)
        return fused

    def _final(self, action: str, decision: Decision, record: Step, turn: _Turn,
               message: str, forced: bool) -> _Candidate:
        """What a final action would say. Its effect on the state waits for precedence."""
        kind, _, target = action.partition(":")
        if kind == "clarify":
            target = target or clarify_target(self.domain, turn.understood, turn.state)
            record.action = f"clarify:{target}"
            record.response = f"question:{target}"
            return _Candidate(record.action, self._question(target, turn), record.response,
                              forced)
        if kind == "hand_off":
            name = decision.respond or "hand_off"
            text = self._template(name, turn, message) if self.domain.has_template(name) \
                else None
            record.response = f"template:{name}" if text is not None else "fixed"
            text = text or "I am passing this conversation to a person; they will reply here."
            return _Candidate(action, text, record.response, forced)
        text = self._answer(decision, record, turn, message)
        return _Candidate(action, text, record.response or "generated", forced)

    def _answer(self, decision: Decision, record: Step, turn: _Turn,
                message: str) -> str | None:
        call = turn.last_call
        names = [decision.respond]
        if call is not None:
            names.append(call.name if call.ok else "tool_failed")
        if turn.looked_up:
            names.append("look_up" if turn.evidence else "no_evidence")
        names.append(turn.understood.intent)
        for name in names:
            if name and self.domain.has_template(name):
                text = self._template(name, turn, message)
                if text is not None:
                    record.response = f"template:{name}"
                    return text
        if call is not None and not call.ok:  # never let the model paper over a failure
            record.response = "fixed"
            return f"Sorry, I could not do that: {call.error}"
        record.response = "generated"
        return None

    def _question(self, target: str, turn: _Turn) -> str:
        domain, state = self.domain, turn.state
        if target in domain.spec.slots:
            return self.domain.slot_question(target)
        if target == "confirm":
            name = f"confirm_{state.intent}"
            if domain.has_template(name):
                text = self._template(name, turn, "")
                if text:
                    return text
            values = ", ".join(f"{domain.slot_label(k)} {v}" for k, v in
                               state.confirmation_values(domain).items())
            return f"Just to check: {values}. Shall I go ahead? (yes/no)"
        if target == "change":
            return "All right, I won't do that. What should I change?"
        if target == "intent":
            ood = domain.spec.understanding.out_of_domain_intent
            options = [n for n, _ in turn.ranking if n != ood][:2]
            described = " or ".join(domain.spec.intents[n].description or n.replace("_", " ")
                                    for n in options)
            return f"Sorry, I am not sure what you need. Is it about {described}?"
        return "Could you tell me a little more about what you need?"

    def _template(self, name: str, turn: _Turn, message: str) -> str | None:
        call = turn.last_call
        try:
            return self.domain.render(
                name,
                slots=turn.state.slots,
                intent=turn.understood.intent,
                result=call.result if call and call.ok else None,
                error=call.error if call and not call.ok else None,
                evidence=[e.text for e in turn.evidence],
                message=message,
            )
        except jinja2.TemplateError:
            log.exception("template %r of domain %s failed", name, self.domain.name)
            return None

    def _provided(self, message: str, user: str, state: DialogueState) -> list[Evidence]:
        found: list[Evidence] = []
        for provider in self.evidence:
            found += provider.find(message, user=user, state=state)
        return found



def _distinct(evidence: list[Evidence]) -> list[Evidence]:
    """``evidence`` in order, each piece once (a turn's own evidence is in every request's
    plan)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in evidence:
        if (e.source, e.text) not in seen:
            seen.add((e.source, e.text))
            out.append(e)
    return out


def _previous_reply(turns: Sequence[Any]) -> str:
    """What the assistant said last (its question, its offer), for the values tracker."""
    for turn in reversed(turns):
        if turn.role == "assistant":
            return getattr(turn, "content", "") or ""
    return ""


def state_from_turns(turns: Sequence[Any], domain: Domain) -> DialogueState:
    """The state after the session's last answered turn (a fresh state if there is none)."""
    for turn in reversed(turns):
        stored = getattr(turn, "state", None)
        if turn.role == "assistant" and stored is not None:
            state = DialogueState.from_dict(stored)
            # A session continued under another domain keeps only what this one knows.
            state.slots = {k: v for k, v in state.slots.items() if k in domain.spec.slots}
            if state.intent not in domain.spec.intents:
                state.intent = None
            return state
    return DialogueState()
