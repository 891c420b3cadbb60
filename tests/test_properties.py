"""Property tests (hypothesis) on the scoring functions behind the strategies: typicality,
SUP, margin, and the coverage gains of ProbCover's and MaxHerding's greedy.

Each property holds for every input the strategies may see, not only for the hand-built cases
of the strategies' own tests.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alsys.strategies import (
    coverage_graph,
    herding_greedy,
    kernel_coverage,
    margin_scores,
    sup_scores,
    typicality,
)
from alsys.strategies.probcover import covered_by, probcover_greedy

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Coordinates of moderate size: float32 distances of such points are exact to ~1e-6 relative.
COORDINATE = st.floats(-4, 4, allow_nan=False, width=32)


@st.composite
def points(draw: st.DrawFn, min_rows: int = 3, max_rows: int = 24) -> np.ndarray:
    """(n, d) float32 points, pairwise distinct (a jitter per row keeps them apart)."""
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, 6))
    x = draw(arrays(np.float32, (n, d), elements=COORDINATE))
    return (x + np.arange(n, dtype=np.float32)[:, None] * 1e-2).astype(np.float32)


@st.composite
def probabilities(draw: st.DrawFn) -> np.ndarray:
    """(n, C) rows of class probabilities."""
    n, c = draw(st.integers(1, 20)), draw(st.integers(2, 6))
    raw = draw(arrays(np.float64, (n, c), elements=st.floats(1e-3, 1.0)))
    return raw / raw.sum(axis=1, keepdims=True)


# Typicality is 1 / (m + EPS), m the mean distance to the K nearest neighbours (eq. 2.11).
EPS = 1e-5


def mean_distance(typ: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / typ - EPS)


@SETTINGS
@given(points(), st.data())
def test_typicality_is_positive_and_follows_its_point(x: np.ndarray, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, x.shape[0] - 1))
    typ = typicality(x, k)
    assert typ.shape == (x.shape[0],) and np.all(typ > 0) and np.all(np.isfinite(typ))
    order = data.draw(st.permutations(range(x.shape[0])))
    moved = mean_distance(typicality(x[order], k))
    np.testing.assert_allclose(moved, mean_distance(typ)[order], rtol=1e-4, atol=1e-4)


@SETTINGS
@given(points(), st.sampled_from(["sqeuclidean", "euclidean"]), st.data())
def test_typicality_does_not_move_with_the_points_and_scales_with_them(
    x: np.ndarray, distance: str, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, x.shape[0] - 1))
    m = mean_distance(typicality(x, k, distance))
    shift = np.asarray(data.draw(arrays(np.float32, x.shape[1], elements=COORDINATE)))
    shifted = mean_distance(typicality(x + shift, k, distance))
    # float32 distances of points up to 8 apart: within ~1e-4 of exact, absolutely.
    np.testing.assert_allclose(
        shifted, m, rtol=1e-4, atol=2e-3 if distance == "euclidean" else 1e-4
    )
    # Twice as spread out: each distance doubles (squared ones quadruple), exactly in binary.
    power = 1 if distance == "euclidean" else 2
    np.testing.assert_allclose(
        mean_distance(typicality(2 * x, k, distance)), 2**power * m, rtol=1e-4, atol=1e-4
    )


@st.composite
def clustered(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Points, k >= 2 centres, and the cluster the points are scored in."""
    x = draw(points(min_rows=1, max_rows=12))
    centres = draw(arrays(np.float32, (draw(st.integers(2, 5)), x.shape[1]), elements=COORDINATE))
    centres = centres + np.arange(centres.shape[0], dtype=np.float32)[:, None]  # distinct
    return x, centres, draw(st.integers(0, centres.shape[0] - 1))


def _apart(x: np.ndarray, centres: np.ndarray, cluster: int) -> bool:
    """No point on another cluster's centre (SUP is 1 / a distance to those)."""
    others = np.delete(centres, cluster, axis=0).astype(np.float64)
    gaps = np.linalg.norm(x[:, None, :].astype(np.float64) - others[None], axis=2)
    return bool(gaps.min() > 0.1)


@SETTINGS
@given(clustered(), st.floats(0.05, 10), st.data())
def test_sup_is_positive_and_ignores_how_the_other_centres_are_listed(
    case: tuple[np.ndarray, np.ndarray, int], temperature: float, data: st.DataObject
) -> None:
    x, centres, cluster = case
    assume(_apart(x, centres, cluster))
    sup = sup_scores(x, centres, cluster, temperature)
    assert sup.shape == (x.shape[0],) and np.all(sup > 0)
    # Eq. 5.1-5.2 sum over the other centres: their order does not matter.
    order = data.draw(st.permutations(range(centres.shape[0])))
    moved = sup_scores(x, centres[order], order.index(cluster), temperature)
    np.testing.assert_allclose(moved, sup, rtol=1e-6)


