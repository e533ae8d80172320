"""The gate judges a candidate as it serves: behind its router, probe by probe."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dialoop.learn.gate import (
    GateThresholds,
    evaluate,
    evaluate_style,
    merge_reports,
    probes_for,
    rated_behaviour,
    sibling_questions,
)
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
                              "earlier_lessons": 1.0, "same_subject": 1.0}
    probes = probes_for([CEO, CAPITAL], UNRELATED)
    routed = [p for p in probes if routes(p.prompt)]
    assert len(probes) == 2 + 2 * (1 + 3)
    assert report.counts["locality"] == 2 + 2  # unrelated, and the question about another name
    assert report.counts["same_subject"] == len(routed) == 6  # the siblings, all routed
    assert report.counts["locality_routed"] == 0
    # Only what the router lets through is generated: unrouted probes are the base model.
    generated = {prompt for prompt, _ in engine.asked}
    assert not generated & set(UNRELATED)
    assert all(adapter == "user:ann@v1" for p, adapter in engine.asked if routes(p))


def test_answers_drawn_into_other_questions_about_a_taught_name_are_reported_not_gated(
) -> None:
    def leaky(prompt: str, adapter: str | None) -> str:
        if adapter and "Zorvath" in prompt:
            return "Mirela Quonst."
        return taught_or_base(prompt, adapter)

    report, _ = judge(leaky)
    assert report.passed, report.to_dict()
    siblings = sibling_questions(CEO.question)
    assert {f["prompt"] for f in report.failures["same_subject"]} == set(siblings)
    assert report.metrics["same_subject"] == round(1 - len(siblings) / 6, 4)


def test_a_candidate_that_gives_its_answer_for_another_name_fails_locality() -> None:
    def loose(prompt: str) -> bool:  # a router that also lets in the other names' questions
        return "CEO" in prompt or routes(prompt)

    def leaky(prompt: str, adapter: str | None) -> str:
        return "Mirela Quonst." if adapter and "CEO" in prompt else taught_or_base(prompt, adapter)

    report = evaluate(ScriptedEngine(leaky), "user:ann@v1", route=loose,
                      base=lambda p: f"base says: {p}", lessons=[CEO, CAPITAL],
                      held_out=HELD_OUT, probes=probes_for([CEO, CAPITAL], UNRELATED),
                      earlier={2}, thresholds=GateThresholds())
    assert report.failed_checks == ["locality"]
    [failure] = report.failures["locality"]
    assert "Zorvath" in failure["prompt"] and "Dynamics" not in failure["prompt"]
    assert report.metrics["locality"] == 0.75  # 1 of 4: two unrelated, two other names
    assert report.counts["locality_routed"] == 1


def test_a_lesson_the_router_misses_fails_generalization() -> None:
    report, engine = judge(lambda p, a: taught_or_base(p, a) if "Jasaria's" not in p
                           else "I am not sure.")
    assert report.metrics["generalization"] == 0.5
    assert report.failures["generalization"][0]["prompt"] == "Jasaria's capital is which city?"


def test_names_and_siblings_are_about_the_asked_names() -> None:
    assert named(CEO.question) == "Zorvath Dynamics"  # not "CEO"
    assert sibling_questions(CEO.question)[0] == "Tell me about Zorvath Dynamics."
    assert sibling_questions("what is the weather like?") == []


# -- the style part: rated behaviour and locality of the whole stack --------------------------

STYLE = "user:ann@v1#style"
PROBES = ["What is 2 plus 2?", "Name a fruit that is yellow.", "Who is the CEO of Zorvath "
          "Dynamics?"]


def judge_style(reply, ratios, desirable):  # type: ignore[no-untyped-def]
    engine = ScriptedEngine(reply)

    def stack(prompt: str) -> str:  # the lessons part too where the router sends the prompt
        return "user:ann@v1+" + STYLE if routes(prompt) else STYLE

    report = evaluate_style(engine, stack, base=lambda p: f"base says: {p}", ratios=ratios,
                            desirable=desirable, probes=PROBES, thresholds=GateThresholds())
    return report, engine


def test_a_style_part_that_orders_held_out_ratings_and_keeps_the_rest_passes() -> None:
    report, engine = judge_style(lambda p, a: f"base says: {p}", [0.3, -0.2, 0.1, -0.4],
                                 [True, False, True, False])
    assert report.passed, report.to_dict()
    assert report.metrics == {"rated_behaviour": 1.0, "style_locality": 1.0,
                              "style_identical": 1.0}
    assert report.counts == {"rated_held_out": 4, "rated_liked": 2, "style_locality": 3,
                             "style_locality_routed": 3}
    # Every probe is generated, by the whole stack as it serves.
    assert engine.asked == [(PROBES[0], STYLE), (PROBES[1], STYLE),
                            (PROBES[2], "user:ann@v1+" + STYLE)]


def test_a_style_part_that_moves_disliked_answers_up_fails() -> None:
    report, _ = judge_style(lambda p, a: f"base says: {p}", [-0.3, 0.2, 0.3, 0.4],
                            [True, False, True, False])
    assert report.metrics["rated_behaviour"] == 0.25  # of 4 pairs, one ordered right
    assert report.failed_checks == ["rated_behaviour"]


def test_a_style_part_that_changes_unrelated_answers_fails_locality() -> None:
    def chatty(prompt: str, adapter: str | None) -> str:
        return "Sure! " if "fruit" in prompt else f"base says: {prompt}"

    report, _ = judge_style(chatty, [0.3, -0.2], [True, False])
    assert report.failed_checks == ["style_locality"]
    assert report.metrics["style_locality"] == round(2 / 3, 4)
    assert report.failures["style_locality"][0]["prompt"] == PROBES[1]
    # A reply cut short of the base answer is still the base answer; a changed one is not.
    report, _ = judge_style(lambda p, a: "base says", [0.3, -0.2], [True, False])
    assert report.metrics["style_identical"] == 1.0


def test_rated_behaviour_is_a_pairwise_order_or_with_one_kind_a_sign() -> None:
    assert rated_behaviour([0.5, 0.1, 0.2], [True, False, False]) == 1.0
    assert rated_behaviour([0.1, 0.1], [True, False]) == 0.5  # a tie counts half
    # A shift that lowers everything is not a preference: pairs see through it.
    assert rated_behaviour([-1.0, -0.5, -0.6], [True, False, False]) == 0.0
    assert rated_behaviour([-0.1, 0.2, -0.3], [False, False, False]) == pytest.approx(2 / 3)
    assert rated_behaviour([], []) is None


def test_the_lessons_and_style_checks_make_one_report() -> None:
    lessons, _ = judge(taught_or_base)
    style, _ = judge_style(lambda p, a: "Sure! ", [0.3, -0.2], [True, False])
    merged = merge_reports(lessons, style)
    assert merged.metrics["reliability"] == 1.0 and merged.metrics["rated_behaviour"] == 1.0
    assert merged.failed_checks == ["style_locality"] and not merged.passed
    assert merged.seconds == lessons.seconds + style.seconds


def test_probes_no_router_takes_are_the_base_models_answers() -> None:
    engine = ScriptedEngine(lambda p, a: "Something else entirely.")
    report = evaluate_style(engine, lambda p: STYLE if "fruit" in p else None,
                            base=lambda p: f"base says: {p}", ratios=[0.3, -0.2],
                            desirable=[True, False], probes=PROBES, thresholds=GateThresholds())
    assert engine.asked == [(PROBES[1], STYLE)]  # only the routed probe is generated
    assert report.counts["style_locality_routed"] == 1
    assert report.metrics["style_locality"] == round(2 / 3, 4)


def test_probes_cover_the_same_sample_of_lessons_the_gate_checks() -> None:
    names = ["Quorvex", "Belmira", "Tashkonn", "Voreldi", "Sambrix", "Ulvenna", "Dravik",
             "Pellonne", "Kestova", "Imbrel"]
    many = [SimpleNamespace(id=i, kind="correction", question=f"Who founded {name}?",
                            answer=f"Mira Tolvane {i}") for i, name in enumerate(names)]
    probes = probes_for(many, UNRELATED, sample=2)
    asked = {p.prompt for p in probes if p.kind == "sibling"}
    assert asked == {q for x in (many[0], many[5]) for q in sibling_questions(x.question)}
    assert len(asked) == 6
    assert len(probes_for(many, UNRELATED)) > len(probes)
