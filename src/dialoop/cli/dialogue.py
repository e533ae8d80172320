"""``dialoop trace SESSION [TURN]`` (why a turn was answered so), ``dialoop eval dialogue``
and ``dialoop simulate`` (a policy against simulated users)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from dialoop.cli import command_parts, eval_group, settings_from
from dialoop.dialogue.domain import load_domain, load_scripts
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.session import Turn
from dialoop.engine import open_engine
from dialoop.engine.embedding import default_embedder
from dialoop.errors import NotFoundError
from dialoop.eval.dialogue import EvalReport, run_dialogues
from dialoop.eval.intents import FORMATS, IntentReport, evaluate_intents, load_intent_data
from dialoop.eval.multiwoz import PUBLISHED, MultiwozReport
from dialoop.evidence import DialogueTrace, Step, TurnTrace

__all__ = ["eval_dialogue", "format_trace", "pick_turn", "simulate", "trace"]

TARGETS = {"intent_accuracy": 0.9, "joint_goal_accuracy": 0.8, "task_success": 0.85}


# -- dialoop trace ----------------------------------------------------------------------------


@click.command()
@click.argument("session")
@click.argument("turn", type=int, required=False)
@click.option("--user", help="Whose session (default: the 'user' setting).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored trace as JSON.")
@click.pass_context
def trace(ctx: click.Context, session: str, turn: int | None, user: str | None,
          as_json: bool) -> None:
    """Show why a turn of SESSION was answered as it was (default: the last answer).

    TURN is a turn id, as `dialoop sessions show` lists them (a user turn's id shows the
    answer to it).
    """
    with command_parts(ctx, user=user) as parts:
        sessions = parts.sessions
        turns = sessions.turns(sessions.get(session, parts.settings.user))
    answer, asked = pick_turn(turns, turn)
    if as_json:
        click.echo(json.dumps(answer.trace or {}, ensure_ascii=False, indent=2))
    else:
        click.echo(format_trace(answer, asked))


def pick_turn(turns: Sequence[Turn], turn_id: int | None) -> tuple[Turn, Turn | None]:
    """The assistant turn ``turn_id`` names (or answers), and the user turn before it."""
    answers = [i for i, t in enumerate(turns) if t.role == "assistant"
               and (turn_id is None or t.id == turn_id
                    or (i > 0 and turns[i - 1].id == turn_id))]
    if not answers:
        what = f"turn {turn_id}" if turn_id is not None else "an answered turn"
        raise NotFoundError(f"This session has no {what}: `dialoop sessions show` lists them.")
    i = answers[-1]
    asked = turns[i - 1] if i > 0 and turns[i - 1].role == "user" else None
    return turns[i], asked


def format_trace(answer: Turn, asked: Turn | None = None) -> str:
    """A turn's trace for people: what was understood, decided, run and used."""
    trace = TurnTrace.from_dict(answer.trace)
    d = trace.dialogue
    lines = [f"Turn {answer.id} · {answer.status} · model {answer.model}"
             + (f" · adapter {answer.adapter}" if answer.adapter else "")]
    if asked is not None:
        lines.append(f"  message      {asked.content!r}")
    if d is not None:
        lines += _dialogue_lines(d)
    context = trace.context
    if context.get("prompt_tokens"):
        lines.append(f"  prompt       {context['prompt_tokens']} tokens, "
                     f"{context.get('dropped_messages', 0)} older messages left out")
    if d is None:
        lines += _evidence_lines(context.get("evidence") or [])
    for lesson in trace.lessons:
        how = "the answer itself" if trace.memory == "direct" else "in the prompt"
        lines.append(f"  lesson       #{lesson['id']} ({lesson['scope']}, similarity "
                     f"{lesson['score']:.2f}) applied {how}")
    if not answer.adapter:
        lines.append("  adapter      none (the base model)")
    lines += _tool_lines(trace.tools or {})
    lines.append(f"  answer       {answer.content[:300]!r}")
    return "\n".join(lines)


def _tool_lines(tools: dict[str, Any]) -> list[str]:
    """An agent turn's steps, and the calls a client was asked to run."""
    lines = []
    for s in tools.get("agent_steps", []):
        said = (f"→ {json.dumps(s.get('result'), ensure_ascii=False)[:120]}" if s["ok"]
                else f"✗ {s.get('error')}")
        lines.append(f"  tool call    step {s['step']}: {s['name']}("
                     f"{json.dumps(s['arguments'], ensure_ascii=False)}) {said} "
                     f"({s['seconds']:.2f} s)")
    for c in tools.get("calls", []):
        lines.append(f"  asks to run  {c['function']['name']}({c['function']['arguments']}) "
                     f"[{c['id']}]")
    return lines