@SETTINGS
@given(clustered(), st.floats(0.05, 10), st.floats(0.25, 4))
def test_sup_moves_with_scale_and_not_with_translation(
    case: tuple[np.ndarray, np.ndarray, int], temperature: float, scale: float
) -> None:
    x, centres, cluster = case
    assume(_apart(x, centres, cluster))
    sup = sup_scores(x, centres, cluster, temperature)
    shift = np.float32(1.5)
    np.testing.assert_allclose(
        sup_scores(x + shift, centres + shift, cluster, temperature), sup, rtol=1e-4
    )
    # Distances scale with the space; the weights stay if T scales with them: SUP / scale.
    scaled = sup_scores(x * scale, centres * scale, cluster, temperature * scale)
    np.testing.assert_allclose(scaled, sup / scale, rtol=1e-4)


@SETTINGS
@given(probabilities(), st.data())
def test_margin_is_the_top_two_gap_whatever_the_class_order(
    probs: np.ndarray, data: st.DataObject
) -> None:
    margin = margin_scores(probs)
    top = np.sort(probs, axis=1)
    np.testing.assert_allclose(margin, top[:, -1] - top[:, -2], atol=1e-12)
    assert np.all((margin >= 0) & (margin <= 1))
    order = data.draw(st.permutations(range(probs.shape[1])))
    np.testing.assert_allclose(margin_scores(probs[:, order]), margin, atol=1e-12)


@SETTINGS
@given(probabilities())
def test_margin_grows_as_the_top_class_takes_from_the_runner_up(probs: np.ndarray) -> None:
    ranked = np.argsort(probs, axis=1)
    rows = np.arange(probs.shape[0])
    moved = probs.copy()
    step = 0.5 * moved[rows, ranked[:, -2]]
    moved[rows, ranked[:, -1]] += step
    moved[rows, ranked[:, -2]] -= step
    assert np.all(margin_scores(moved) >= margin_scores(probs) - 1e-12)


@st.composite
def coverage_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Unit-norm points, a labeled mask and a budget within the unlabeled points."""
    x = draw(points(min_rows=4, max_rows=30))
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-6)
    labeled = np.asarray(draw(arrays(np.bool_, x.shape[0])))
    labeled[0] = False  # at least one point to pick
    budget = draw(st.integers(1, int((~labeled).sum())))
    return x.astype(np.float32), labeled, budget


@SETTINGS
@given(coverage_case(), st.floats(0.05, 1.5), st.integers(0, 2**32 - 1))
def test_probcover_gains_never_grow_and_add_up_to_what_is_covered(
    case: tuple[np.ndarray, np.ndarray, int], delta: float, seed: int
) -> None:
    x, labeled, budget = case
    graph = coverage_graph(x, delta)
    chosen, gains = probcover_greedy(graph, labeled, budget, np.random.default_rng(seed))
    assert np.all(np.diff(gains) <= 0), "coverage is submodular: a greedy gain never grows"
    picked = labeled.copy()
    picked[chosen] = True
    newly = covered_by(graph, picked).sum() - covered_by(graph, labeled).sum()
    assert gains.sum() == newly and not labeled[chosen].any()


@SETTINGS
@given(coverage_case(), st.floats(0.2, 1.5), st.integers(0, 2**32 - 1))
def test_herding_gains_never_grow_and_add_up_to_the_coverage(
    case: tuple[np.ndarray, np.ndarray, int], bandwidth: float, seed: int
) -> None:
    x, labeled, budget = case
    result = herding_greedy(x, labeled, budget, np.random.default_rng(seed), bandwidth)
    assert np.all(result.gains >= -1e-12)
    # Lazy greedy on a submodular coverage: each gain at most the one before (ties are within
    # the greedy's relative tolerance).
    assert np.all(np.diff(result.gains) <= 1e-9 * max(1.0, float(result.gains.max())))
    sources = np.concatenate([np.flatnonzero(labeled), result.chosen])
    exact = kernel_coverage(x, sources, bandwidth)
    np.testing.assert_allclose(result.coverage[-1], exact, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        result.coverage_before + np.cumsum(result.gains), result.coverage, rtol=1e-6, atol=1e-9
    )
