"""The hierarchical VAE of thesis chapter 3, its spaces and the ood_llr strategy, on digits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from alsys.config import TrialConfig
from alsys.data import load_digits
from alsys.embed.hvae import (
    HVAEConfig,
    hvae_outputs,
    hvae_preset,
    prepare_inputs,
    train_hvae,
)
from alsys.embed.hvae_store import hvae_embeddings, load_network, space_features
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError
from alsys.spaces import Space, parse_space
from alsys.strategies import Pool, make_strategy
from tests.strategy_contract import StrategyContract

EPOCHS = 6  # a short training; the preset is 60


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_digits()


@pytest.fixture(scope="module")
def trained(digits: Any) -> tuple[Any, torch.Tensor, dict[str, np.ndarray]]:
    x = prepare_inputs(digits.train_images, "images").x
    config = replace(hvae_preset("digits", "images"), epochs=EPOCHS, warmup_epochs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, history = train_hvae(x, config, seed=0, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    return model, x, history


def test_elbo_is_finite_and_improves_with_training(
    digits: Any, trained: tuple[Any, torch.Tensor, dict[str, np.ndarray]]
) -> None:
    model, x, history = trained
    subset = x[:300]
    untrained = load_network(
        {f"w.{k}": v.numpy() for k, v in _untrained(model).state_dict().items()}
        | {"input_hw": np.array([8, 8])},
        "digits",
    )
    before = hvae_outputs(untrained, subset, seed=1, samples=4)["elbo"]
    after = hvae_outputs(model, subset, seed=1, samples=4)["elbo"]
    assert np.isfinite(before).all() and np.isfinite(after).all()
    assert after.mean() > before.mean() + 5, (before.mean(), after.mean())
    assert history["elbo"].shape == (EPOCHS,) and np.isfinite(history["elbo"]).all()
    assert history["elbo"][-1] > history["elbo"][0]
    assert history["kl"].shape == (EPOCHS, 3) and (history["kl"] >= 0).all()


def _untrained(model: Any) -> Any:
    from alsys.embed.hvae import LadderVAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LadderVAE(model.config, model.input_shape)


def test_llr_above_zero_is_zero_for_both_estimators(
    trained: tuple[Any, torch.Tensor, dict[str, np.ndarray]],
) -> None:
    """LLR^{>0} = ELBO - L^{>0}: the bound through the general k path, with the same noise."""
    model, x, _ = trained
    out = hvae_outputs(model, x[:200], seed=3, samples=8, ks=(0, 1, 2))
    np.testing.assert_allclose(out["llr0"], 0.0, atol=1e-4)
    assert np.isfinite(out["llr1"]).all() and np.isfinite(out["llr2"]).all()
    assert not np.allclose(out["llr1"], out["llr2"])  # the prior path really differs
    iw = hvae_outputs(model, x[:200], seed=3, samples=8, estimator="iw", ks=(0, 2))
    np.testing.assert_allclose(iw["llr0"], 0.0, atol=1e-4)
    # log-mean-exp >= mean (Jensen): the importance-weighted ELBO is the tighter bound.
    assert (iw["elbo"] >= out["elbo"] - 1e-4).all()


def test_every_latent_has_its_shape(trained: tuple[Any, torch.Tensor, Any]) -> None:
    model, x, _ = trained
    out = hvae_outputs(model, x[:130], seed=0, samples=2, batch=64)
    for j, d in enumerate(model.config.latent_dims):
        for prefix in ("mu", "sd", "rp"):
            assert out[f"{prefix}_z{j}"].shape == (130, d)
            assert out[f"{prefix}_z{j}"].dtype == np.float32
        assert (out[f"sd_z{j}"] > 0).all()
    for name in ("elbo", "llr1", "llr2"):
        assert out[name].shape == (130,)


def test_same_seed_same_samples_and_scores(trained: tuple[Any, torch.Tensor, Any]) -> None:
    model, x, _ = trained
    a = hvae_outputs(model, x[:100], seed=7, samples=3)
    b = hvae_outputs(model, x[:100], seed=7, samples=3)
    c = hvae_outputs(model, x[:100], seed=8, samples=3)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["rp_z0"], c["rp_z0"])
    np.testing.assert_array_equal(a["mu_z2"], c["mu_z2"])  # means carry no noise


def test_same_seed_same_training(digits: Any) -> None:
    x = prepare_inputs(digits.train_images[:200], "images").x
    config = replace(hvae_preset("digits", "images"), epochs=2)
    first, _ = train_hvae(x, config, seed=4, show_progress=False)
    second, _ = train_hvae(x, config, seed=4, show_progress=False)
    for (name, p), q in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_embedding_input_hvae_trains_on_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 24)).astype(np.float32)
    x = prepare_inputs(vectors, "embeddings")
    config = HVAEConfig(input="embeddings", latent_dims=(8, 4, 2), width=32, epochs=3)
    model, history = train_hvae(x.x, config, seed=0, show_progress=False)
    out = hvae_outputs(model, x.x, seed=0, samples=2)
    assert out["mu_z1"].shape == (300, 4) and np.isfinite(out["elbo"]).all()
    assert np.isfinite(history["loss"]).all()


def test_the_store_trains_once_and_serves_every_space(tmp_path: Path, digits: Any) -> None:
    store = EmbeddingStore(tmp_path)
    first = hvae_embeddings("digits", "hvae", epochs=2, store=store, show_progress=False)
    assert store.computed == 1
    again = hvae_embeddings("digits", "hvae", epochs=2, store=EmbeddingStore(tmp_path))
    np.testing.assert_array_equal(first["train_rp_z1"], again["train_rp_z1"])
    n = digits.n_train
    assert space_features(first, parse_space("hvae:z2:mean")).shape == (n, 8)
    assert space_features(first, parse_space("hvae:z0:rp")).shape == (n, 32)
    assert first["test_llr2"].shape == (len(digits.test_labels),)
    network = load_network(first, "digits", "hvae", epochs=2)  # the stored weights score anew
    x = prepare_inputs(digits.test_images[:50], "images").x
    rescored = hvae_outputs(network, x, seed=0)
    np.testing.assert_allclose(rescored["mu_z0"], first["test_mu_z0"][:50], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("simclr", Space()),
        ("hvae:z2:mean", Space("hvae", 2, "mean")),
        ("hvae-emb:z0:rp", Space("hvae-emb", 0, "rp")),
    ],
)
def test_space_names_round_trip(text: str, expected: Space) -> None:
    assert parse_space(text) == expected and str(expected) == text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"space": "hvae:z3:mean"}, "space"),
        ({"space": "vae:z0:mean"}, "space"),
        ({"space": "hvae:z0:median"}, "space"),
        ({"space": "hvae:z0:mean", "d_clst": 8}, "space"),
        ({"space": "hvae:z0:mean", "dataset": "embeddings"}, "space"),
        ({"hvae_epochs": 0}, "hvae_epochs"),
        ({"strategy": "ood_llr", "strategy_params": {"k": 3}}, "ood_llr.k"),
        ({"strategy": "ood_llr", "strategy_params": {"model": "vae"}}, "ood_llr.model"),
        ({"strategy": "ood_llr", "strategy_params": {"invert": "yes"}}, "ood_llr.invert"),
    ],
)
def test_bad_hvae_settings_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    kwargs = {"strategy": "typiclust", **kwargs}
    with pytest.raises(InputError) as error:
        TrialConfig(**kwargs)
    assert error.value.field == field


class TestOODLLRInvertContract(StrategyContract):
    name = "ood_llr"  # the registry's contract (tests/test_contract.py) runs the default
    params: ClassVar[dict[str, Any]] = {"invert": True}


def test_ood_llr_takes_the_lowest_score_per_cluster_or_the_highest_inverted() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, dtype=np.float32) * 10
    x = np.repeat(centres, 25, axis=0) + rng.normal(size=(100, 4)).astype(np.float32) * 0.1
    scores = rng.normal(size=100)
    pool = Pool(embeddings=x, scores=scores)
    empty = np.zeros(100, dtype=bool)
    low = make_strategy("ood_llr").select(pool, empty, 4, np.random.default_rng(0))
    high = make_strategy("ood_llr", invert=True).select(pool, empty, 4, np.random.default_rng(0))
    blocks = [np.arange(25 * b, 25 * b + 25) for b in range(4)]
    assert sorted(low.indices.tolist()) == sorted(int(b[scores[b].argmin()]) for b in blocks)
    assert sorted(high.indices.tolist()) == sorted(int(b[scores[b].argmax()]) for b in blocks)


def test_ood_llr_without_scores_is_refused() -> None:
    pool = Pool(embeddings=np.random.default_rng(0).normal(size=(40, 3)))
    with pytest.raises(InputError, match="scores"):
        make_strategy("ood_llr").select(pool, np.zeros(40, dtype=bool), 3, np.random.default_rng())


def test_a_trial_selects_in_an_hvae_latent_and_by_llr(tmp_path: Path) -> None:
    from alsys.loop import prepare_data, run_trial

    store = EmbeddingStore(tmp_path)
    common = {"episodes": 2, "embed_epochs": 1, "hvae_epochs": 2}
    typ = TrialConfig("typiclust", space="hvae:z1:rp", **common)
    data = prepare_data(typ, store)
    entry = hvae_embeddings("digits", "hvae", epochs=2, store=store)
    unit = entry["train_rp_z1"] / np.linalg.norm(entry["train_rp_z1"], axis=1, keepdims=True)
    np.testing.assert_allclose(data.clst, unit, rtol=1e-5)
    assert data.scores is None
    state = run_trial(typ, data)
    assert [r.n_labeled for r in state.rounds] == [10, 20]

    ood = TrialConfig("ood_llr", strategy_params={"invert": True}, **common)
    data = prepare_data(ood, store)
    np.testing.assert_array_equal(data.scores, entry["train_llr2"].astype(np.float64))
    state = run_trial(ood, data)
    picked = state.rounds[0].selected
    assert len(picked) == 10
    assert store.computed == 2  # one SimCLR and one HVAE training served both trials
