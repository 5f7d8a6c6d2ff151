"""Pictures of what models hold: words on a plane, a translation's attention. Pure drawing over numbers
(numpy and matplotlib's Agg backend, no display needed); the command line and the service feed them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["attention_png", "pca_2d", "word_map_png"]


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates: the rows projected on their two principal components (an SVD of the centred
    rows; fewer than two components, as with one or two rows, leave zeros)."""
    x = np.asarray(vectors, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((len(x), 2))
    k = min(2, vt.shape[0])
    out[:, :k] = centred @ vt[:k].T
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return buf.getvalue()


def word_map_png(words: Sequence[str], coords: np.ndarray, *, queries: Sequence[bool], subwords: Sequence[bool],
                 title: str) -> bytes:
    """Words at their 2-D ``coords``, labelled: the words asked for (``queries``) bold and larger than their
    neighbours; words whose vector is built from subwords (not in the vocabulary) in italics, orange."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for word, (x, y), query, oov in zip(words, coords, queries, subwords, strict=True):
        color = "tab:orange" if oov else ("tab:blue" if query else "tab:gray")
        ax.scatter([x], [y], s=60 if query else 25, color=color, zorder=2)
        ax.annotate(word, (x, y), xytext=(4, 4), textcoords="offset points", color=color,
                    fontsize=11 if query else 9, fontweight="bold" if query else "normal",
                    fontstyle="italic" if oov else "normal")
    ax.set_title(title)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.grid(True, alpha=0.3)
    if any(subwords):
        ax.text(0.01, 0.01, "italic orange: built from subwords (not in the vocabulary)", transform=ax.transAxes,
                fontsize=8, color="tab:orange")
    ax.margins(0.15)
    fig.tight_layout()
    return _png(fig)


def attention_png(source_tokens: Sequence[str], target_tokens: Sequence[str], weights: Sequence[Sequence[float]],
                  *, title: str) -> bytes:
    """A heat map of ``weights[t][s]``: target pieces down, source pieces across."""
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"weights are {matrix.shape}, tokens {len(target_tokens)} x {len(source_tokens)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(source_tokens) + 2), max(3.0, 0.4 * len(target_tokens) + 2)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), list(source_tokens), rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)), list(target_tokens))
    ax.set_xlabel("source pieces")
    ax.set_ylabel("target pieces")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return _png(fig)
