"""Rule plot_pca: the explained-variance and projection figures of one PCA."""

from pcann.preprocessing.features import load_features
from pcann.results.plots import explained_variance_figure, projection_figure, save_figure
from pcann.workflow.rule import run_rule


def main(smk):
    features, data_label = load_features(smk.input.features)
    label = data_label or None
    save_figure(
        explained_variance_figure(features.spectrum, features.n_components, label),
        *smk.output.explained_variance,
    )
    save_figure(
        projection_figure(
            features.X_train, features.y_train, features.classes, label,
            title=f"Training split on the first principal components ({features.protocol} protocol)",
        ),
        *smk.output.projection,
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
