"""Training curves saved beside a model (``training_curve.png``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

# One panel: its y-axis label and the (history key, legend label) pairs it plots.
Panel = tuple[str, Sequence[tuple[str, str]]]


def history_png(history: list[dict[str, Any]], title: str, panels: Sequence[Panel], x: str = "epoch"
                ) -> bytes | None:
    """A PNG with one panel per ``panels`` entry, ``x`` (epoch, step) on the x axis; None for an empty history."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [h[x] for h in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels, strict=True):
        for key, label in series:
            ax.plot(xs, [h[key] for h in history], marker="o", label=label)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