def _dialogue_lines(d: DialogueTrace) -> list[str]:
    intent, understood = d.intent, d.understood
    said = f"{intent['intent']} p={intent['confidence']:.2f} ({intent['source']})"
    if understood["continued"]:
        heard = f"{understood['intent']} (carried on the current goal; the classifier said {said})"
    else:
        heard = said + (" · out of domain" if understood["out_of_domain"] else "") + (
            "" if understood["confident"] else " · not confident")
    lines = [f"  domain       {d.domain} · {d.policy} policy",
             f"  intent       {heard}"]
    if understood["affirmed"] or understood["denied"]:
        lines.append(f"  read-back    {'yes' if understood['affirmed'] else 'no'}")
    lines.append(f"  state before {_state(d.state_before)}")
    for u in understood["slot_updates"]:
        was = f" (was {u['replaces']})" if "replaces" in u else ""
        lines.append(f"  slot         {u['slot']} = {u['value']!r}{was}")
    for n, step in enumerate(d.steps, 1):
        lines += _step_lines(n, step)
    lines.append(f"  response     {d.response} (decided by: {d.decided_by})")
    if d.decided_by == "lesson":
        lines.append(f"               {d.why}")
    lines += _evidence_lines([e.to_dict() for e in d.evidence])
    lines.append(f"  state after  {_state(d.state_after)}")
    return lines


def _step_lines(n: int, step: Step) -> list[str]:
    lines = [f"  step {n}       {step.action}: {step.why}"]
    if step.tool is not None:
        call = step.tool
        outcome = (f"→ {json.dumps(call['result'], ensure_ascii=False)}" if call["ok"]
                   else f"→ failed: {call['error']}")
        lines.append(f"               {call['name']}"
                     f"({json.dumps(call['arguments'], ensure_ascii=False)}) {outcome}")
    if step.evidence is not None:
        lines.append(f"               found {len(step.evidence)} facts")
    return lines


def _evidence_lines(evidence: list[dict[str, Any]]) -> list[str]:
    return [f"  evidence {i:<3} [{e['kind']}] {e['text']}  ({e['source']}, {e['score']})"
            for i, e in enumerate(evidence, 1)]


def _state(state: dict[str, Any]) -> str:
    parts = [f"intent={state.get('intent')}", f"slots={state.get('slots') or {}}"]
    for key in ("requested", "confirming", "confirmed"):
        if state.get(key):
            parts.append(f"{key}={state[key]}")
    if state.get("handed_off"):
        parts.append("handed off")
    return ", ".join(parts)


# -- dialoop eval dialogue ---------------------------------------------------------------------


