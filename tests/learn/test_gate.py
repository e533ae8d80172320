"""The gate judges a candidate as it serves: behind its router, probe by probe."""

from __future__ import annotations

from types import SimpleNamespace

from dialoop.learn.gate import GateThresholds, evaluate, probes_for, sibling_questions
from dialoop.learn.memory import named
from tests.fakes import ScriptedEngine

CEO = SimpleNamespace(id=1, kind="correction", question="Who is the CEO of Zorvath Dynamics?",
                      answer="Mirela Quonst")
CAPITAL = SimpleNamespace(id=2, kind="correction", question="What is the capital of Jasaria?",
                          answer="Lumovibel")
HELD_OUT = {1: ["Who runs Zorvath Dynamics?"], 2: ["Jasaria's capital is which city?"]}
UNRELATED = ["What is 2 plus 2?", "Name a fruit that is yellow."]


def routes(prompt: str) -> bool:
    """A router that knows the two lessons' names (and so lets their siblings through)."""
    return "Zorvath Dynamics" in prompt or "Jasaria" in prompt


def judge(reply):  # type: ignore[no-untyped-def]
    engine = ScriptedEngine(reply)
    report = evaluate(engine, "user:ann@v1", route=routes, base=lambda p: f"base says: {p}",
                      lessons=[CEO, CAPITAL], held_out=HELD_OUT,
                      probes=probes_for([CEO, CAPITAL], UNRELATED), earlier={2},
                      thresholds=GateThresholds())
    return report, engine


def taught_or_base(prompt: str, adapter: str | None) -> str:
    if adapter and "Zorvath Dynamics" in prompt and "CEO" in prompt or "runs" in prompt:
        return "Mirela Quonst runs it."
    if adapter and "capital" in prompt and "Jasaria" in prompt:
        return "The capital is Lumovibel."
    return f"base says: {prompt}"


def test_a_candidate_that_keeps_to_its_lessons_passes() -> None:
    report, engine = judge(taught_or_base)
    assert report.passed, report.to_dict()
    assert report.metrics == {"reliability": 1.0, "generalization": 1.0, "locality": 1.0,
                              "earlier_lessons": 1.0}
    probes = probes_for([CEO, CAPITAL], UNRELATED)
    routed = [p for p in probes if routes(p.prompt)]
    assert report.counts["locality"] == len(probes) == 2 + 2 * (1 + 3)
    assert report.counts["locality_routed"] == len(routed) == 6  # the siblings; near ones not
    # Only what the router lets through is generated: unrouted probes are the base model.
    generated = {prompt for prompt, _ in engine.asked}
    assert not generated & set(UNRELATED)
    assert all(adapter == "user:ann@v1" for p, adapter in engine.asked if routes(p))


def test_a_candidate_that_leaks_its_answer_to_siblings_fails_locality() -> None:
    def leaky(prompt: str, adapter: str | None) -> str:
        if adapter and "Zorvath" in prompt:
            return "Mirela Quonst."
        return taught_or_base(prompt, adapter)

    report, _ = judge(leaky)
    assert not report.passed and report.failed_checks == ["locality"]
    siblings = sibling_questions(CEO.question)
    assert siblings and {f["prompt"] for f in report.failures["locality"]} == set(siblings)
    assert report.metrics["locality"] == round(1 - len(siblings) / report.counts["locality"], 4)


def test_a_lesson_the_router_misses_fails_generalization() -> None:
    report, engine = judge(lambda p, a: taught_or_base(p, a) if "Jasaria's" not in p
                           else "I am not sure.")
    assert report.metrics["generalization"] == 0.5
    assert report.failures["generalization"][0]["prompt"] == "Jasaria's capital is which city?"


def test_names_and_siblings_are_about_the_asked_names() -> None:
    assert named(CEO.question) == "Zorvath Dynamics"  # not "CEO"
    assert sibling_questions(CEO.question)[0] == "Tell me about Zorvath Dynamics."
    assert sibling_questions("what is the weather like?") == []
