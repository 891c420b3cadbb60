from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from alsys.errors import InputError
from alsys.strategies import Pool, make_strategy
from alsys.strategies.badge import (
    gradient_embeddings,
    gradient_factors,
    gradient_sq_distances,
    kmeanspp_seeding,
)
from alsys.strategies.base import COLD_START_NOTE
from tests.strategy_contract import StrategyContract, softmax


class TestBADGESkactivemlSeedingContract(StrategyContract):
    name = "badge"
    params = {"seeding": "skactiveml", "normalize": True}


def random_pool(seed: int, n: int = 60, d: int = 7, classes: int = 5) -> Pool:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return Pool(embeddings=x, probs=softmax(rng.normal(size=(n, classes)) * 2))


def naive_badge(
    g: np.ndarray, labeled: np.ndarray, budget: int, rng: np.random.Generator, origin: bool
) -> list[int]:
    """k-means++ seeding on the explicit gradient matrix, one pairwise loop per step."""
    candidates = [i for i in range(len(g)) if not labeled[i]]
    chosen = [max(candidates, key=lambda i: float(g[i] @ g[i]))]
    for _ in range(budget - 1):
        weights = []
        for i in candidates:
            centres = [g[c] for c in chosen] + ([np.zeros_like(g[i])] if origin else [])
            d2 = min(float(np.sum((g[i] - c) ** 2)) for c in centres)
            weights.append(0.0 if i in chosen else d2)
        cdf = np.cumsum(np.asarray(weights) / sum(weights))
        cdf /= cdf[-1]
        chosen.append(candidates[int(np.searchsorted(cdf, rng.random(), side="right"))])
    return chosen


def test_factorised_distances_equal_the_explicit_gradient_matrix() -> None:
    pool = random_pool(0)
    assert pool.embeddings is not None and pool.probs is not None
    g = gradient_embeddings(pool.embeddings, pool.probs)
    assert g.shape == (60, 5 * 7)
    a, f = gradient_factors(pool.embeddings, pool.probs)
    for centre in (0, 17, 59):
        explicit = np.sum((g - g[centre]) ** 2, axis=1)
        np.testing.assert_allclose(gradient_sq_distances(a, f, centre), explicit, atol=1e-12)
        assert gradient_sq_distances(a, f, centre)[centre] == 0.0


def test_gradient_embedding_is_p_minus_onehot_times_features() -> None:
    x = np.array([[1.0, 2.0]])
    p = np.array([[0.2, 0.7, 0.1]])
    expected = np.outer([0.2, -0.3, 0.1], [1.0, 2.0]).ravel()
    np.testing.assert_allclose(gradient_embeddings(x, p)[0], expected)


@pytest.mark.parametrize("seeding", ["badge", "skactiveml"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_equals_seeding_on_the_explicit_matrix(seeding: str, seed: int) -> None:
    pool = random_pool(seed)
    assert pool.embeddings is not None and pool.probs is not None
    labeled = np.zeros(60, bool)
    labeled[np.random.default_rng(seed + 10).choice(60, 9, replace=False)] = True
    selection = make_strategy("badge", seeding=seeding).select(
        pool, labeled, 15, np.random.default_rng(seed)
    )
    g = gradient_embeddings(pool.embeddings, pool.probs)
    expected = naive_badge(g, labeled, 15, np.random.default_rng(seed), seeding == "skactiveml")
    assert selection.indices.tolist() == expected


def test_first_centre_is_the_largest_gradient_norm_and_details_say_why() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    # |p - onehot| = 0.5*sqrt2, 0.1*sqrt2, 0.4*sqrt2, 0.5*sqrt2; times |f| = 1, 2, 3, 1.
    selection = make_strategy("badge").select(
        Pool(embeddings=x, probs=p), np.zeros(4, bool), 1, np.random.default_rng(0)
    )
    assert selection.indices.tolist() == [2]
    assert selection.details[0] == {
        "reason": "badge",
        "gradient_norm": pytest.approx(1.2 * np.sqrt(2)),
        "distance": None,
    }
    assert selection.notes == ()


def test_a_copy_of_a_centre_is_never_drawn_and_the_distance_is_reported() -> None:
    x = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.5, 0.5]])
    g = gradient_embeddings(x, p)
    for seed in range(20):
        selection = make_strategy("badge").select(
            Pool(embeddings=x, probs=p), np.zeros(3, bool), 2, np.random.default_rng(seed)
        )
        assert selection.indices[0] in (0, 1)  # the tied largest norms
        assert selection.indices[1] == 2
        assert selection.details[1]["distance"] == pytest.approx(np.linalg.norm(g[2] - g[0]))


def test_later_centres_are_drawn_with_probability_proportional_to_d_squared() -> None:
    # Gradient factors by hand: the first centre is row 0 (largest norm); the other rows lie at
    # squared distances 1, 4 and 9 from it (|a|^2 = 2), so they are drawn with probability 1:4:9.
    a = np.array([[1.0, -1.0]] * 4)
    f = np.array([[10.0 - step / np.sqrt(2), 0.0] for step in range(4)])
    sq = gradient_sq_distances(a, f, 0)
    np.testing.assert_allclose(sq, [0.0, 1.0, 4.0, 9.0])
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(3000):
        chosen, at_pick, _ = kmeanspp_seeding(a, f, 2, rng)
        assert chosen[0] == 0 and np.isnan(at_pick[0])
        counts[chosen[1]] += 1
    np.testing.assert_allclose(counts / 3000, [0, 1 / 14, 4 / 14, 9 / 14], atol=0.03)


