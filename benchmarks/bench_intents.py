"""Intent classification on BANKING77 with the dialogue manager's own classifier (issue 15).

    python benchmarks/bench_intents.py                 # full training data, and 10 shots x 3 seeds
    python benchmarks/bench_intents.py --shots 5 --seeds 5

The same as ``dialoop eval intents --data ../shared/data/banking77/banking_data --format
banking77 [--shots 10 --seeds 3]``; this prints both settings in one table with the targets.
Data: ../shared/data/banking77 (PolyAI, CC BY 4.0), read in place, never copied.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANKING77 = ROOT.parent / "shared" / "data" / "banking77" / "banking_data"
TARGETS = {"full": 0.92, "few": 0.80}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=BANKING77,
                        help="folder with train.csv and test.csv")
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "test.csv").is_file():
        raise SystemExit(f"{args.data} has no test.csv: put ../shared beside the project")
    import torch

    from dialoop.engine.embedding import default_embedder
    from dialoop.eval.intents import evaluate_intents, load_intent_data

    torch.set_num_threads(2)
    data = load_intent_data(args.data, "banking77")
    embedder = default_embedder()
    start = time.perf_counter()
    full = evaluate_intents(data, embedder, source=str(args.data), fmt="banking77")
    few = [evaluate_intents(data, embedder, shots=args.shots, seed=s, source=str(args.data),
                            fmt="banking77") for s in range(args.seeds)]
    print(f"\nBANKING77 test set ({full.test_examples} messages, {full.intents} intents); "
          "the dialogue manager's classifier (all-MiniLM-L6-v2 + calibrated logistic regression)\n")
    print("| training data | accuracy | macro-F1 | target | train + test time |")
    print("|---|---|---|---|---|")
    print(f"| all {full.train_examples} examples | {full.accuracy:.3f} | {full.macro_f1:.3f} | "
          f"≥ {TARGETS['full']:.2f} | {sum(full.seconds.values()):.0f} s |")
    acc = statistics.median(r.accuracy for r in few)
    f1 = statistics.median(r.macro_f1 for r in few)
    secs = statistics.median(sum(r.seconds.values()) for r in few)
    print(f"| {args.shots} per intent (median of {args.seeds} samples: "
          f"{', '.join(f'{r.accuracy:.3f}' for r in few)}) | {acc:.3f} | {f1:.3f} | "
          f"≥ {TARGETS['few']:.2f} | {secs:.0f} s |")
    print("\nPublished for reference: fine-tuned BERT-style models ~0.93-0.94 (full data).")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
