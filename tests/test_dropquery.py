"""DropQuery: predictions under feature dropout, then k-means among the inconsistent points
(Gupte et al. 2024), against scikit-activeml 1.0.1's ``DropQuery`` and hand-built cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import DropQuery
from skactiveml.utils import check_random_state
from sklearn.linear_model import LogisticRegression

from alsys.classifiers import SSLClassifier
from alsys.config import SSLClassifierConfig
from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from alsys.strategies.dropquery import change_rate, nearest_to_centres
from tests.conftest import blobs
from tests.strategy_contract import StrategyContract, softmax
from tests.test_differential import float32_exact


class TestDropQueryContract(StrategyContract):
    name = "dropquery"


def test_change_rate_counts_the_passes_whose_class_differs() -> None:
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(50, 4)))
    dropped = softmax(rng.normal(size=(5, 50, 4)))
    naive = [
        sum(dropped[t, i].argmax() != probs[i].argmax() for t in range(5)) / 5 for i in range(50)
    ]
    np.testing.assert_allclose(change_rate(probs, dropped), naive)


def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    x, ids = blobs(np.random.default_rng(3), n_per_blob=20, n_blobs=3)
    return x / np.linalg.norm(x, axis=1, keepdims=True), ids


def flipping(ids: np.ndarray, unstable: set[int], flips: int) -> tuple[np.ndarray, np.ndarray]:
    """probs predicting class 0 everywhere; in ``flips`` of 3 passes the points of the
    ``unstable`` blobs predict class 1."""
    probs = np.tile([0.7, 0.3], (ids.shape[0], 1))
    dropped = np.repeat(probs[None], 3, axis=0)
    moving = np.isin(ids, list(unstable))
    dropped[:flips, moving] = [0.2, 0.8]
    return probs, dropped


def test_picks_one_centre_per_group_of_inconsistent_points() -> None:
    """Blobs 0 and 2 change class in 2 of 3 passes, blob 1 never: b = 2 gives one pick in each
    of blobs 0 and 2, the candidate nearest its blob's mean."""
    x, ids = three_blobs()
    probs, dropped = flipping(ids, {0, 2}, flips=2)
    pool = Pool(embeddings=x, probs=probs, dropout_probs=dropped)
    mask = np.zeros(60, bool)
    mask[[0, 20, 40]] = True
    selection = make_strategy("dropquery").select(pool, mask, 2, np.random.default_rng(0))
    assert sorted(ids[selection.indices]) == [0, 2]
    for blob, pick in zip(ids[selection.indices], selection.indices, strict=True):
        members = np.flatnonzero((ids == blob) & ~mask)
        centre = x[members].mean(axis=0)
        assert pick == members[np.argmin(((x[members] - centre) ** 2).sum(axis=1))]
    assert selection.metrics["inconsistent"] == 38.0
    assert {why["change_rate"] for why in selection.details} == {2 / 3}


def test_one_flip_in_three_is_not_inconsistent_and_too_few_candidates_are_topped_up() -> None:
    """Blob 0 changes in 1 of 3 passes (not more than half), blob 2 in all 3: with b = 25 >
    19 candidates, the 25 points of highest change rate (all of blob 2, six of blob 0) are
    clustered."""
    x, ids = three_blobs()
    probs, dropped = flipping(ids, {0}, flips=1)
    dropped[:, ids == 2] = [0.2, 0.8]
    pool = Pool(embeddings=x, probs=probs, dropout_probs=dropped)
    mask = np.zeros(60, bool)
    mask[[0, 20, 40]] = True
    selection = make_strategy("dropquery").select(pool, mask, 25, np.random.default_rng(0))
    assert selection.metrics["inconsistent"] == 19.0
    assert np.isin(np.flatnonzero((ids == 2) & ~mask), selection.indices).all()
    assert (ids[selection.indices] == 0).sum() == 6
    assert (ids[selection.indices] == 1).sum() == 0
    assert "the 25 most changing taken" in selection.notes[0]


def test_cold_start_takes_the_points_nearest_the_k_means_centres() -> None:
    x, ids = three_blobs()
    selection = make_strategy("dropquery").select(
        Pool(embeddings=x), np.zeros(60, bool), 3, np.random.default_rng(0)
    )
    assert sorted(ids[selection.indices]) == [0, 1, 2]
    assert not selection.random_fallback
    assert selection.details[0]["reason"] == "dropquery cold start: k-means centre"
    for pick in selection.indices:
        members = np.flatnonzero(ids == ids[pick])
        centre = x[members].mean(axis=0)
        assert pick == members[np.argmin(((x[members] - centre) ** 2).sum(axis=1))]


def test_nearest_to_centres_never_takes_a_row_twice() -> None:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    centres = np.array([[0.1, 0.0], [0.0, 0.1]], dtype=np.float32)
    rows, _ = nearest_to_centres(x, centres)
    assert rows.tolist() == [0, 1]