def test_skactiveml_seeding_never_draws_a_zero_gradient_point_badge_does() -> None:
    """A confident point (one-hot p, zero gradient) is at D = ||g_first|| from the first centre
    in BADGE's seeding, but at D = 0 in scikit-activeml's, which counts the origin as a centre."""
    x = np.array([[5.0, 0.0], [0.0, 1.0], [0.1, 0.0], [0.0, 0.1]])
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.6, 0.4], [0.4, 0.6]])
    pool = Pool(embeddings=x, probs=p)
    picks = {
        seeding: {
            int(
                make_strategy("badge", seeding=seeding)
                .select(pool, np.zeros(4, bool), 2, np.random.default_rng(s))
                .indices[1]
            )
            for s in range(20)
        }
        for seeding in ("badge", "skactiveml")
    }
    assert 1 in picks["badge"]
    assert 1 not in picks["skactiveml"]


def test_labeled_points_are_ignored_as_in_the_original_code() -> None:
    pool = random_pool(3)
    assert pool.embeddings is not None and pool.probs is not None
    labeled = np.zeros(60, bool)
    labeled[::3] = True
    rest = np.flatnonzero(~labeled)
    sub = Pool(embeddings=pool.embeddings[rest], probs=pool.probs[rest])
    full = make_strategy("badge").select(pool, labeled, 10, np.random.default_rng(4))
    alone = make_strategy("badge").select(sub, np.zeros(40, bool), 10, np.random.default_rng(4))
    assert full.indices.tolist() == rest[alone.indices].tolist()
    assert full.details == alone.details


def test_cold_start_draws_at_random_and_says_so() -> None:
    x = np.random.default_rng(0).normal(size=(30, 4))
    selection = make_strategy("badge").select(
        Pool(embeddings=x), np.zeros(30, bool), 5, np.random.default_rng(0)
    )
    assert selection.random_fallback
    assert selection.notes[0].startswith(COLD_START_NOTE)
    assert all(d == {"reason": "random"} for d in selection.details)
    labeled = np.zeros(30, bool)
    labeled[0] = True
    with pytest.raises(InputError, match="probs"):
        make_strategy("badge").select(Pool(embeddings=x), labeled, 5, np.random.default_rng(0))


def test_probabilities_without_features_are_refused() -> None:
    p = softmax(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(InputError, match="embeddings"):
        make_strategy("badge").select(
            Pool(probs=p), np.zeros(10, bool), 2, np.random.default_rng(0)
        )


def test_mc_samples_alone_are_averaged() -> None:
    pool = random_pool(5)
    assert pool.embeddings is not None and pool.probs is not None
    mc = np.stack([pool.probs, pool.probs])
    with_mc = make_strategy("badge").select(
        Pool(embeddings=pool.embeddings, mc_probs=mc),
        np.zeros(60, bool),
        8,
        np.random.default_rng(1),
    )
    with_probs = make_strategy("badge").select(
        pool, np.zeros(60, bool), 8, np.random.default_rng(1)
    )
    assert with_mc.indices.tolist() == with_probs.indices.tolist()


def test_all_zero_gradients_fall_back_to_uniform_draws_and_note_it() -> None:
    x = np.random.default_rng(0).normal(size=(12, 3))
    p = np.eye(3)[np.arange(12) % 3]  # one-hot: every gradient is zero
    selection = make_strategy("badge").select(
        Pool(embeddings=x, probs=p), np.zeros(12, bool), 4, np.random.default_rng(0)
    )
    assert len(set(selection.indices.tolist())) == 4
    assert "4 of 4 picks drawn uniformly" in selection.notes[0]
    assert not selection.random_fallback


def test_normalize_scales_every_feature_row_to_unit_length() -> None:
    pool = random_pool(6)
    assert pool.embeddings is not None and pool.probs is not None
    scaled = Pool(embeddings=pool.embeddings * np.arange(1, 61)[:, None], probs=pool.probs)
    unit = Pool(
        embeddings=pool.embeddings / np.linalg.norm(pool.embeddings, axis=1, keepdims=True),
        probs=pool.probs,
    )
    mask = np.zeros(60, bool)
    normalised = make_strategy("badge", normalize=True).select(
        scaled, mask, 9, np.random.default_rng(2)
    )
    plain = make_strategy("badge").select(unit, mask, 9, np.random.default_rng(2))
    assert normalised.indices.tolist() == plain.indices.tolist()


@pytest.mark.parametrize(
    ("params", "field"),
    [({"seeding": "kmeans"}, "badge.seeding"), ({"normalize": "yes"}, "badge.normalize")],
)
def test_bad_parameters_are_refused(params: dict[str, object], field: str) -> None:
    with pytest.raises(InputError, match=field):
        make_strategy("badge", **params)


def test_the_gradient_matrix_is_never_built() -> None:
    """n x (C*d) float64 would be 77 MB here; the factorised seeding needs O(n (C + d))."""
    rng = np.random.default_rng(0)
    n, d, classes = 3000, 64, 50
    pool = Pool(
        embeddings=rng.normal(size=(n, d)).astype(np.float32),
        probs=softmax(rng.normal(size=(n, classes))),
    )
    tracemalloc.start()
    try:
        make_strategy("badge").select(pool, np.zeros(n, bool), 20, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 15e6
