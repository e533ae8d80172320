"""Dialogue state tracking on MultiWOZ 2.1 with dialoop's value-matching tracker (issue 15).

    python benchmarks/bench_multiwoz.py             # held out: dialogues 701-999, and all
    python benchmarks/bench_multiwoz.py --split 500

The same as ``dialoop eval multiwoz --data ../shared/data/multiwoz21 --split 700``, with and
without a learned gate (``dialoop train tracker-gate --dialogues 700``); this prints the
held-out split and the whole set in one table next to published figures and the target.
The rules were tuned by reading errors on the first 700 dialogues only, and the gate is
trained on them.
Data: ../shared/data/multiwoz21 (MultiWOZ: MIT; ConvLab-2: Apache-2.0), read in place.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MULTIWOZ = ROOT.parent / "shared" / "data" / "multiwoz21"
TARGET = 0.50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=MULTIWOZ, help="the MultiWOZ 2.1 folder")
    parser.add_argument("--split", type=int, default=700,
                        help="report on the dialogues after the first SPLIT")
    args = parser.parse_args()
    if not (args.data / "val.json.zip").is_file():
        raise SystemExit(f"{args.data} has no val.json.zip: put ../shared beside the project")
    from dialoop.dialogue.tracker import ValueTracker
    from dialoop.eval.multiwoz import (
        PUBLISHED,
        evaluate_tracker,
        load_dialogues,
        multiwoz_schema,
        train_multiwoz_gate,
        value_tracker,
    )

    dialogues = load_dialogues(args.data)
    held = evaluate_tracker(dialogues, value_tracker(args.data), split=args.split)
    whole = evaluate_tracker(dialogues, value_tracker(args.data))
    gate = train_multiwoz_gate(args.data, dialogues[:args.split])
    gated = evaluate_tracker(dialogues, ValueTracker(multiwoz_schema(args.data), gate),
                             split=args.split)
    print(f"\nMultiWOZ 2.1 validation set ({len(dialogues)} dialogues), five domains; "
          "dialoop's value-matching tracker, alone and with its learned gate\n")
    print("| dialogues | user turns | JGA | slot F1 (P / R) | predicting nothing | target | time |")
    print("|---|---|---|---|---|---|---|")
    held_name = f"held out: {args.split + 1}–{len(dialogues)}"
    for name, r in ((held_name, held), ("all", whole),
                    (f"{held_name}, rules + learned gate", gated)):
        print(f"| {name} | {r.turns} | {r.joint_goal_accuracy:.3f} | {r.slot_f1:.3f} "
              f"({r.slot_precision:.3f} / {r.slot_recall:.3f}) | {r.empty_state_jga:.3f} | "
              f"≥ {TARGET:.2f} | {r.seconds:.0f} s |")
    print("\nPublished JGA on MultiWOZ 2.1 (test set): " + "; ".join(
        f"{name} {jga:.2f}" for name, jga in PUBLISHED))
    print("Slots most often wrong on the held-out turns: " + ", ".join(
        f"{slot} ({n})" for slot, n in held.worst_slots))
    print(f"Learned gate: trained on dialogues 1–{args.split} ({gate.info['proposals']} "
          f"proposals) in {gate.info['seconds']:.1f} s")
    print(f"\nReproduce: dialoop eval multiwoz --data {args.data} --split {args.split}")
    print(f"           dialoop train tracker-gate --data {args.data} --dialogues {args.split} "
          f"-o gate.joblib && dialoop eval multiwoz --data {args.data} --split {args.split} "
          "--gate gate.joblib")


if __name__ == "__main__":
    main()
