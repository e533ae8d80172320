"""Dialogue policies side by side on store_support (issue 13), median of seeds.

    python benchmarks/bench_policy.py                      # the table and the recovery curve
    python benchmarks/bench_policy.py --seeds 1 --quick    # a reduced run (minutes)
    python benchmarks/bench_policy.py --plot recovery.png

1. The table: rule / supervised / RL / IRL / hierarchical, each trained with seed s
   and measured on the same simulated users (noise 0.2) and on the holdout dialogues:
   simulated task success, average turns, holdout task success (median over seeds).
2. Recovery: one rule is deleted from the rule policy (default: the look-up before
   product, shipping and opening-hours answers; the read-back before a return costs
   nothing, see LOOK_UP); the rules' success drops; RL (warm-started by cloning the
   *broken* rules, trained on the simulator's reward) is measured every --every
   dialogues against 90 % of the full rules' success. The curve is printed (and
   plotted with --plot).
3. Online learning (engineer L3): ``dialoop.policy.online.benchmark(args)`` if it
   exists; see :func:`online_section`.

Every number comes from this one run; nothing is copied from elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "examples" / "store_support" / "domain.yaml"
LOOK_UP = "product, shipping and opening-hours answers rest on the facts"
# Deleting "a return needs the customer's yes first" (the read-back) costs nothing: the
# manager's guard asks for the confirmation itself. Measured per rule (200 users, noise
# 0.2): only the hand-off, order-status, start-return and look-up rules matter, the
# look-up most (0.95 -> 0.60).


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--dialogues", type=int, default=1000, help="simulated test users")
    parser.add_argument("--rl-steps", type=int, default=6000)
    parser.add_argument("--methods", default="rule,supervised,rl,irl,hierarchical")
    parser.add_argument("--recovery-budget", type=int, default=3000,
                        help="most simulated dialogues RL may train on in the recovery run")
    parser.add_argument("--every", type=int, default=250, help="recovery curve resolution")
    parser.add_argument("--delete-rule", default=LOOK_UP, metavar="WHY",
                        help="the rule (its why) deleted in the recovery experiment")
    parser.add_argument("--smoothing", type=float, default=0.2,
                        help="label smoothing of the behaviour-cloned start")
    parser.add_argument("--ent-coef", type=float, default=0.01, help="PPO entropy bonus")
    parser.add_argument("--quick", action="store_true",
                        help="300 test users, 2000 RL steps, recovery budget 1500")
    parser.add_argument("--no-table", action="store_true")
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--no-online", action="store_true")
    parser.add_argument("--plot", type=Path, help="write the recovery curve as a PNG")
    args = parser.parse_args()
    if args.quick:
        args.dialogues, args.rl_steps, args.recovery_budget = 300, 2000, 1500
    logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    if not args.no_table:
        table(args)
    if not args.no_recovery:
        recovery(args)
    online_section(args)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


# -- 1. the table ------------------------------------------------------------------------------


def table(args: argparse.Namespace) -> None:
    from dialoop.cli.train import _test_scorer
    from dialoop.dialogue.domain import load_domain
    from dialoop.engine.embedding import default_embedder
    from dialoop.policy.learners import as_policy, simulate, train
    from dialoop.policy.mdp import MDP

    embedder = default_embedder()
    domain = load_domain(STORE)
    mdp = MDP.of(domain)
    holdout = _test_scorer(domain, [STORE.parent / "holdout.yaml"], embedder)
    rows: dict[str, list[dict[str, float]]] = {}
    for method in args.methods.split(","):
        for seed in range(args.seeds):
            t = time.perf_counter()
            if method == "rule":
                policy: Any = "rule"
            else:
                options: dict[str, Any] = {"seed": seed, "noise": args.noise,
                                           "embedder": embedder}
                if method == "rl":
                    options["steps"] = args.rl_steps
                try:
                    model, _ = train(method, domain, **options)
                except Exception as exc:  # a learner not there yet: say so, go on
                    print(f"  {method}: not measured ({exc})", file=sys.stderr)
                    break
                policy = model if hasattr(model, "decide") else as_policy(mdp, model, method)
            sim = simulate(domain, policy, dialogues=args.dialogues, noise=args.noise,
                           seed=1000 + seed, embedder=embedder)
            rows.setdefault(method, []).append({
                "success": sim.success_rate, "turns": sim.average_turns,
                "reward": sim.average_reward, "holdout": holdout(policy)})
            print(f"  {method} seed {seed}: {rows[method][-1]} "
                  f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    print(f"\nstore_support, {args.dialogues} simulated users at noise {args.noise}, "
          f"holdout dialogues; median of {args.seeds} seed(s)\n")
    print("| policy | simulated task success | avg turns | avg reward | holdout task success |")
    print("|---|---|---|---|---|")
    for method, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {method} | {med['success']:.3f} | {med['turns']:.2f} | {med['reward']:.2f} | "
              f"{med['holdout']:.3f} |")


# -- 2. recovery -----------------------------------------------------------------------------


def without_rule(domain: Any, why: str) -> Any:
    """The domain's rule policy with the rule whose ``why`` is ``why`` deleted."""
    from dialoop.dialogue.policy import RulePolicy

    policy = RulePolicy(domain)
    kept = [r for r in policy.rules if r.why != why]
    assert len(kept) == len(policy.rules) - 1, f"no rule {why!r} in {STORE}"
    policy.rules = kept
    return policy


