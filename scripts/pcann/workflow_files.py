"""The files that make up the workflow, for the tests and benchmarks that run a copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path

#: The repository (this file is scripts/pcann/workflow_files.py).
REPO = Path(__file__).resolve().parents[2]
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
