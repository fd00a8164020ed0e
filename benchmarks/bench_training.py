"""Training speed of pcann's network trainer against the straightforward reference and PyTorch.

Trains the study's networks on the study's data (PCA(2) features of the fruit images, 1176
training and 294 validation samples, 3 classes; loss and accuracy of both sets after every
epoch), and on synthetic data of any size given with ``--synthetic`` (2 features, as the
study's PCA(2): Gaussian blobs, one per class, from a fixed seed; e.g. ``54000:131``, the size of
the full Fruits-360 study), with

1. ``pcann.nn.estimator.MLPClassifier`` (float32, the fast trainer of ``pcann.nn.sgd``), with OpenCV's
   ``exp`` (the default) and with numpy's (``exp_backend="numpy"``),
2. ``reference_study_nn.py`` beside this file: the same recipe written the straightforward way,
3. PyTorch on the CPU (autograd and ``torch.optim.SGD``), when ``torch`` is importable,

all in this process with one BLAS thread each, and prints seconds per 1000 epochs (per epoch on
synthetic data), the speed-up of pcann over each, and pcann's achieved GFLOP/s against the
single-core float32 matmul peak. Every epoch does the same work, so runs shorter than 1000 epochs
(``--epochs``; ``--synthetic-epochs`` on synthetic data) are scaled linearly.

The work is done in ``--repeats`` rounds: each round measures the matmul peak, then trains with
every trainer once on every dataset. A shared virtual machine's speed drifts by tens of percent
within minutes, so every ratio is taken within a round (both sides saw the same moment of the
machine) and the median over the rounds is reported, with its range; seconds are the fastest
round's. With more than one dataset, a last table sets the speed-ups over the reference side by
side (issue 14: at 131 classes at least the speed-up at the study's 3).

    python benchmarks/bench_training.py --data-dir /path/to/fruits          # everything
    python benchmarks/bench_training.py --epochs 100 --settings 256,256-512  # a quick look
    python benchmarks/bench_training.py --settings 256,256-512 --epochs 100 --synthetic 54000:131 \
        --synthetic-epochs 3 --repeats 5 --no-numpy-exp                     # 3 vs 131 classes

The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from pcann.data.images import load_dataset  # noqa: E402
from support import build_features, synthetic_data  # noqa: E402
from pcann.nn.estimator import MLPClassifier  # noqa: E402
from pcann.nn.network import init_parameters, layer_sizes  # noqa: E402
import reference_study_nn  # noqa: E402

# name: (hidden sizes, learning rate); batch size 16 throughout, as in the study
SETTINGS = {
    "2": ((2,), 0.005),
    "256": ((256,), 0.005),
    "256-512": ((256, 512), 0.01),
    "512-1024": ((512, 1024), 0.01),
}
BATCH_SIZE = 16
SEED = 1


def load_features(data_dir: Path):
    train, test = load_dataset(data_dir)
    return build_features(
        train, test, protocol="study", n_components=2, split="study", split_seed=10
    )


@dataclass
class Dataset:
    """Training and validation samples as rows, class indices, and how long to train on them."""

    label: str  # "" for the study's data: its lines and table keep their historic form
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    epochs: int
    per: int  # seconds are reported per this many epochs

    def describe(self) -> str:
        name = f"synthetic {self.label}" if self.label else "study"
        return (
            f"data ({name}): {len(self.y_train)} train / {len(self.y_val)} val samples, "
            f"{self.X_train.shape[1]} features, {self.n_classes} classes"
        )


def parse_synthetic(spec: str) -> tuple[int, int, int]:
    """``TRAIN:CLASSES`` (validation: a quarter of TRAIN) or ``TRAIN:VAL:CLASSES``."""
    parts = spec.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 2:
        numbers.insert(1, numbers[0] // 4)
    if len(numbers) != 3 or numbers[0] < 1 or numbers[1] < 0 or numbers[2] < 2:
        raise argparse.ArgumentTypeError(
            f"expected TRAIN:CLASSES or TRAIN:VAL:CLASSES (at least 2 classes); got {spec!r}"
        )
    return tuple(numbers)


def matmul_flops_per_epoch(sizes, n_train: int, n_eval: int) -> int:
    """Multiply-add flops of one epoch: forward, backward and update products of every training
    sample, plus one forward pass over training and validation samples. The backward product of
    the first layer (the gradient w.r.t. the input) is never computed and not counted."""
    per_sample = [2 * n_out * (n_in + 1) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    training = 3 * sum(per_sample) - per_sample[0]
    return n_train * training + n_eval * sum(per_sample)


def measure_matmul_peak(repeats: int = 3) -> float:
    """Best single-core float32 GFLOP/s over large square products, numpy's dot and scipy's gemm."""
    from scipy.linalg import blas

    best = 0.0
    rng = np.random.default_rng(0)
    for n in (1024, 2048, 3072):
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out_c = np.empty((n, n), np.float32)
        out_f = np.empty((n, n), np.float32, order="F")
        for compute in (
            lambda: np.dot(a, b, out=out_c),
            lambda: blas.sgemm(1.0, a.T, b.T, 0.0, out_f, 1, 1, 1),  # .T: Fortran views, no copies
        ):
            compute()
            for _ in range(repeats):
                start = time.perf_counter()
                compute()
                best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def run_pcann(f, hidden, lr, epochs, exp_backend="opencv"):
    model = MLPClassifier(
        hidden=hidden, epochs=epochs, lr=lr, batch_size=BATCH_SIZE, seed=SEED, exp_backend=exp_backend
    )
    start = time.perf_counter()
    model.fit(f.X_train, f.y_train, f.X_val, f.y_val)
    return time.perf_counter() - start, model.history_["val_accuracy"][-1]


def run_reference(f, hidden, lr, epochs):
    start = time.perf_counter()
    _, history = reference_study_nn.train(
        f.X_train, f.y_train, f.X_val, f.y_val, hidden, epochs, lr, BATCH_SIZE, seed=SEED
    )
    return time.perf_counter() - start, history["val_accuracy"][-1]


def run_torch(f, hidden, lr, epochs):
    """Idiomatic PyTorch: nn.Sequential, CrossEntropyLoss, autograd, optim.SGD; same start."""
    import torch

    rng = np.random.RandomState(SEED)
    n_classes = int(max(f.y_train.max(), f.y_val.max())) + 1
    weights, _ = init_parameters(layer_sizes(f.X_train.shape[1], hidden, n_classes), rng)
    layers = []
    for l, W in enumerate(weights):
        linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.astype(np.float32)))
            linear.bias.zero_()
        layers.append(linear)
        if l < len(weights) - 1:
            layers.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.from_numpy(f.X_train.astype(np.float32))
    y = torch.from_numpy(f.y_train.astype(np.int64))
    X_eval = torch.cat([X, torch.from_numpy(f.X_val.astype(np.float32))])
    y_eval = torch.cat([y, torch.from_numpy(f.y_val.astype(np.int64))])
    m = len(y)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(m))
        for first in range(0, m, BATCH_SIZE):
            batch = order[first : first + BATCH_SIZE]
            optimiser.zero_grad()
            loss_fn(model(X[batch]), y[batch]).backward()
            optimiser.step()
        with torch.no_grad():
            logits = model(X_eval)
            history = [
                loss_fn(logits[:m], y_eval[:m]).item(),
                (logits[:m].argmax(1) == y_eval[:m]).float().mean().item(),
                loss_fn(logits[m:], y_eval[m:]).item(),
                (logits[m:].argmax(1) == y_eval[m:]).float().mean().item(),
            ]
    return time.perf_counter() - start, history[3]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("PCANN_FRUITS_DIR"),
        help="fruits folder with Data_train/ and Data_test/ (default: $PCANN_FRUITS_DIR; '': none)",
    )
    parser.add_argument(
        "--epochs", type=int, default=1000, help="epochs per run on the study's data (default 1000)"
    )
    parser.add_argument(
        "--synthetic", action="append", default=[], type=parse_synthetic, metavar="TRAIN[:VAL]:CLASSES",
        help="also train on synthetic 2-D blobs of this size, e.g. 54000:131 (validation: a "
        "quarter of TRAIN unless given); repeatable",
    )
    parser.add_argument(
        "--synthetic-epochs", type=int, default=3,
        help="epochs per run on synthetic data (default 3); seconds are reported per epoch",
    )
    parser.add_argument(
        "--settings",
        default="2,256,256-512,512-1024",
        help=f"comma-separated hidden sizes among {', '.join(SETTINGS)}",
    )
    parser.add_argument(
        "--repeats", type=int, default=1,
        help="rounds (the peak, then each trainer once on every dataset); ratios: median over the rounds",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the straightforward reference"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument(
        "--no-numpy-exp", action="store_true",
        help="skip pcann with training.exp_backend: numpy (numpy's exp instead of OpenCV's)",
    )
    args = parser.parse_args(argv)
    if not args.data_dir and not args.synthetic:
        parser.error("give --data-dir or set PCANN_FRUITS_DIR, or give --synthetic")
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose among {', '.join(SETTINGS)}")

    trainers = {"pcann": run_pcann}
    if not args.no_numpy_exp:
        trainers["pcann-numpy"] = partial(run_pcann, exp_backend="numpy")
    if not args.no_reference:
        trainers["reference"] = run_reference
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(1)
            trainers["torch"] = run_torch
        except ImportError:
            print("torch is not installed: skipping PyTorch")

    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(1)  # after every import, so every BLAS library loaded so far is limited
    blas = {(i["internal_api"], i.get("architecture")) for i in threadpool_info()}
    print(f"numpy {np.__version__}; BLAS {sorted(blas)}; one thread each", flush=True)

    datasets = []
    if args.data_dir:
        f = load_features(Path(args.data_dir))
        study = Dataset("", f.X_train, f.y_train, f.X_val, f.y_val, len(f.classes), args.epochs, 1000)
        datasets.append(study)
        print(
            f"data: {len(f.y_train)} train / {len(f.y_val)} val samples, {f.X_train.shape[1]} features"
        )
    else:
        print("no --data-dir: synthetic data only")
    for n_train, n_val, n_classes in args.synthetic:
        label = f"{n_train}:{n_val}:{n_classes}"
        data = synthetic_data(n_train, n_val, n_classes)
        datasets.append(Dataset(label, *data, n_classes, args.synthetic_epochs, 1))
        print(datasets[-1].describe())
    tables = {id(d): [] for d in datasets}
    for name in names:
        hidden, lr = SETTINGS[name]
        rounds = {id(d): [] for d in datasets}  # per round: the peak, then every trainer's seconds
        for number in range(1, args.repeats + 1):
            # the machine's speed drifts: each round measures its own peak, just before training
            peak = measure_matmul_peak(repeats=2)
            print(f"  round {number}: matmul peak {peak:.1f} GFLOP/s", flush=True)
            for d in datasets:
                measured = {"peak": peak}
                for trainer, run in trainers.items():
                    elapsed, val_accuracy = run(d, hidden, lr, d.epochs)
                    measured[trainer] = elapsed * d.per / d.epochs
                    on = f" on {d.label}" if d.label else ""
                    print(
                        f"  {list(hidden)} {trainer}{on}: {elapsed:.2f} s for {d.epochs} epochs, "
                        f"val accuracy {val_accuracy:.4f}",
                        flush=True,
                    )
                rounds[id(d)].append(measured)
        for d in datasets:
            tables[id(d)].append(summarise(d, hidden, trainers, rounds[id(d)]))

    for d in datasets:
        print_table(d, tables[id(d)], args.repeats)
    if len(datasets) > 1 and "reference" in trainers:
        print("\nspeed-up of pcann over the reference by dataset: median over the rounds (range)")
        heads = [f"{d.label or 'study'}, {d.n_classes} classes" for d in datasets]
        print(f"\n| net, batch {BATCH_SIZE} | " + " | ".join(heads) + " |")
        print("|---|" + "---|" * len(datasets))
        for row, (hidden, *_) in enumerate(tables[id(datasets[0])]):
            cells = [_spread(tables[id(d)][row][3]["reference"], "x") for d in datasets]
            print(f"| {list(hidden)} | " + " | ".join(cells) + " |")


def summarise(d: Dataset, hidden, trainers, rounds):
    """One table row from a dataset's rounds; prints the row's one-line summary."""
    sizes = layer_sizes(d.X_train.shape[1], hidden, d.n_classes)
    n_train, n_eval = len(d.y_train), len(d.y_train) + len(d.y_val)
    flops = matmul_flops_per_epoch(sizes, n_train, n_eval) * d.per
    best = {t: min(r[t] for r in rounds) for t in trainers}
    # same-round ratios: both sides of every ratio saw the same moment of the machine
    ratios = {t: [r[t] / r["pcann"] for r in rounds] for t in trainers if t != "pcann"}
    of_peak = [flops / r["pcann"] / 1e9 / r["peak"] for r in rounds]
    summary = "; ".join(f"vs {t}: {_spread(v, 'x')}" for t, v in ratios.items())
    on = f", {d.label}" if d.label else ""
    unit = "1000 epochs" if d.per == 1000 else "epoch"
    print(
        f"{list(hidden)} b{BATCH_SIZE}{on}: pcann {best['pcann']:.2f} s / {unit}; {summary}; "
        f"% of the round's peak: {_spread([100 * v for v in of_peak], '%')}",
        flush=True,
    )
    return hidden, best, flops / best["pcann"] / 1e9, ratios, of_peak


def print_table(d: Dataset, rows, repeats: int) -> None:
    if d.label:
        print(f"\n{d.describe()}; seconds per epoch ({d.epochs} run, best of {repeats})")
    print(
        f"\n| net, batch {BATCH_SIZE} | pcann s | reference s | speed-up | PyTorch s | speed-up "
        f"| pcann GFLOP/s | % of peak | pcann, numpy exp s | its speed-up vs reference |"
        f"\n|---|---|---|---|---|---|---|---|---|---|"
    )
    digits = 1 if d.per == 1000 else 3  # per 1000 epochs of the study / per epoch of 54,000 samples
    for hidden, best, gflops, ratios, of_peak in rows:
        cells = [f"{best['pcann']:.{digits + 1}f}"]
        for other in ("reference", "torch"):
            if other in best:
                cells += [f"{best[other]:.{digits}f}", f"{np.median(ratios[other]):.1f}x"]
            else:
                cells += ["-", "-"]
        cells += [f"{gflops:.1f}", f"{100 * np.median(of_peak):.0f}%"]
        if "pcann-numpy" in best:
            cells.append(f"{best['pcann-numpy']:.{digits + 1}f}")
            reference = best.get("reference")
            cells.append(f"{reference / best['pcann-numpy']:.1f}x" if reference else "-")
        else:
            cells += ["-", "-"]
        print(f"| {list(hidden)} | " + " | ".join(cells) + " |")
    unit = "1000 epochs" if d.per == 1000 else "epoch"
    print(
        f"\nseconds per {unit} ({d.epochs} run, best of {repeats}); speed-ups and % of "
        "peak: median over the rounds of the same-round ratios (each round measures its own "
        "single-core float32 matmul peak)"
    )


def _spread(values, unit: str) -> str:
    """``median (min-max)`` of a list of ratios."""
    low, mid, high = min(values), float(np.median(values)), max(values)
    fmt = ".0f" if unit == "%" else ".2f"
    return f"{mid:{fmt}}{unit} ({low:{fmt}}-{high:{fmt}})" if len(values) > 1 else f"{mid:{fmt}}{unit}"


if __name__ == "__main__":
    main()
