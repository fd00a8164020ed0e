"""The one Markdown table writer of every page pcann writes (tables, evaluations, predictions)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def markdown_table(header: Sequence, rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table; floats to 4 decimals, ``|`` in a cell escaped."""
    def cell(value) -> str:
        text = f"{value:.4f}" if isinstance(value, (float, np.floating)) else str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