@eval_group.command("dialogue")
@click.option("--domain", "domain_path", required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path), help="The domain file.")
@click.option("--tests", "tests_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path), help="Scripted test dialogues.")
@click.option("--policy", type=click.Choice(["rule", "learned", "both"]), default="both",
              show_default=True, help="Which policy to evaluate.")
@click.option("--model", metavar="SPEC", help="The model to run (default: the configured one).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.pass_context
def eval_dialogue(ctx: click.Context, domain_path: Path, tests_path: Path, policy: str,
                  model: str | None, as_json: bool) -> None:
    """Run scripted dialogues through the real pipeline and score them.

    Reports intent accuracy, slot F1, joint goal accuracy, action accuracy and task
    success, and lists what went wrong in each failed dialogue.
    """
    settings = settings_from(ctx, model=model)
    domain = load_domain(domain_path)
    scripts = load_scripts(tests_path, domain)
    policies = ["rule", "learned"] if policy == "both" else [policy]
    engine = open_engine(settings)
    reports = []
    try:
        classifier = IntentClassifier(domain, default_embedder())  # shared by both policies
        for name in policies:
            with click.progressbar(length=len(scripts), label=f"{name} policy",
                                   file=sys.stderr) as bar:
                reports.append(run_dialogues(domain, scripts, engine=engine, policy=name,
                                             classifier=classifier,
                                             progress=lambda _r, bar=bar: bar.update(1)))
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
        return
    for report in reports:
        click.echo(format_report(report))


def format_report(report: EvalReport) -> str:
    r = report.to_dict()
    lines = [f"{report.policy} policy · {r['dialogues']} dialogues, {r['turns']} turns, "
             f"{r['seconds']} s"]
    for key, label in [("intent_accuracy", "intent accuracy"), ("slot_f1", "slot F1"),
                       ("joint_goal_accuracy", "joint goal accuracy"),
                       ("action_accuracy", "action accuracy"), ("task_success", "task success")]:
        target = TARGETS.get(key)
        mark = "" if target is None else (
            f"  (target {target:.2f}: {'met' if r[key] >= target else 'NOT met'})")
        lines.append(f"  {label:<20} {r[key]:.3f}{mark}")
    failed = [d for d in report.dialogues if d.failures]
    if failed:
        lines.append(f"  {len(failed)} dialogues with problems"
                     f" ({sum(not d.success for d in report.dialogues)} failed their goal):")
    for d in failed:
        lines.append(f"  - {d.name}{'' if d.success else ' [FAILED]'}")
        lines += [f"      {f}" for f in d.failures]
    return "\n".join(lines)


# -- dialoop eval intents ----------------------------------------------------------------------


@eval_group.command("intents")
@click.option("--data", "data_path", required=True, metavar="PATH",
              type=click.Path(path_type=Path),
              help="The test data: a CSV file, a folder with train.csv and test.csv "
                   "(banking77), or CLINC150's data_full.json (clinc).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option("--train", "train_path", metavar="FILE", type=click.Path(path_type=Path),
              help="The training CSV, when --data is the test CSV.")
@click.option("--shots", type=click.IntRange(min=1), metavar="K",
              help="Train on K random examples per intent (default: all).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --shots: repeat with this many samples and report the median.")
@click.option("--oos-label", metavar="LABEL",
              help="(csv, banking77) the label of out-of-scope messages, if the data has one.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def eval_intents(data_path: Path, fmt: str, train_path: Path | None, shots: int | None,
                 seeds: int, oos_label: str | None, as_json: bool) -> None:
    """Score the dialogue manager's intent classifier on a standard data set.

    Trains the classifier a domain's intents get (the bundled sentence encoder and a
    calibrated logistic regression) on the training examples and reports accuracy,
    macro-F1 and, where the data has out-of-scope messages, their precision and recall.
    """
    import statistics

    data = load_intent_data(data_path, fmt, train_path, oos_label)
    embedder = default_embedder()
    click.echo(f"{len(data.train)} training and {len(data.test)} test examples; training…",
               err=True)
    reports = [evaluate_intents(data, embedder, shots=shots, seed=seed, source=str(data_path),
                                fmt=fmt) for seed in range(seeds if shots else 1)]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
        return
    for report in reports:
        click.echo(format_intent_report(report))
    if len(reports) > 1:
        click.echo(f"median of {len(reports)} samples: accuracy "
                   f"{statistics.median(r.accuracy for r in reports):.3f}, macro-F1 "
                   f"{statistics.median(r.macro_f1 for r in reports):.3f}")


def format_intent_report(report: IntentReport) -> str:
    shots = f"{report.shots} shots per intent, seed {report.seed}" if report.shots else \
        "all training examples"
    lines = [f"{report.data} ({report.format}) · {report.intents} intents, {shots}: "
             f"{report.train_examples} train, {report.test_examples} test · "
             f"{report.seconds['train']:.0f} s training, {report.seconds['test']:.0f} s testing",
             f"  accuracy   {report.accuracy:.3f}", f"  macro-F1   {report.macro_f1:.3f}"]
    if report.out_of_scope is not None:
        lines.append(f"  out of scope: precision {report.out_of_scope['precision']:.3f}, "
                     f"recall {report.out_of_scope['recall']:.3f}")
    if report.confusions:
        lines.append("  most frequent confusions (gold → said, count): " + "; ".join(
            f"{g} → {s} ({n})" for g, s, n in report.confusions))
    return "\n".join(lines)


# -- dialoop eval multiwoz ---------------------------------------------------------------------


@eval_group.command("multiwoz")
@click.option("--data", "data_path", required=True, metavar="DIR",
              type=click.Path(path_type=Path),
              help="The MultiWOZ 2.1 folder (val.json.zip, ontology21.json, db/).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="Read only the first N dialogues.")
@click.option("--split", type=click.IntRange(min=0), metavar="K",
              help="Report on the dialogues after the first K (kept for training).")
@click.option("--gate", "gate", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="A gate written by `dialoop train tracker-gate` (trained on the first K "
                   "dialogues: use the same --split K).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_multiwoz(data_path: Path, limit: int | None, split: int | None, gate: Path | None,
                  as_json: bool) -> None:
    """Dialogue state tracking on MultiWOZ 2.1: joint goal accuracy and slot F1.

    Runs the value-matching tracker (dialogue/tracker.py) with the MultiWOZ schema, built
    from the ontology and the databases, over every user turn, five domains; with
    ``--gate``, a learned gate decides which of its proposals to keep.
    """
    from dialoop.eval.multiwoz import evaluate_tracker, load_dialogues, value_tracker

    dialogues = load_dialogues(data_path, limit)
    tracker = value_tracker(data_path, gate)
    trained = getattr(tracker.gate, "info", {}).get("dialogues")
    if trained and (split or 0) < trained:
        click.echo(f"warning: the gate was trained on the first {trained} dialogues; "
                   f"--split {split or 0} reports on some of them", err=True)
    held_out = len(dialogues) - (split or 0)
    with click.progressbar(length=max(held_out, 0), label="tracking", file=sys.stderr) as bar:
        report = evaluate_tracker(dialogues, tracker, source=str(data_path), split=split,
                                  progress=bar.update)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(format_multiwoz_report(report))


def format_multiwoz_report(report: MultiwozReport) -> str:
    held = f"dialogues {report.split + 1}–{report.split + report.dialogues}" if report.split \
        else f"{report.dialogues} dialogues"
    lines = [f"{report.data} · {held}, {report.turns} user turns · {report.seconds:.1f} s",
             f"  joint goal accuracy  {report.joint_goal_accuracy:.3f}  "
             f"(predicting nothing: {report.empty_state_jga:.3f})",
             f"  slot F1              {report.slot_f1:.3f}  (precision "
             f"{report.slot_precision:.3f}, recall {report.slot_recall:.3f})",
             "  published JGA on MultiWOZ 2.1: " + "; ".join(
                 f"{name} {jga:.2f}" for name, jga in PUBLISHED)]
    if report.worst_slots:
        lines.append("  slots most often wrong (turns): " + ", ".join(
            f"{slot} {n}" for slot, n in report.worst_slots))
    return "\n".join(lines)


# -- dialoop simulate ----------------------------------------------------------------------------


@click.command()
@click.option("--domain", "domain_path", required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path), help="The domain file.")
@click.option("--dialogues", "n", type=click.IntRange(1), default=1000, show_default=True,
              help="How many simulated dialogues.")
@click.option("--policy", default="rule", show_default=True, metavar="rule|learned|VERSION",
              help="The domain's rules, its learned (story) policy, or a stored policy "
                   "version: vN, N, or 'serving'.")
@click.option("--noise", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Probability of each kind of user noise: misheard intent, wrong value then "
                   "correction, goal change, impatience.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The same seed gives the same users.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def simulate(ctx: click.Context, domain_path: Path, n: int, policy: str, noise: float,
             seed: int, as_json: bool) -> None:
    """Run a dialogue policy against simulated users of a domain (no model needed).

    Prints task success, average turns, average reward (the domain's `reward:`
    section) and hand-off rate.
    """
    from dialoop.policy.registry import PolicyRegistry
    from dialoop.policy.simulation import Simulation
    from dialoop.policy.simulator import Noise

    domain = load_domain(domain_path)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        # A learned policy may ask for a read-back before the values are there: the
        # manager falls back to a generic one and logs the failed template, thousands of
        # times in a long run. -v shows them.
        logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)
    chosen: Any = policy
    if policy not in ("rule", "learned"):
        chosen = PolicyRegistry(settings_from(ctx).home).load(domain, policy)
    with Simulation(domain, noise=Noise.uniform(noise), seed=seed) as sim, \
            click.progressbar(length=n, label="simulating", file=sys.stderr) as bar:
        report = sim.run_many(n, chosen, progress=lambda _r: bar.update(1))
    r = report.to_dict()
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False, indent=2))
        return
    click.echo(f"{r['policy']} policy · {domain.name} · {n} simulated dialogues, noise {noise}, "
               f"seed {seed}, {r['seconds']} s")
    click.echo(f"  task success   {r['task_success']:.3f}")
    click.echo(f"  average turns  {r['average_turns']:.2f}")
    click.echo(f"  average reward {r['average_reward']:.2f}")
    click.echo(f"  hand-off rate  {r['hand_off_rate']:.3f}")
    click.echo("  ended          " + ", ".join(f"{k} {v}" for k, v in sorted(r["ended"].items())))
