"""Confidence of the linear model on livedoor, in one run: train it through the product's own path
(``training.api.train``, into a temporary MODEL_DIR), then report what its calibration and sure bar are worth on the
fixed test split — the expected calibration error before and after temperature scaling, and the precision and
coverage at the bar chosen on the validation split for TARGET_PRECISION — with the precision-coverage table.

    python benchmarks/confidence.py [--data ../shared/data/ldcc-20140209.tar.gz] [--target-precision 0.99]

Prints a short table and one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ldcc-20140209.tar.gz"))
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "data"))
    parser.add_argument("--target-precision", type=float, default=0.99)
    args = parser.parse_args()

    from training.api import train, train_options

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="confidence-bench-") as tmp:
        outcome = train(
            train_options(
                data=args.data,
                model_type="linear",
                model_dir=Path(tmp) / "models",
                cache_dir=Path(args.cache_dir),
                target_precision=args.target_precision,
            )
        )
    report = outcome.metrics["confidence"]
    rule, ece = report["rule"], report["ece"]
    print(f"linear model on livedoor, {platform.machine()}, {time.monotonic() - started:.0f} s (training included)")
    print(f"test accuracy {outcome.metrics['accuracy']:.4f}, macro-F1 {outcome.metrics['macro_f1']:.4f}")
    print(f"temperature {report['temperature']:.3f}")
    print(f"ECE test: {ece['test']['before']:.4f} before, {ece['test']['after']:.4f} after (validation: "
          f"{ece['validation']['before']:.4f} → {ece['validation']['after']:.4f})")  # fmt: skip
    print(f"sure bar {rule['threshold']:.4f} ({rule['source']}, on {rule['score']}, target {rule['target_precision']}):"
          f" validation coverage {rule['validation']['coverage']:.1%} at precision "
          f"{rule['validation']['precision']:.2%}; test coverage {rule['test']['coverage']:.1%} at precision "
          f"{rule['test']['precision']:.2%}")  # fmt: skip
    print("bar      test coverage  test precision")
    for row in report["curve"]:
        print(f"{row['threshold']:.4f}   {row['coverage']:>12.1%}  {row['precision']:>14.2%}")
    print(json.dumps({"accuracy": outcome.metrics["accuracy"], **report}))


if __name__ == "__main__":
    main()
