"""Differential tests: alsys's strategies against the peer libraries on the same inputs.

Oracles: scikit-activeml 1.0.1 (TypiClust, ProbCover, CoreSet, Badge) and batchbald-redux 2.0.5
(BatchBALD); both are in the ``dev`` extra. The data are continuous random draws, so no ties
arise where both sides break ties at random with their own generators. Where the algorithms
differ for real, the inputs are chosen so the comparison still means something (a fixed
clustering in both, one fixed delta, a non-empty labeled set), and a test pins each remaining
difference, asserting exactly what differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import toma
import torch
from batchbald_redux.batchbald import get_batchbald_batch
from skactiveml.base import SkactivemlClassifier
from skactiveml.pool import Badge, CoreSet, ProbCover, TypiClust
from skactiveml.pool._typi_clust import _typicality as skactiveml_typicality
from skactiveml.utils import check_random_state

from alsys.strategies import Pool, make_strategy, typicality
from alsys.strategies.badge import gradient_factors, gradient_sq_distances
from alsys.strategies.batchbald import batchbald_greedy
from alsys.strategies.probcover import DegenerateDeltaWarning
from tests.strategy_contract import softmax


def labels_for(mask: np.ndarray) -> np.ndarray:
    """scikit-activeml's ``y``: NaN marks unlabeled; the labeled values are never read."""
    y = np.full(mask.shape[0], np.nan)
    y[mask] = np.arange(mask.sum()) % 2
    return y


def labeled_mask(n: int, count: int, seed: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).choice(n, count, replace=False)] = True
    return mask


def float32_exact(x: np.ndarray) -> np.ndarray:
    """float64 values that float32 holds exactly: alsys's float32 features equal the peer's."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# --- CoreSet --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coreset_matches_skactiveml_coreset(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = float32_exact(rng.normal(size=(300, 6)))
    mask = labeled_mask(300, 10, seed)
    theirs = CoreSet(random_state=seed).query(x, labels_for(mask), batch_size=20)
    ours = make_strategy("coreset").select(Pool(embeddings=x), mask, 20, rng)
    assert ours.indices.tolist() == list(theirs)


def test_coreset_empty_labeled_set_differs_only_in_the_random_first_centre() -> None:
    """With nothing labeled, both draw the first centre at random, each with its own generator
    (scikit-activeml: argmax of uniform noise over all-zero utilities; alsys: ``rng.choice``),
    so the batches differ. Given scikit-activeml's first centre, alsys continues with exactly
    its remaining picks."""
    x = float32_exact(np.random.default_rng(7).normal(size=(200, 5)))
    empty = np.zeros(200, bool)
    theirs = list(CoreSet(random_state=7).query(x, labels_for(empty), batch_size=12))
    ours = make_strategy("coreset").select(Pool(embeddings=x), empty, 12, np.random.default_rng(7))
    assert ours.indices[0] != theirs[0]
    first = np.zeros(200, bool)
    first[theirs[0]] = True
    rest = make_strategy("coreset").select(Pool(embeddings=x), first, 11, np.random.default_rng(0))
    assert rest.indices.tolist() == theirs[1:]


# --- ProbCover ------------------------------------------------------------------------------


def skactiveml_probcover(
    x: np.ndarray, mask: np.ndarray, delta: float, budget: int, seed: int
) -> tuple[list[int], np.ndarray]:
    """One fixed delta (``deltas=[delta]``), so no clustering and no purity search: the warning
    that no purity was measured is expected."""
    with pytest.warns(UserWarning, match="maximum purity"):
        picks, utilities = ProbCover(deltas=[delta], random_state=seed).query(
            x, labels_for(mask), batch_size=budget, return_utilities=True
        )
    return list(picks), utilities


@pytest.mark.parametrize("seed", [10, 22])
def test_probcover_matches_skactiveml_probcover_with_one_fixed_delta(seed: int) -> None:
    """Coverage gains are integers, so ties are common; these pools (found by search) have a
    unique largest gain at every step, so the whole batches are compared."""
    rng = np.random.default_rng(seed)
    x = float32_exact(rng.normal(size=(400, 3)))
    empty = np.zeros(400, bool)
    delta, budget = 1.0, 8
    theirs, utilities = skactiveml_probcover(x, empty, delta, budget, seed)
    for step in range(budget):  # precondition: no tie-break is compared
        gains = utilities[step][~np.isnan(utilities[step])]
        assert (gains == gains.max()).sum() == 1
    ours = make_strategy("probcover", delta=delta, normalize=False).select(
        Pool(embeddings=x), empty, budget, rng
    )
    assert ours.indices.tolist() == theirs
    newly = [d["newly_covered"] for d in ours.details]
    assert newly == [int(utilities[s][theirs[s]]) for s in range(budget)]


@pytest.mark.parametrize(("seed", "labeled"), [(0, 0), (1, 15), (2, 40)])
def test_probcover_picks_are_skactiveml_maximisers_step_by_step(seed: int, labeled: int) -> None:
    """Where gains tie, each side draws among the tied points with its own generator. So each
    alsys pick is checked against scikit-activeml's gains given the same state (the labeled
    points plus alsys's earlier picks): it must be one of their maximisers, with their gain."""
    rng = np.random.default_rng(seed)
    x = float32_exact(rng.normal(size=(400, 3)))
    mask = labeled_mask(400, labeled, seed)
    delta, budget = 0.6, 8
    ours = make_strategy("probcover", delta=delta, normalize=False).select(
        Pool(embeddings=x), mask, budget, rng
    )
    state = mask.copy()
    for pick, detail in zip(ours.indices, ours.details, strict=True):
        _, utilities = skactiveml_probcover(x, state, delta, 1, seed)
        gains = np.nan_to_num(utilities[0], nan=-1.0)
        assert gains[pick] == gains.max() == detail["newly_covered"]
        state[pick] = True


