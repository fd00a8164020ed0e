# Configuration checks and helpers shared by every rules file.
import os
import sys
from pathlib import Path

from snakemake.logging import logger

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))
from pcann.config import check_config  # noqa: E402
from pcann.data import is_image_file  # noqa: E402
from pcann.demo import DEMO_BANNER  # noqa: E402

CONFIG_SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
# Our check first, for one readable line per problem; then Snakemake's, which fills defaults.
check_config(config, CONFIG_SCHEMA)
validate(config, CONFIG_SCHEMA)


def check_data_dir():
    """Stop before any job when the configured data folder cannot be the study's input."""
    data_dir = Path(config["data_dir"])
    if not data_dir.is_dir():
        raise ValueError(
            f"config key data_dir: {str(data_dir)!r} does not exist or is not a folder; "
            "expected a folder holding the sub-folders "
            f"{config['train_folder']!r} and {config['test_folder']!r}"
        )
    for key in ("train_folder", "test_folder"):
        if not (data_dir / config[key]).is_dir():
            raise ValueError(
                f"config key {key}: {str(data_dir / config[key])!r} does not exist or is "
                "not a folder; expected one sub-folder per class inside it"
            )
    return data_dir


USE_DEMO = config["data_dir"] is None
DATA_DIR = Path("results/demo_data") if USE_DEMO else check_data_dir()
DATA_LABEL = DEMO_BANNER if USE_DEMO else None
if USE_DEMO:
    logger.warning(
        f"\n*** {DEMO_BANNER} ***\n"
        "*** No data_dir configured: running on the embedded demo data set.     ***\n"
        "*** Real data: snakemake --cores 4 --config data_dir=PATH               ***\n"
    )

PROTOCOL_PATTERN = "study|train-only"


wildcard_constraints:
    protocol=PROTOCOL_PATTERN,
    n_components=r"[1-9][0-9]*",


def data_inputs(wildcards):
    """The image files the loader reads, so that editing one re-runs the loading."""
    if USE_DEMO:
        return {"demo": "results/demo_data"}
    files = []
    for key in ("train_folder", "test_folder"):
        for root, dirs, names in os.walk(DATA_DIR / config[key]):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files.extend(
                os.path.join(root, n) for n in sorted(names) if is_image_file(Path(n))
            )
    return {"images": files}


def pca_outputs(protocol, n_components):
    """Everything the PCA stage produces for one protocol and component count."""
    prefix = f"results/figures/pca/{protocol}-pca{n_components}"
    return [
        f"results/features/{protocol}/pca{n_components}/features.npz",
        *expand(
            "{prefix}/{name}.{ext}",
            prefix=prefix,
            name=["explained_variance", "projection"],
            ext=["png", "svg"],
        ),
    ]
