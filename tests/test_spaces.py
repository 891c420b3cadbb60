"""Selection-space names, and the representation baselines ``pixels`` and ``pca:D``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alsys.config import TrialConfig
from alsys.data import load_dataset
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError
from alsys.loop import prepare_data
from alsys.report import trial_frame
from alsys.spaces import Space, baseline_features, parse_space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("simclr", Space()),
        ("pixels", Space("pixels")),
        ("pca:32", Space("pca", dim=32)),
        ("pca:1", Space("pca", dim=1)),
        ("hvae:z2:mean", Space("hvae", 2, "mean")),
    ],
)
def test_space_names_round_trip(text: str, expected: Space) -> None:
    assert parse_space(text) == expected and str(expected) == text


@pytest.mark.parametrize("text", ["pca:0", "pca:x", "pca", "pca:", "pca:-4", "pca:032", "pixel"])
def test_bad_space_names_are_one_line(text: str) -> None:
    with pytest.raises(InputError) as error:
        parse_space(text)
    assert error.value.field == "space" and "\n" not in str(error.value)


def test_pca_matches_scikit_learn_up_to_sign_on_both_gram_sides() -> None:
    from sklearn.decomposition import PCA

    digits = load_dataset("digits")
    assert digits.train_images is not None
    # 1,437 images x 64 values (X^T X), and 40 images x 64 values (X X^T).
    for n in (digits.n_train, 40):
        pool = dataclasses.replace(
            digits, train_images=digits.train_images[:n], train_labels=digits.train_labels[:n]
        )
        ours = baseline_features(parse_space("pca:12"), pool)
        pixels = digits.train_images[:n].reshape(n, -1) / 255.0
        naive = PCA(12, svd_solver="full").fit_transform(pixels)
        assert ours.shape == (n, 12) and ours.dtype == np.float32
        signs = np.sign((ours * naive).sum(axis=0))
        np.testing.assert_allclose(ours, naive * signs, atol=1e-4)
        # The sign rule: each component's largest projection is positive.
        assert np.all(ours[np.abs(ours).argmax(axis=0), np.arange(12)] > 0)


def test_pixels_and_pca_become_the_unit_clustering_space_without_simclr(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path, compute=False)  # FSL in a baseline space trains nothing
    for space, dim in (("pixels", 64), ("pca:16", 16)):
        config = TrialConfig(strategy="typiclust", setting="fsl", space=space)
        data = prepare_data(config, store)
        assert data.clst.shape == (1437, dim) and data.typ is data.clst
        assert data.features_train is None
        np.testing.assert_allclose(np.linalg.norm(data.clst, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(data.clst, prepare_data(config, store).clst)


def test_pca_fits_the_train_pool_only() -> None:
    digits = load_dataset("digits")
    assert digits.test_images is not None
    other_test = dataclasses.replace(digits, test_images=digits.test_images[::-1].copy())
    space = parse_space("pca:8")
    np.testing.assert_array_equal(
        baseline_features(space, digits), baseline_features(space, other_test)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": "pixels", "d_clst": 8}, "d_clst/d_typ choose SimCLR dimensions"),
        ({"space": "pca:8", "d_typ": 8}, "d_clst/d_typ choose SimCLR dimensions"),
        ({"space": "pixels", "dataset": "embeddings"}, "the embeddings dataset has none"),
        ({"space": "pca:8", "dataset": "embeddings"}, "the embeddings dataset has none"),
        ({"space": "pca:0"}, "pca takes D >= 1 components"),
    ],
)
def test_bad_baseline_settings_name_the_space(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as error:
        TrialConfig(strategy="typiclust", **kwargs)
    assert error.value.field == "space"


def test_pca_beyond_the_images_is_refused_before_any_training(tmp_path: Path) -> None:
    config = TrialConfig(strategy="typiclust", space="pca:65")  # SSL: SimCLR would train
    with pytest.raises(InputError, match="digits has 64 pixel values per image") as error:
        prepare_data(config, EmbeddingStore(tmp_path))
    assert error.value.field == "space" and "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())


def test_baseline_spaces_name_their_runs_and_report_lines() -> None:
    config = TrialConfig(strategy="typiclust", space="pca:32")
    assert config.run_name() == "typiclust-digits-tiny-ssl-s0-pca-32"
    assert config.hvae_models == []
    runs = [
        {
            "run_id": space,
            "params": {"strategy": "typiclust", "space": space, "seed": "0"},
            "history": {"balanced_accuracy": [(1, 0.5)], "n_labeled": [(1, 10)]},
        }
        for space in ("simclr", "pixels", "pca:32")
    ]
    frame = trial_frame(runs)
    assert frame.strategy.tolist() == ["typiclust", "typiclust [pixels]", "typiclust [pca:32]"]
    assert frame.space.tolist() == ["simclr", "pixels", "pca:32"]
