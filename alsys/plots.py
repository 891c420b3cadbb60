"""Plots people expect to look at: embeddings in 2-D and what the clusters hold.

Matplotlib with the Agg backend; each function writes a PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tsne_scatter(
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    selected: np.ndarray | None = None,
    seed: int = 0,
    title: str = "t-SNE of the embedding",
) -> Path:
    """t-SNE of (n, d) embeddings coloured by true class (thesis Fig. 3.3, 4.15-4.21); the
    ``selected`` rows are drawn as black crosses (Fig. 5.4/5.5)."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    perplexity = float(min(30, max(2, (embeddings.shape[0] - 1) // 3)))
    points = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, init="pca"
    ).fit_transform(np.asarray(embeddings, dtype=np.float32))
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c, name in enumerate(classes):
        here = labels == c
        ax.scatter(points[here, 0], points[here, 1], s=6, color=cmap(c % cmap.N), label=name)
    if selected is not None and len(selected):
        ax.scatter(
            points[selected, 0],
            points[selected, 1],
            s=60,
            marker="+",
            color="black",
            linewidths=1.5,
            label="selected",
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=7, loc="best", ncol=2 if len(classes) > 10 else 1)
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def cluster_class_distribution(
    assignment: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Classes within each k-means cluster",
) -> Path:
    """Stacked bars: for each cluster, the share of each true class (thesis Fig. 5.2, 5.6, 5.7).
    Clusters are sorted by their dominant class so aligned boundaries show as blocks."""
    plt = _pyplot()
    k = int(assignment.max()) + 1
    counts = np.zeros((k, len(classes)))
    np.add.at(counts, (assignment, labels), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    order = np.lexsort((-shares.max(axis=1), shares.argmax(axis=1)))
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * k + 2), 4))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    bottom = np.zeros(k)
    for c, name in enumerate(classes):
        ax.bar(np.arange(k), shares[order, c], bottom=bottom, color=cmap(c % cmap.N), label=name)
        bottom += shares[order, c]
    ax.set_xlabel("cluster (sorted by dominant class)")
    ax.set_ylabel("share of the cluster")
    ax.set_title(title)
    ax.set_xticks(np.arange(k))
    ax.set_xticklabels([str(i) for i in order], fontsize=6, rotation=90)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def llr_histogram(
    scores: dict[str, np.ndarray],
    path: str | Path,
    title: str = "LLR$^{>2}$: in- vs out-of-distribution",
    xlabel: str = "LLR$^{>2}$ (nats)",
) -> Path:
    """Overlaid density histograms of a score per named set (thesis Fig. 3.1/3.2)."""
    plt = _pyplot()
    finite = {name: np.asarray(v, dtype=np.float64) for name, v in scores.items()}
    values = np.concatenate([v[np.isfinite(v)] for v in finite.values()])
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    bins = np.linspace(low, high if high > low else low + 1, 50)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, v in finite.items():
        ax.hist(v[np.isfinite(v)], bins=bins, alpha=0.5, density=True, label=f"{name} (n={v.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
