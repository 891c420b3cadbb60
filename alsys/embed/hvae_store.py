"""HVAE entries in the embedding store: an HVAE (alsys.embed.hvae) trained once per dataset,
model and seed, its latents and LLR^{>k} scores kept as plain arrays, and read back.

Imports torch; ``import alsys`` does not import this module.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alsys.embed.hvae import (
    LadderVAE,
    hvae_outputs,
    hvae_preset,
    prepare_inputs,
    train_hvae,
)
from alsys.errors import InputError
from alsys.spaces import MODELS, Space
from alsys.spaces import unit_rows as _unit


@cache
def hvae_code_version() -> str:
    """alsys's version plus a hash of the code that shapes an HVAE entry (part of its key)."""
    import alsys

    digest = hashlib.sha256()
    for module in (Path(__file__), Path(__file__).with_name("hvae.py")):
        digest.update(module.read_bytes())
    return f"{alsys.__version__}+{digest.hexdigest()[:12]}"


def hvae_embeddings(
    dataset: str,
    model: str = "hvae",
    seed: int = 0,
    epochs: int | None = None,
    store: Any = None,
    dataset_options: dict[str, Any] | None = None,
    simclr: dict[str, Any] | None = None,
    show_progress: bool = True,
    loaded: Any = None,
) -> dict[str, np.ndarray]:
    """The HVAE entry for ``dataset`` from the embedding store (trained once, then read).

    ``model``: ``hvae`` (on the images) or ``hvae-emb`` (on the 512-D SimCLR embeddings,
    trained with ``simclr``: ``{"mode", "epochs", "seed"}``). The entry holds, for ``train``
    and ``test``: ``<split>_mu_z{j}``, ``<split>_sd_z{j}``, ``<split>_rp_z{j}``,
    ``<split>_elbo``, ``<split>_llr1``, ``<split>_llr2``; and the training curves ``loss``,
    ``elbo`` and ``kl`` ((epochs, 3), per layer).
    """
    from alsys.data import load_dataset
    from alsys.embed import NOT_IN_KEY
    from alsys.embed.store import EmbeddingStore

    if model not in MODELS:
        raise InputError("space", f"unknown HVAE model {model!r}; valid: {', '.join(MODELS)}")
    kind = MODELS[model]
    config = hvae_preset(dataset, kind, epochs)
    options = dict(dataset_options or {})
    store = store or EmbeddingStore()
    simclr = dict(simclr or {})
    cache_: list[Any] = [loaded] if loaded is not None else []

    def data() -> Any:
        if not cache_:
            cache_.append(load_dataset(dataset, **options))
        return cache_[0]

    spec: dict[str, Any] = {
        "kind": "hvae",
        "dataset": dataset,
        "dataset_options": {k: v for k, v in options.items() if k not in NOT_IN_KEY},
        "hvae": config.as_dict(),
        "seed": seed,
        "code": hvae_code_version(),
    }
    source: tuple[np.ndarray, np.ndarray] | None = None
    if kind == "embeddings" and dataset == "embeddings":
        spec["input"] = "dataset features"
    elif kind == "embeddings":
        chosen = simclr_source(dataset, config.simclr_dim, simclr, store, options, show_progress)
        source = (chosen.train, chosen.test)
        spec["input"] = f"simclr entry {chosen.path.name}"
    elif dataset == "embeddings":
        raise InputError("space", "hvae reads images; the embeddings dataset has none (hvae-emb)")

    def train() -> dict[str, np.ndarray]:
        if kind == "images":
            loaded_data = data()
            train_x = prepare_inputs(loaded_data.train_images, "images")
            test_x = prepare_inputs(loaded_data.test_images, "images")
        else:
            train_raw, test_raw = source if source is not None else _features(data())
            train_x = prepare_inputs(_unit(train_raw), "embeddings")
            stats = (train_x.shift, train_x.scale)
            assert stats[0] is not None and stats[1] is not None
            test_x = prepare_inputs(_unit(test_raw), "embeddings", (stats[0], stats[1]))
        return _trained_entry(train_x, test_x, config, seed, show_progress)

    arrays: dict[str, np.ndarray] = store.get_or_compute(spec, train)
    return arrays


def simclr_source(
    dataset: str,
    dim: int,
    simclr: dict[str, Any],
    store: Any,
    options: dict[str, Any],
    show_progress: bool,
) -> Any:
    """The SimCLR embeddings (at ``dim``) an ``hvae-emb`` trains on, from the store."""
    from alsys.embed import DIMENSIONS, simclr_embeddings

    mode = simclr.get("mode", "nested")
    by_dim = simclr_embeddings(
        dataset,
        list(DIMENSIONS) if mode == "nested" else [dim],
        mode=mode,
        seed=int(simclr.get("seed", 0)),
        epochs=simclr.get("epochs"),
        store=store,
        dataset_options=options,
        show_progress=show_progress,
    )
    return by_dim[dim]


def _trained_entry(
    train_x: Any, test_x: Any, config: Any, seed: int, show_progress: bool
) -> dict[str, np.ndarray]:
    """An HVAE trained on ``train_x``: its curves, its weights (as plain arrays, never a
    pickle, for scoring other data later), its input scaling and both splits' outputs."""
    network, history = train_hvae(train_x.x, config, seed, show_progress)
    arrays = dict(history)
    for name, tensor in network.state_dict().items():
        arrays[f"w.{name}"] = tensor.detach().cpu().numpy()
    if train_x.shift is not None and train_x.scale is not None:
        arrays["input_shift"], arrays["input_scale"] = train_x.shift, train_x.scale
    else:
        arrays["input_hw"] = np.asarray(train_x.x.shape[2:], dtype=np.int64)
    for split, inputs in (("train", train_x), ("test", test_x)):
        for name, values in hvae_outputs(network, inputs.x, seed).items():
            arrays[f"{split}_{name}"] = values
    return arrays


def load_network(
    arrays: dict[str, np.ndarray], dataset: str, model: str = "hvae", epochs: int | None = None
) -> LadderVAE:
    """The trained HVAE of a store entry (from its weight arrays), in eval mode on the CPU."""
    config = hvae_preset(dataset, MODELS[model], epochs)
    if config.input == "images":
        weight = arrays["w.encoder.0.weight"]  # (channels out, channels in, 3, 3)
        shape: tuple[int, ...] = (int(weight.shape[1]), *arrays["input_hw"].tolist())
    else:
        shape = (int(arrays["input_shift"].shape[0]),)
    network = LadderVAE(config, shape)
    state = {k[2:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("w.")}
    network.load_state_dict(state)
    return network.eval()


def _features(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    return dataset.train_features, dataset.test_features


def space_features(arrays: dict[str, np.ndarray], space: Space, split: str = "train") -> np.ndarray:
    """The (N, d_j) latent a space names, from an HVAE entry."""
    prefix = "mu" if space.mode == "mean" else "rp"
    return np.asarray(arrays[f"{split}_{prefix}_z{space.layer}"])


__all__ = [
    "hvae_code_version",
    "hvae_embeddings",
    "load_network",
    "simclr_source",
    "space_features",
]
