"""Pins: requirements.txt (pip) and envs/pcann.yaml (conda) pin the same versions."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import REPO


def _pip_pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line).groups()
            pins[name.lower()] = version
    return pins


def _conda_pins(path):
    pins = {}
    for item in yaml.safe_load(path.read_text())["dependencies"]:
        entries = item["pip"] if isinstance(item, dict) else [item]
        for entry in entries:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==?\s*([^\s]+)", entry)
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_requirement_is_pinned_exactly():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line or "==" in line, f"requirements.txt: {line!r} is not pinned with =="


def test_conda_environment_mirrors_requirements():
    pip = _pip_pins(REPO / "requirements.txt")
    conda = _conda_pins(REPO / "envs" / "pcann.yaml")
    conda.pop("python", None)
    assert conda == pip


def test_required_packages_are_all_there():
    needed = {"snakemake", "numpy", "scikit-learn", "opencv-python-headless", "matplotlib", "pandas", "pytest", "snakefmt"}
    assert needed <= set(_pip_pins(REPO / "requirements.txt"))
    assert int(_pip_pins(REPO / "requirements.txt")["snakemake"].split(".")[0]) == 9


def test_training_jobs_import_no_scikit_learn_pandas_or_matplotlib():
    """Every training job pays for its imports: scripts/train.py must stay numpy-only."""
    imports = [
        line for line in (REPO / "scripts" / "train.py").read_text().splitlines()
        if line.startswith(("import ", "from "))
    ]
    assert any("pcann.study.runs" in line for line in imports)
    code = "\n".join(
        ["import sys", f"sys.path.insert(0, {str(REPO / 'scripts')!r})", *imports]
        + ["heavy = sorted({'sklearn', 'pandas', 'matplotlib'} & set(sys.modules))",
           "assert not heavy, heavy"]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _tracked_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_committed_file_names_a_machine_specific_path():
    if not (REPO / ".git").exists():
        import pytest

        pytest.skip("not a git checkout")
    pattern = re.compile(r"(?<![\w.])/(?:work|root|home)/")
    found = []
    for path in _tracked_files():
        if path == REPO / "tests" / "test_packaging.py" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not found, f"machine-specific paths: {found}"


def test_licence_and_citation_ship():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    readme = (REPO / "README.md").read_text()
    assert "Fruits-360" in readme and "CC BY-SA 4.0" in readme