def recovery(args: argparse.Namespace) -> None:
    """The users (their goals, what counts as success) are the full domain's: deleting a
    rule from the *policy* must not change what the customers want. (A domain file
    without the rule would also change the simulator's goals, which it derives from
    the rules, and so hide the loss.)"""
    from dialoop.dialogue.domain import load_domain
    from dialoop.engine.embedding import default_embedder
    from dialoop.policy.learners import simulate, train_rl

    embedder = default_embedder()
    domain = load_domain(STORE)
    broken = without_rule(domain, args.delete_rule)
    n = args.dialogues
    rule_full = simulate(domain, "rule", dialogues=n, noise=args.noise, seed=2000,
                         embedder=embedder).success_rate
    rule_broken = simulate(domain, broken, dialogues=n, noise=args.noise, seed=2000,
                           embedder=embedder).success_rate
    target = 0.9 * rule_full
    print(f"\nRecovery: rule {args.delete_rule!r} deleted. Rules: full {rule_full:.3f}, "
          f"without it {rule_broken:.3f}; target 90 % of full = {target:.3f}")
    curves = []
    for seed in range(args.seeds):
        _, report = train_rl(domain, seed=seed, dialogues=args.recovery_budget,
                             noise=args.noise, teacher=broken, smoothing=args.smoothing,
                             ent_coef=args.ent_coef, evaluate_every=args.every,
                             eval_dialogues=min(n, 300), embedder=embedder)
        curves.append(report["curve"])
        reached = next((p["dialogues"] for p in report["curve"] if p["success"] >= target),
                       None)
        print(f"  seed {seed}: RL warm-started from the broken rules reached the target after "
              f"{reached if reached is not None else 'more than ' + str(args.recovery_budget)}"
              f" simulated dialogues ({report['seconds']:.0f} s)", flush=True)
    print("\n  dialogues  RL success (median)")
    points = [(p["dialogues"], statistics.median(c[i]["success"] for c in curves))
              for i, p in enumerate(curves[0]) if all(len(c) > i for c in curves)]
    for d, s in points:
        print(f"  {d:>9}  {s:.3f} {'#' * int(s * 40)}")
    if args.plot:
        _plot(points, rule_full, rule_broken, target, args.plot)
        print(f"  plot: {args.plot}")


def _plot(points: list[tuple[int, float]], full: float, broken: float, target: float,
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="RL (PPO)")
    ax.axhline(full, color="green", ls="--", label="rules (full)")
    ax.axhline(broken, color="red", ls="--", label="rules without the read-back")
    ax.axhline(target, color="grey", ls=":", label="90 % of full rules")
    ax.set_xlabel("simulated training dialogues")
    ax.set_ylabel("simulated task success")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


# -- 3. online learning (engineer L3) ----------------------------------------------------------


def online_section(args: argparse.Namespace) -> None:
    """The online-learning experiment, when :mod:`dialoop.policy.online` offers it."""
    try:
        from dialoop.policy.online import benchmark
    except ImportError:
        print("\nOnline learning: dialoop.policy.online.benchmark not available yet.")
        return
    if args.no_online:
        return
    from dialoop.dialogue.domain import load_domain
    from dialoop.policy.simulator import Noise

    plot = args.plot.with_name(args.plot.stem + "-online.png") if args.plot else None
    result = benchmark(load_domain(STORE), noise=Noise.uniform(args.noise), plot=plot)
    print("\nOnline learning (dialoop.policy.online.benchmark):")
    print(json.dumps(_scalars(result), indent=1))


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without its curves (lists), for a readable summary."""
    return {k: _scalars(v) if isinstance(v, dict) else v for k, v in d.items()
            if not isinstance(v, list)}


if __name__ == "__main__":
    main()
