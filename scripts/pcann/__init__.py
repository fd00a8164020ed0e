"""pcann: PCA + from-scratch neural networks on labelled image folders.

The importable library behind the Snakemake workflow. Rule scripts in ``scripts/`` are thin
entry points; everything they do lives here so that tests and notebooks can use it too.
"""

__version__ = "0.1.0"


class PcannError(Exception):
    """An error caused by the user's input (data, configuration), with a message saying what to fix.

    Rule entry points print these as one clear message instead of a traceback.
    """


class DataError(PcannError, ValueError):
    """The image folders are unusable: names the file or folder and what was expected."""
