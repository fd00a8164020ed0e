"""Rule plot_samples: a grid of example images per class, as the workflow reads them."""

from pcann.data import load_saved_dataset
from pcann.plots import samples_figure, save_figure
from pcann.rule import run_rule


def main(smk):
    train, _, data_label = load_saved_dataset(smk.input[0], splits=["train"], mmap=True)
    save_figure(samples_figure(train, data_label=data_label or None), *smk.output)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
