"""What the tests and the benchmarks share: a copy of the workflow to run, the features of a
dataset in one call (the workflow runs these steps as separate rules), and synthetic 2-D
features of any size and class count."""

from __future__ import annotations

import math
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

#: The repository (this file is tests/support.py).
REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from pcann.data.images import ImageSet  # noqa: E402
from pcann.preprocessing.features import Features, fit_and_project, split_indices, zscore_statistics  # noqa: E402

#: What a workflow copy needs; results/ and Snakemake's state are never copied.
WORKFLOW_ITEMS = ("Snakefile", "config.yaml", "rules", "scripts", "schemas", "envs", "profiles", "report")


def copy_workflow(dest: Path, config: dict | None = None) -> Path:
    """Copy the workflow's source files (not its results) into ``dest``, replacing older copies.

    With ``config``, it *replaces* config.yaml: a ``--configfile`` would be deep-merged into the
    shipped study (Snakemake merges nested keys), keeping sweeps the caller did not ask for.
    """
    import yaml

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in WORKFLOW_ITEMS:
        source, target = REPO / item, dest / item
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    if config is not None:
        (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def build_features(
    train: ImageSet,
    test: ImageSet,
    protocol: str = "study",
    n_components: int = 2,
    split: str = "study",
    val_fraction: float = 0.2,
    split_seed: int = 10,
) -> Features:
    """Split, z-score and project a dataset in one call, as the workflow's rules do in turn
    (with the exact solver)."""
    train_idx, val_idx = split_indices(train.y, val_fraction, split, split_seed)
    stats = zscore_statistics(train.X, test.X, train_idx, protocol, "exact")
    return fit_and_project(train, test, train_idx, val_idx, stats, protocol, n_components, 10, "exact")[0]


def synthetic_data(n_train: int, n_val: int, n_classes: int, seed: int = 0):
    """Samples-as-rows ``(X_train, y_train, X_val, y_val)``: 2-D Gaussian blobs of unit spread
    on a square grid of centres 4 apart (neighbours overlap a little), every class in equal
    shares, in random order; centred, so the features span about as far as the study's PCA(2)."""
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_classes))
    grid = 4.0 * np.stack(np.divmod(np.arange(n_classes), side), axis=1)
    centres = grid - grid.mean(axis=0)
    y = np.arange(n_train + n_val) % n_classes
    rng.shuffle(y)
    X = centres[y] + rng.standard_normal((len(y), 2))
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
