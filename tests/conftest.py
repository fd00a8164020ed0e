"""Shared fixtures: the library on sys.path, image-folder builders, a workflow runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from support import copy_workflow  # noqa: E402, F401 - for the tests

#: The tiny study of .test/config.yaml: demo data, small networks, short training.
TEST_CONFIG_PATH = REPO / ".test" / "config.yaml"


@pytest.fixture(scope="session")
def fruits_dir() -> Path:
    """The real dataset, from $PCANN_FRUITS_DIR; tests needing it skip only when it is unset."""
    value = os.environ.get("PCANN_FRUITS_DIR")
    if not value:
        pytest.skip("PCANN_FRUITS_DIR is not set (point it at the fruits folder to run this test)")
    path = Path(value)
    assert path.is_dir(), f"PCANN_FRUITS_DIR={value} is set but is not a folder"
    return path


def write_image(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def make_dataset(
    root: Path,
    classes=("apple", "banana", "cherry"),
    n_train: int = 6,
    n_test: int = 3,
    shape=(8, 8, 4),
    seed: int = 0,
) -> Path:
    """A small random image-folder dataset: ``root/Data_{train,test}/<class>/<i>.png``."""
    rng = np.random.default_rng(seed)
    for split, count in (("Data_train", n_train), ("Data_test", n_test)):
        for index, name in enumerate(classes):
            for i in range(count):
                image = rng.integers(0, 256, size=shape, dtype=np.uint8)
                image[..., 0] = np.clip(image[..., 0].astype(int) // 4 + 60 * index, 0, 255)
                write_image(root / split / name / f"{name}_{i:03d}.png", image)
    return root


def tiny_study_config(**overrides) -> dict:
    """The tiny study of .test/config.yaml with top-level keys replaced by ``overrides``."""
    import yaml

    return {**yaml.safe_load(TEST_CONFIG_PATH.read_text()), **overrides}


def snakemake_command() -> list[str]:
    return [sys.executable, "-m", "snakemake"]


def snakemake_env(verbose: bool = False) -> dict[str, str]:
    """The environment of a snakemake run: pcann's default terminal, or with ``verbose``
    Snakemake's per-job output too (PCANN_VERBOSE=1), whatever the caller's environment says."""
    env = {name: value for name, value in os.environ.items() if name != "PCANN_VERBOSE"}
    return {**env, "PCANN_VERBOSE": "1"} if verbose else env


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 600, verbose: bool = False):
    """Run snakemake in ``workdir``; on an unexpected exit code, fail with its output. Tests that
    read Snakemake's own output (job blocks, "Job stats") pass ``verbose``."""
    result = subprocess.run(
        [*snakemake_command(), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=snakemake_env(verbose),
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n{result.stderr[-8000:]}"
        )
    return result


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One complete run of the tiny study (.test/config.yaml), shared by the workflow tests.

    Returns ``(workdir, config, result)``. Tests may dry-run it with other configs but must
    leave its files as they found them.
    """
    config = tiny_study_config()
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny-study"), config)
    result = run_snakemake(workdir, "--cores", "2")
    return workdir, config, result