def test_probcover_ball_boundary_strict_in_alsys_inclusive_in_skactiveml() -> None:
    """alsys's ball holds the points at distance < delta (the reference code's faiss range
    search); scikit-activeml's holds those at distance <= delta. With points exactly delta
    apart, scikit-activeml's ball around 1 covers {0, 1, 2} and is taken first; alsys's covers
    only 1 itself, and alsys takes a point of the pair {10, 10.5} (2 points within delta)."""
    x = np.array([[0.0], [1.0], [2.0], [10.0], [10.5]])
    empty = np.zeros(5, bool)
    theirs, utilities = skactiveml_probcover(x, empty, 1.0, 1, 0)
    assert utilities[0].tolist() == [2, 3, 2, 2, 2]
    assert theirs == [1]
    with pytest.warns(DegenerateDeltaWarning):
        ours = make_strategy("probcover", delta=1.0, normalize=False).select(
            Pool(embeddings=x), empty, 1, np.random.default_rng(0)
        )
    assert ours.indices[0] in (3, 4)
    assert ours.details[0]["newly_covered"] == 2


# --- TypiClust ------------------------------------------------------------------------------


class FixedClusters:
    """A cluster algorithm for scikit-activeml's TypiClust that returns a given assignment."""

    def __init__(self, n_clusters: int, assignment: np.ndarray) -> None:
        self.n_clusters = n_clusters
        self.assignment = assignment

    def fit_predict(self, x: np.ndarray) -> np.ndarray:
        assert self.n_clusters == int(self.assignment.max()) + 1  # |L| + b, as alsys's
        return self.assignment


