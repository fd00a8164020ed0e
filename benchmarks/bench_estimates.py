"""Training-time estimates against measured training time, across class and sample counts.

    python benchmarks/bench_estimates.py [--quick]

The workflow sizes every training job's priority and its Slurm time limit from
:func:`pcann.study.resources.estimated_seconds`. For settings across 3 and 131 classes and 1,500 to 54,000
training samples, this trains a few epochs on synthetic 2-D features (the PCA features a job
trains on), with a validation set a quarter the size scored every epoch as the workflow does,
and prints the measured seconds per epoch, the estimate, and their ratio. The estimate must never
be below the measured time, and at most 3x above it. One BLAS thread, as every training job.
Measured is the training process's CPU time: on a shared, busy machine it tracks what the job
takes on a core of its own, where the wall time would measure the neighbours.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from pcann.study.grid import Setting  # noqa: E402
from pcann.study.resources import estimated_seconds  # noqa: E402
from pcann.nn.training import train_network  # noqa: E402
from support import cpu_name, synthetic_data  # noqa: E402

#: (hidden, batch size) of the study's nets and the extremes of its sweeps.
NETS = [((2,), 16), ((256,), 16), ((256,), 256), ((256, 512), 16), ((512, 1024), 64), ((256,), 4)]
CLASSES = (3, 131)
SAMPLES = (1500, 54000)


def measure(hidden, batch_size, n_classes, n_train, min_seconds: float) -> tuple[float, int]:
    """CPU seconds per epoch of a run of at least ``min_seconds``, and its epochs."""
    X_train, y_train, X_val, y_val = synthetic_data(n_train, n_train // 4, n_classes)
    epochs = 2
    while True:
        started = time.process_time()
        network = train_network(X_train, y_train, n_classes, X_val, y_val,
                                hidden=hidden, epochs=epochs, lr=0.01, batch_size=batch_size)
        seconds = time.process_time() - started
        if network.result.diverged:
            raise RuntimeError(f"diverged: {hidden} {batch_size} {n_classes} {n_train}")
        if seconds >= min_seconds or epochs >= 64:
            return seconds / epochs, epochs
        epochs *= 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smallest settings only (a smoke test)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="train at least this long per setting")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (the median is used)")
    args = parser.parse_args(argv)
    nets = NETS[:2] if args.quick else NETS
    samples = SAMPLES[:1] if args.quick else SAMPLES
    print(f"CPU: {cpu_name()}; numpy {np.__version__}; one BLAS thread")
    print(f"{'hidden':>12} {'batch':>5} {'classes':>7} {'samples':>7} {'epochs':>6} "
          f"{'measured s/epoch':>16} {'estimate s/epoch':>16} {'estimate/measured':>17}")
    ratios = []
    for hidden, batch_size in nets:
        for n_classes in CLASSES:
            for n_train in samples:
                runs = [measure(hidden, batch_size, n_classes, n_train, args.min_seconds)
                        for _ in range(args.repeats)]
                measured, epochs = float(np.median([r[0] for r in runs])), runs[0][1]
                setting = Setting("study", 2, hidden, 1, 0.01, batch_size, 1)
                # per epoch: the second of start-up is spread over a real run's many epochs
                estimate = estimated_seconds(setting, n_train, epochs=1, n_classes=n_classes,
                                             n_val=n_train // 4) - estimated_seconds(
                    setting, n_train, epochs=0, n_classes=n_classes, n_val=n_train // 4)
                ratios.append(estimate / measured)
                print(f"{str(list(hidden)):>12} {batch_size:>5} {n_classes:>7} {n_train:>7} {epochs:>6} "
                      f"{measured:>16.4f} {estimate:>16.4f} {estimate / measured:>17.2f}")
    print(f"estimate / measured: min {min(ratios):.2f}, median {float(np.median(ratios)):.2f}, "
          f"max {max(ratios):.2f} (target: never below 1, at most 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