def test_after_the_cold_start_it_needs_the_dropout_passes() -> None:
    x, _ = three_blobs()
    mask = np.zeros(60, bool)
    mask[:3] = True
    pool = Pool(embeddings=x, probs=np.tile([0.5, 0.5], (60, 1)))
    with pytest.raises(InputError, match="dropout_probs") as error:
        make_strategy("dropquery").select(pool, mask, 2, np.random.default_rng(0))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dropout_rate": 1.0}, "dropquery.dropout_rate"),
        ({"dropout_rate": 0}, "dropquery.dropout_rate"),
        ({"dropout_passes": 0}, "dropquery.dropout_passes"),
        ({"dropout_passes": 2.5}, "dropquery.dropout_passes"),
        ({"normalize": "no"}, "dropquery.normalize"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError, match=field):
        make_strategy("dropquery", **params)


# --- The classifier's side: the head under feature dropout ----------------------------------


def test_dropout_proba_scales_kept_features_so_the_mean_logit_is_unchanged() -> None:
    """Inverted dropout (as torch's Dropout and the authors' classifier): each kept feature is
    scaled by 1 / (1 - p), so over many passes the head's logit differences average to those
    without dropout; without the scaling they would shrink by (1 - p)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = np.arange(40) % 3
    probe = SSLClassifier(SSLClassifierConfig(embedding_dim=6, steps=50), 3).fit(x, y, 0)
    passes = probe.dropout_proba(x, 0.75, 4000, seed=1)
    assert passes.shape == (4000, 40, 3)
    assert not np.allclose(passes[0], passes[1])
    mean_gap = np.log(passes[..., 1] / passes[..., 0]).mean(axis=0)
    clean = probe.predict_proba(x)
    np.testing.assert_allclose(mean_gap, np.log(clean[:, 1] / clean[:, 0]), atol=0.15)
    again = probe.dropout_proba(x, 0.75, 3, seed=1)
    np.testing.assert_array_equal(again, passes[:3])


# --- Differential: scikit-activeml 1.0.1 ----------------------------------------------------


def six_blobs(seed: int, per: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six tight blobs on the unit sphere, classes 0-2; two labeled points per blob."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 8)) * 3
    blob = np.repeat(np.arange(6), per)
    x = centres[blob] + rng.normal(size=(blob.size, 8)) * 0.05
    x = float32_exact(x / np.linalg.norm(x, axis=1, keepdims=True))
    mask = np.zeros(blob.size, bool)
    mask[np.arange(0, blob.size, per)] = mask[np.arange(1, blob.size, per)] = True
    return x, blob, mask


def skactiveml_dropquery(
    x: np.ndarray, y: np.ndarray, clf: Any, seed: int, budget: int
) -> tuple[list[int], np.ndarray]:
    strategy = DropQuery(
        n_dropout_samples=3,
        cluster_algo_dict={"random_state": 0, "n_init": 10},
        random_state=seed,
    )
    picks, utilities = strategy.query(
        x, y, clf, fit_clf=False, batch_size=budget, return_utilities=True
    )
    return list(picks), np.flatnonzero(np.isfinite(utilities[0]))


@pytest.mark.parametrize("seed", [2, 5, 10])
def test_dropquery_matches_skactiveml_dropquery(seed: int) -> None:
    """The same classifier, the same dropout masks (scikit-activeml's own draws, replayed from
    its seeded stream: zeroed features, not rescaled), so the same inconsistent points; with one
    k-means cluster per blob that holds candidates (3 or more each, so no centre is midway
    between two), the same picks."""
    x, blob, mask = six_blobs(seed)
    y = np.full(blob.size, np.nan)
    y[mask] = blob[mask] % 3
    clf = SklearnClassifier(LogisticRegression(), classes=np.arange(3)).fit(x, y)
    _, candidates = skactiveml_dropquery(x, y, clf, seed, 1)
    counts = np.bincount(blob[candidates], minlength=6)
    assert ((counts == 0) | (counts >= 3)).all(), counts  # the premise of this comparison
    budget = int((counts > 0).sum())
    theirs, _ = skactiveml_dropquery(x, y, clf, seed, budget)

    stream = check_random_state(seed, int((~mask).sum()) + 1)
    unlabeled = np.flatnonzero(~mask)
    probs = clf.predict_proba(x)
    passes = []
    for _ in range(3):
        dropped = stream.choice([True, False], size=(unlabeled.size, 8), p=[0.75, 0.25])
        rows = x[unlabeled].copy()
        rows[dropped] = 0.0
        full = probs.copy()
        full[unlabeled] = clf.predict_proba(rows)
        passes.append(full)
    pool = Pool(embeddings=x, probs=probs, dropout_probs=np.stack(passes))
    ours = make_strategy("dropquery", normalize=False).select(
        pool, mask, budget, np.random.default_rng(seed)
    )
    rate = change_rate(probs, np.stack(passes))
    assert set(np.flatnonzero((rate > 0.5) & ~mask)) == set(candidates)
    assert set(ours.indices.tolist()) == set(theirs)
