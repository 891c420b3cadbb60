"""Chapter 3's figures from the HVAE store entries.

- ``tsne_<model>_z<j>.png``: t-SNE of each latent layer's means on the test split, coloured by
  class (thesis Fig. 3.4-3.6; ``hvae-emb`` for the HVAE on SimCLR embeddings).
- ``kl_<model>.png``: the KL of each layer per training epoch, so a collapsed layer shows.
- ``llr2_<model>.png``: LLR^{>2} histograms of the in-distribution test split against an
  out-of-distribution set (thesis Fig. 3.1-3.2). No second dataset can be downloaded here, so
  for an image HVAE the OOD set is 8x8 grey patches cut from the two photographs that ship with
  scikit-learn (``load_sample_images``), resized to the dataset's image size; for ``hvae-emb``
  it is the test embeddings with their coordinates shuffled per point (a shifted set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from alsys.spaces import LAYERS, MODELS


def photo_patches(n: int, size: tuple[int, int], channels: int, seed: int) -> np.ndarray:
    """``n`` (H, W, C) uint8 patches of scikit-learn's sample photographs, at ``size``."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images  # two (427, 640, 3) uint8 photographs
    crop = 32
    patches = []
    for i in range(n):
        photo = photos[i % len(photos)]
        top = int(rng.integers(0, photo.shape[0] - crop))
        left = int(rng.integers(0, photo.shape[1] - crop))
        patches.append(photo[top : top + crop, left : left + crop])
    x = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float()
    if channels == 1:
        x = x.mean(dim=1, keepdim=True)
    x = F.interpolate(x, size=size, mode="area")
    out: np.ndarray = x.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def hvae_figures(
    dataset: str,
    out_dir: str | Path,
    store: Any = None,
    models: tuple[str, ...] = tuple(MODELS),
    seed: int = 0,
    epochs: int | None = None,
    simclr: dict[str, Any] | None = None,
    max_points: int = 2000,
) -> list[Path]:
    """Writes the figures for each HVAE in ``models`` (training any that is not in the store
    yet) and returns their paths."""
    from alsys.data import load_dataset
    from alsys.embed.hvae import hvae_outputs, prepare_inputs
    from alsys.embed.hvae_store import hvae_embeddings, load_network
    from alsys.plots import _pyplot, llr_histogram, tsne_scatter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.permutation(len(data.test_labels))[:max_points])
    paths: list[Path] = []
    for model in models:
        if model == "hvae" and not data.has_images:
            continue
        arrays = hvae_embeddings(
            dataset, model, seed=seed, epochs=epochs, store=store, simclr=simclr, loaded=data
        )
        for j in range(LAYERS):
            paths.append(
                tsne_scatter(
                    arrays[f"test_mu_z{j}"][shown],
                    data.test_labels[shown],
                    data.classes,
                    out / f"tsne_{model}_z{j}.png",
                    seed=seed,
                    title=f"t-SNE of {model} z{j} (mean), {dataset} test split",
                )
            )
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        kl = np.asarray(arrays["kl"])
        for j in range(LAYERS):
            ax.plot(np.arange(1, kl.shape[0] + 1), kl[:, j], label=f"z{j}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("KL (nats per point)")
        ax.set_title(f"{model}: KL per layer during training")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"kl_{model}.png", dpi=120)
        plt.close(fig)
        paths.append(out / f"kl_{model}.png")

        network = load_network(arrays, dataset, model, epochs)
        in_scores = arrays["test_llr2"]
        if MODELS[model] == "images":
            assert data.test_images is not None
            height, width, channels = data.test_images.shape[1:]
            ood = photo_patches(len(in_scores), (height, width), channels, seed)
            ood_x = prepare_inputs(ood, "images").x
            ood_name = "photo patches (OOD)"
        else:
            shift, scale = arrays["input_shift"], arrays["input_scale"]
            test = _test_embeddings(data, store, simclr, network.config.simclr_dim)
            shuffled = rng.permuted(test, axis=1)  # each point's coordinates, shuffled
            ood_x = prepare_inputs(shuffled, "embeddings", (shift, scale)).x
            ood_name = "shuffled embeddings (OOD)"
        ood_scores = hvae_outputs(network, ood_x, seed, ks=(2,))["llr2"]
        paths.append(
            llr_histogram(
                {f"{dataset} test (in-distribution)": in_scores, ood_name: ood_scores},
                out / f"llr2_{model}.png",
                title=f"{model}: LLR$^{{>2}}$, in- vs out-of-distribution",
            )
        )
    return paths


def _test_embeddings(data: Any, store: Any, simclr: dict[str, Any] | None, dim: int) -> np.ndarray:
    """The unit-length test embeddings an ``hvae-emb`` model reads (from the store)."""
    from alsys.embed.hvae_store import simclr_source
    from alsys.spaces import unit_rows as _unit

    if data.test_features is not None:
        return _unit(data.test_features)
    return _unit(simclr_source(data.name, dim, dict(simclr or {}), store, {}, False).test)