def clustered_pool(seed: int, sizes: list[int], dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs of the given sizes; the blob ids are the clustering both sides use."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    centres = rng.normal(size=(len(sizes), dim)) * 4
    return float32_exact(centres[ids] + rng.normal(size=(ids.shape[0], dim))), ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typiclust_matches_skactiveml_typiclust_on_the_same_clusters(seed: int) -> None:
    """Both: |L| + b clusters, clusters holding a labeled point are visited last, the rest by
    size (largest first, one pick each), the pick is the candidate of highest typicality with
    K = 5 Euclidean neighbours. alsys runs with ``distance="euclidean"`` (scikit-activeml's;
    alsys's default is the reference code's squared distance) and raw features (alsys
    normalises by default); every cluster has more than 2K points, so both use K = 5 (see
    the next test)."""
    sizes = [12, 14, 16, 18, 20, 22, 24, 26, 28, 30]  # distinct: no ties in the size order
    x, clusters = clustered_pool(seed, sizes)
    n, budget = x.shape[0], 6
    mask = np.zeros(n, bool)  # four labeled points in three clusters: seven stay uncovered
    for cluster, count in ((0, 2), (5, 1), (9, 1)):
        mask[np.flatnonzero(clusters == cluster)[:count]] = True
    theirs = TypiClust(
        cluster_algo=FixedClusters,
        cluster_algo_dict={"assignment": clusters},
        k=5,
        random_state=seed,
    ).query(x, labels_for(mask), batch_size=budget)
    ours = make_strategy("typiclust", k_neighbors=5, distance="euclidean", normalize=False).select(
        Pool(embeddings=x, clusters=clusters), mask, budget, np.random.default_rng(seed)
    )
    assert ours.indices.tolist() == list(theirs)
    assert [d["cluster"] for d in ours.details] == [8, 7, 6, 4, 3, 2]


def test_typiclust_neighbour_count_and_epsilon_differ_from_skactiveml() -> None:
    """Two differences remain. (1) K: alsys caps it at half the cluster's candidates, as the
    reference code (``min(K_NN, len // 2)``); scikit-activeml at all but one. On a 6-point
    cluster with K = 5, alsys ranks by the 3 nearest neighbours and scikit-activeml by all 5,
    and here they pick different points. (2) The epsilon: alsys 1 / (mean + 1e-5), as the
    reference code; scikit-activeml K / (sum + 1e-7), i.e. 1 / (mean + 1e-7 / K). Both are
    decreasing in the mean distance, so (2) never changes a pick."""
    x = float32_exact(np.random.default_rng(3).normal(size=(6, 2)))
    one = np.zeros(6, dtype=np.int64)
    theirs = TypiClust(
        cluster_algo=FixedClusters, cluster_algo_dict={"assignment": one}, k=5, random_state=0
    ).query(x, labels_for(np.zeros(6, bool)), batch_size=1)
    ours = make_strategy("typiclust", k_neighbors=5, distance="euclidean", normalize=False).select(
        Pool(embeddings=x, clusters=one), np.zeros(6, bool), 1, np.random.default_rng(0)
    )
    assert int(np.argmax(typicality(x, 3, "euclidean"))) == ours.indices[0]
    assert int(np.argmax(typicality(x, 5, "euclidean"))) == theirs[0]
    assert ours.indices[0] != theirs[0]
    sk = skactiveml_typicality(x, np.arange(6), 5)
    np.testing.assert_allclose(
        1 / sk - 1e-7 / 5, 1 / typicality(x, 5, "euclidean") - 1e-5, rtol=1e-6
    )


# --- BADGE ----------------------------------------------------------------------------------


class FixedOutputs(SkactivemlClassifier):
    """A 'classifier' whose output for row i (X = [[i], ...]) is (probs[i], features[i]), so
    scikit-activeml's Badge sees exactly the probabilities and embeddings alsys gets."""

    def __init__(
        self,
        probs: np.ndarray | None = None,
        features: np.ndarray | None = None,
        classes: Any = None,
        missing_label: Any = np.nan,
    ) -> None:
        super().__init__(classes=classes, missing_label=missing_label)
        self.probs = probs
        self.features = features

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FixedOutputs:
        return self

    def predict_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        assert self.probs is not None and self.features is not None
        rows = np.asarray(X)[:, 0].astype(int)
        return self.probs[rows], self.features[rows]


def badge_inputs(seed: int, n: int = 150, d: int = 6, classes: int = 4) -> Pool:
    rng = np.random.default_rng(seed)
    return Pool(
        embeddings=rng.normal(size=(n, d)), probs=softmax(rng.normal(size=(n, classes)) * 2)
    )


def skactiveml_badge(
    pool: Pool, mask: np.ndarray, budget: int, seed: int
) -> tuple[list[int], np.ndarray]:
    clf = FixedOutputs(pool.probs, pool.embeddings, classes=np.arange(2))
    rows = np.arange(pool.n, dtype=np.float64)[:, None]
    picks, utilities = Badge(random_state=seed).query(
        rows, labels_for(mask), clf, fit_clf=False, batch_size=budget, return_utilities=True
    )
    return list(picks), utilities


def skactiveml_stream(seed: int, mask: np.ndarray) -> np.random.Generator:
    """A Generator on the very MT19937 stream scikit-activeml's query draws from: its
    ``random_state_`` reseeded with (#unlabeled + 1) as multiplier (``_validate_data``)."""
    state = check_random_state(seed, int((~mask).sum()) + 1).get_state(legacy=False)
    bits = np.random.MT19937()
    bits.state = state
    return np.random.Generator(bits)


@pytest.mark.parametrize(("seed", "labeled"), [(0, 0), (1, 10), (2, 30)])
def test_badge_matches_skactiveml_badge_with_its_seeding(seed: int, labeled: int) -> None:
    """Same first centre (largest gradient norm), same D^2 draws: one uniform per draw against
    the normalised cumulative D^2 on the same random stream, so the batches are identical."""
    pool = badge_inputs(seed)
    mask = labeled_mask(pool.n, labeled, seed)
    theirs, _ = skactiveml_badge(pool, mask, 20, seed)
    ours = make_strategy("badge", seeding="skactiveml").select(
        pool, mask, 20, skactiveml_stream(seed, mask)
    )
    assert ours.indices.tolist() == theirs


def test_badge_default_d2_differs_from_skactiveml_by_the_origin_centre() -> None:
    """scikit-activeml's D^2 keeps its first step's ||g||^2 (distance to the zero gradient) in
    the running minimum, so after the first centre c its D^2 is min(||g||^2, ||g - g_c||^2);
    the original code's (alsys's default) is ||g - g_c||^2. The first centre is the same."""
    pool = badge_inputs(4)
    empty = np.zeros(pool.n, bool)
    theirs, utilities = skactiveml_badge(pool, empty, 2, 4)
    assert pool.embeddings is not None and pool.probs is not None
    a, f = gradient_factors(pool.embeddings, pool.probs)
    norms_sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", f, f)
    assert theirs[0] == int(np.argmax(norms_sq))
    to_first = gradient_sq_distances(a, f, theirs[0])
    capped = np.minimum(norms_sq, to_first)
    step2 = utilities[1].copy()
    assert np.isnan(step2[theirs[0]])
    step2[theirs[0]] = 0.0
    np.testing.assert_allclose(step2, capped / capped.sum(), atol=1e-12)
    assert np.abs(step2 - to_first / to_first.sum()).max() > 1e-3
    ours = make_strategy("badge").select(pool, empty, 2, np.random.default_rng(0))
    assert ours.indices[0] == theirs[0]


# --- BatchBALD ------------------------------------------------------------------------------


def mc_samples(seed: int, n: int = 40, k: int = 10, classes: int = 3) -> np.ndarray:
    """(K, n, C) MC-dropout-like samples: a per-point mean plus per-sample noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 1.5
    return softmax(logits[None] + rng.normal(size=(k, n, classes)))


@pytest.fixture(autouse=True)
def no_collect_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """batchbald-redux chunks its work with toma, which runs a full ``gc.collect()`` (to free
    CUDA memory) around every chunk: 0.2 s each in a test process, 2 s a batch. It changes no
    result, so it is skipped here."""
    monkeypatch.setattr(toma, "gc_cuda", lambda: None)


def redux_batch(mc: np.ndarray, budget: int, num_samples: int) -> tuple[list[int], list[float]]:
    log_probs = torch.from_numpy(np.log(mc).transpose(1, 0, 2).copy())  # (n, K, C)
    batch = get_batchbald_batch(log_probs, budget, num_samples, dtype=torch.double)
    return batch.indices, batch.scores


@pytest.mark.parametrize(("seed", "labeled"), [(0, 0), (1, 8)])
def test_batchbald_matches_batchbald_redux_where_both_are_exact(seed: int, labeled: int) -> None:
    """C^b <= M: both enumerate every class configuration, no sampling on either side."""
    mc = mc_samples(seed)
    mask = labeled_mask(40, labeled, seed)
    candidates = np.flatnonzero(~mask)
    budget = 5
    their_pos, their_scores = redux_batch(mc[:, candidates], budget, 10_000)
    ours = make_strategy("batchbald", num_samples=10_000).select(
        Pool(mc_probs=mc), mask, budget, np.random.default_rng(seed)
    )
    assert ours.indices.tolist() == candidates[their_pos].tolist()
    np.testing.assert_allclose([d["score"] for d in ours.details], their_scores, atol=1e-9)


def test_batchbald_switches_to_sampling_one_step_before_batchbald_redux() -> None:
    """batchbald-redux computes a step exactly while the batch so far has C^|A| <= M
    configurations; alsys while C^|A| * C <= M (the configurations the candidate step itself
    enumerates). At M = C^(b-1) redux's last step is still exact (the torch generator is
    untouched) while alsys's is sampled (its rng is drawn from); the steps before agree."""
    mc = mc_samples(5)
    budget, classes = 3, mc.shape[2]
    m = classes ** (budget - 1)
    torch_state = torch.get_rng_state()
    their_pos, their_scores = redux_batch(mc, budget, m)
    assert torch.equal(torch.get_rng_state(), torch_state)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    chosen, gains = batchbald_greedy(mc, budget, rng, m)
    assert rng.bit_generator.state != before
    assert chosen[:2].tolist() == their_pos[:2]
    np.testing.assert_allclose(gains[:2], their_scores[:2], atol=1e-9)
    rng = np.random.default_rng(0)
    exact, exact_gains = batchbald_greedy(mc, budget, rng, m * classes)
    assert rng.bit_generator.state == before
    assert exact.tolist() == their_pos
    np.testing.assert_allclose(exact_gains, their_scores, atol=1e-9)
