"""What each job of the workflow needs, from the size of the data: memory and time.

The rules ask Slurm (or the local scheduler) for these, and the preprocessing jobs check, before
they load anything, that what they were given covers what they need: a job that would not fit
stops with a message that names the data's size and the resource to raise, rather than being
killed by the system with an empty log. Every figure is an estimate with a margin; the
benchmarks (``benchmarks/bench_scale.py``, ``benchmarks/bench_estimates.py``) print each one
beside what was measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pcann import PcannError
from pcann.preprocessing.streaming import block_size, memory_bytes, passes_estimate

MB = 2**20
#: An interpreter with numpy, OpenCV, scikit-learn and pandas imported.
BASE_MB = 300
#: Memory is asked for with this margin over the estimate.
MARGIN = 1.25
#: Below this size the float64 copy of the rows PCA is fitted on is made in memory and PCA is
#: scikit-learn's exact ARPACK solver; above it, statistics and components are streamed.
EXACT_PCA_MAX_BYTES = 512 * MB
#: Conservative single-core rates: decoding a PNG, per sample; a pass of the PCA's products, per
#: sample and vector of its block (measured: 0.08e-9 in float32, twice that in float64).
DECODE_SECONDS_PER_SAMPLE = 80e-9
PASS_SECONDS_PER_SAMPLE = 0.25e-9
#: The shortest time limit any job gets, in minutes.
MIN_RUNTIME_MINUTES = 10


@dataclass(frozen=True)
class DataSize:
    """The size of a dataset as planning sees it (one stat per file, one decoded image)."""

    n_train_folder: int
    n_test: int
    n_features: int
    n_classes: int
    itemsize: int = 1  # bytes per image sample: 1 for 8-bit images

    @property
    def n_images(self) -> int:
        return self.n_train_folder + self.n_test

    @property
    def image_bytes(self) -> int:
        return self.n_images * self.n_features * self.itemsize

    def describe(self) -> str:
        return (
            f"{self.n_images:,} images ({self.n_train_folder:,} training, {self.n_test:,} test) "
            f"of {self.n_features:,} samples, {self.image_bytes / 2**30:.2f} GiB as decoded"
        )


def pca_solver(requested: str, size: DataSize) -> str:
    """``exact`` or ``streaming``: ``auto`` streams once a float64 copy of the training folder
    would exceed :data:`EXACT_PCA_MAX_BYTES`."""
    if requested != "auto":
        return requested
    return "exact" if size.n_train_folder * size.n_features * 8 <= EXACT_PCA_MAX_BYTES else "streaming"


def _mb(n_bytes: float) -> int:
    return int(math.ceil((BASE_MB * MB + n_bytes) * MARGIN / MB))


def _minutes(seconds: float) -> int:
    return max(MIN_RUNTIME_MINUTES, int(math.ceil(3 * seconds / 60)))


def load_images_mem_mb(size: DataSize) -> int:
    """The decoded images, held once, and the PNG bytes in flight."""
    return _mb(size.image_bytes)


def load_images_runtime(size: DataSize, threads: int = 1) -> int:
    return _minutes(size.n_images * size.n_features * DECODE_SECONDS_PER_SAMPLE / max(1, threads))


def preprocessing_mem_mb(size: DataSize, solver: str, k: int = 10) -> int:
    """z-scoring or PCA: the images, and either one float64 chunk at a time (streaming) or the
    z-scored float64 copies the exact solver works on (training folder and test set, and
    scikit-learn's centred copy of the rows it fits)."""
    if solver == "streaming":
        return _mb(memory_bytes(size.n_images, size.n_features, size.itemsize, k))
    return _mb(size.image_bytes + 8 * size.n_features * (3 * size.n_train_folder + size.n_test))


def preprocessing_runtime(size: DataSize, solver: str, k: int = 10) -> int:
    passes = passes_estimate(k) if solver == "streaming" else 4
    block = min(block_size(k), size.n_features)
    return _minutes(passes * size.n_images * size.n_features * block * PASS_SECONDS_PER_SAMPLE)


def check_memory(needed_mb: int, given_mb, size: DataSize, rule: str) -> None:
    """Stop before loading anything when the memory a job was given cannot hold what it needs."""
    if given_mb is None:
        return
    if int(given_mb) < needed_mb:
        raise PcannError(
            f"this {rule} job needs about {needed_mb} MB for {size.describe()}, but was given "
            f"mem_mb={int(given_mb)}; raise it, e.g. snakemake ... --set-resources {rule}:mem_mb={needed_mb}"
        )


def training_mem_mb(hidden, n_components: int, n_train_folder: int, n_classes: int) -> int:
    """A training job: the trainer's float32 buffers (the epoch's shuffled rows three times, and
    the activations of every layer over the training folder, scored each evaluation) and a
    start-up of numpy and OpenCV only."""
    from pcann.nn.sgd import ONE_HOT_CLASSES

    widths = [*hidden, n_classes]
    # beyond ONE_HOT_CLASSES the epoch's rows carry class indices, not one-hot labels
    label_rows = n_classes if n_classes <= ONE_HOT_CLASSES else 1
    rows = 3 * n_train_folder * (n_components + 1 + label_rows)
    scored = n_train_folder * (n_components + 1 + sum(w + 1 for w in widths) + 2)
    return int(math.ceil((150 * MB + 4 * (rows + scored)) * MARGIN / MB))


# --- training jobs ---------------------------------------------------------------------------
#: A training job's time limit: this many times its estimate, and never under the minimum.
TRAINING_LIMIT_FACTOR = 3
TRAINING_MIN_RUNTIME_MINUTES = 5
#: Memory below which no training job is sized (numpy, OpenCV and the script's own start-up).
TRAINING_MIN_MB = 500


def training_runtime(estimate_seconds: float) -> int:
    """Scheduler time limit of one training job in minutes, from its estimated seconds."""
    return max(TRAINING_MIN_RUNTIME_MINUTES, math.ceil(TRAINING_LIMIT_FACTOR * estimate_seconds / 60))


def training_job_mem_mb(hidden, n_components: int, n_train_folder: int, n_classes: int) -> int:
    """Memory of one training job: :func:`training_mem_mb`, at least :data:`TRAINING_MIN_MB`."""
    return max(TRAINING_MIN_MB, training_mem_mb(hidden, n_components, n_train_folder, n_classes))


#: Cost model of one training job on one core, fitted to the CPU time of 24 settings (3 and 131
#: classes, 1,500 and 54,000 samples, batches of 4 to 256, the study's nets) on the Intel Xeon VM
#: and raised so that the best-fitted setting is estimated about 1.35x its time, then lowered by
#: 0.85 when the idle VM ran them faster (benchmarks/bench_estimates.py: never below, at most 3x
#: above; benchmarks/README.md has the history). Seconds per numpy call of an
#: SGD step (about six per layer), per sample and unit for elementwise work (sigmoids, softmax,
#: shuffling), and the rates of the matrix products: training products run faster with larger
#: batches, evaluation ones over the whole set at once.
STEP_CALL_SECONDS = 1.6e-6
ELEMENT_SECONDS = 1.07e-9
TRAIN_FLOPS_PER_BATCH_SAMPLE = 4.6e9
TRAIN_FLOPS_MAX = 153e9
EVAL_FLOPS = 27.4e9
SETUP_SECONDS = 1.0


def estimated_seconds(
    setting: "Setting", n_train: int, epochs: int | None = None, n_classes: int = 3, n_val: int | None = None
) -> float:
    """Single-core time of ``epochs`` epochs of a setting (default: all of them) on ``n_train``
    training samples of ``n_classes`` classes, with ``n_val`` validation samples (default a
    quarter of ``n_train``) scored every epoch, and a second of start-up.

    Per SGD step a fixed cost of numpy calls per layer; per sample the multiply-adds of the
    forward and backward passes (6 per weight) and the elementwise work of every unit; per
    scored sample a forward pass (2 per weight) and its elementwise work.
    """
    from pcann.nn.sgd import ONE_HOT_CLASSES

    epochs = setting.epochs if epochs is None else epochs
    n_val = n_train // 4 if n_val is None else n_val
    sizes = (setting.n_components, *setting.hidden, n_classes)
    weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    # up to ONE_HOT_CLASSES the one-hot labels travel with each sample too (pcann.nn.sgd)
    units = sum(sizes[1:]) + (n_classes if n_classes <= ONE_HOT_CLASSES else 0)
    steps = -(-n_train // setting.batch_size)
    train_rate = min(TRAIN_FLOPS_MAX, TRAIN_FLOPS_PER_BATCH_SAMPLE * setting.batch_size)
    per_epoch = (
        steps * STEP_CALL_SECONDS * 6 * (len(sizes) - 1)
        + n_train * (6 * weights / train_rate + 4 * units * ELEMENT_SECONDS)
        + (n_train + n_val) * (2 * weights / EVAL_FLOPS + 2 * units * ELEMENT_SECONDS)
    )
    return SETUP_SECONDS + epochs * per_epoch


def schedule_estimates(
    settings, continued: dict, n_train: int, n_classes: int = 3, n_val: int | None = None
) -> dict:
    """``setting -> (own, path)`` estimated seconds: ``own`` is the job's training (the epochs
    after the run it continues), ``path`` that plus the longest chain of runs that continue it.

    ``path`` is the job's priority: starting the longest chains of work first keeps every core
    busy to the end (critical-path scheduling), and the head of a chain of continued runs waits
    for nothing while the whole chain waits for it.
    """
    own = {}
    for setting in settings:
        start = continued[setting].epochs if setting in continued else 0
        own[setting] = estimated_seconds(setting, n_train, setting.epochs - start, n_classes, n_val)
    path = dict(own)
    # a run's continuations have more epochs: settle the longest first
    for setting in sorted(own, key=lambda s: s.epochs, reverse=True):
        if setting in continued:
            shorter = continued[setting]
            path[shorter] = max(path[shorter], own[shorter] + path[setting])
    return {setting: (own[setting], path[setting]) for setting in own}
