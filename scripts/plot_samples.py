"""Rule plot_samples: a grid of example images per class, as the workflow reads them."""

from pcann.data.images import load_saved_dataset
from pcann.results.plots import samples_figure, save_figure
from pcann.workflow.rule import run_rule


def main(smk):
    train, _, data_label = load_saved_dataset(smk.input[0], splits=["train"], mmap=True)
    save_figure(samples_figure(train, data_label=data_label or None), *smk.output)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
