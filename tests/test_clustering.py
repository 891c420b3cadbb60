from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from alsys.errors import InputError
from alsys.strategies import kmeans
from alsys.strategies.clustering import cluster_order, rounded
from alsys.strategies.kmeans import LLOYD_TOL, Clustering, clustering_from_assignment, inertia
from alsys.strategies.kmeans_steps import hartigan_moves, lloyd
from tests.conftest import blobs, zipf_pool


def test_kmeans_recovers_separated_blobs(rng: np.random.Generator) -> None:
    x, ids = blobs(rng, n_per_blob=50, n_blobs=6, dim=16)
    result = kmeans(x, 6, np.random.default_rng(0))
    assert adjusted_rand_score(ids, result.assignment) == 1.0


def test_kmeans_is_deterministic_for_a_seed(rng: np.random.Generator) -> None:
    x = rng.normal(size=(600, 12)).astype(np.float32)
    a = kmeans(x, 20, np.random.default_rng(7))
    b = kmeans(x, 20, np.random.default_rng(7))
    np.testing.assert_array_equal(a.assignment, b.assignment)
    np.testing.assert_array_equal(a.centres, b.centres)


def sphere_blobs(n_blobs: int, dim: int, size: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal, well-separated Gaussian blobs around random unit vectors, L2-normalised."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_blobs, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = np.repeat(np.arange(n_blobs), size)
    x = centres[ids] + rng.normal(size=(ids.shape[0], dim)) * spread
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), ids


def digits_pixels() -> np.ndarray:
    """The 1,797 raw 8x8 digits images, L2-normalised: a fixed real pool."""
    x = load_digits().data.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mixture_pool(n: int, dim: int) -> np.ndarray:
    """100 overlapping Gaussian blobs, L2-normalised (benchmarks/selection.py's pool, smaller)."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(100, dim))
    x = centres[rng.integers(0, 100, n)] * 0.35 + rng.normal(size=(n, dim)) * (3.0 / dim**0.5)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_restarts_recover_blobs_that_a_single_run_misses() -> None:
    x, ids = sphere_blobs(n_blobs=40, dim=12, size=30, spread=0.06)
    single = [kmeans(x, 40, np.random.default_rng(s), restarts=1) for s in range(10)]
    restarted = [kmeans(x, 40, np.random.default_rng(s)) for s in range(10)]
    # A single k-means++ run merges two blobs and splits another for some seeds...
    assert any(adjusted_rand_score(ids, c.assignment) < 1 for c in single)
    # ...and the best of 10 restarts recovers every blob for every seed.
    assert all(adjusted_rand_score(ids, c.assignment) == 1 for c in restarted)
    assert all(c.inertia is not None and c.inertia > 0 for c in restarted)


# The larger cases take several seconds each: CI runs them (-m ""), the default run the rest.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("pool", "k"),
    [
        ("digits", 10),
        pytest.param("digits", 50, marks=SLOW),
        ("mixture", 10),
        pytest.param("mixture", 50, marks=SLOW),
    ],
)
def test_kmeans_inertia_not_above_sklearn_kmeans_with_ten_restarts(pool: str, k: int) -> None:
    """The reference ran scikit-learn's KMeans when n_init was 10: that is the bar."""
    x = digits_pixels() if pool == "digits" else mixture_pool(3000, 32)
    ours = np.median([kmeans(x, k, np.random.default_rng(s)).inertia for s in range(5)])
    theirs = np.median([KMeans(k, n_init=10, random_state=s).fit(x).inertia_ for s in range(5)])
    assert ours <= theirs * (1 + 1e-4)


@pytest.mark.parametrize(
    ("pool", "k"),
    [
        ("digits", 80),
        pytest.param("digits", 200, marks=SLOW),
        pytest.param("mixture", 100, marks=SLOW),
        ("zipf", 100),
    ],
)
def test_kmeans_above_50_clusters_not_above_minibatch(pool: str, k: int) -> None:
    """Above 50 clusters the reference ran MiniBatchKMeans (n_init=3, batches of 5000); the
    Zipf pool is lopsided (one group of about a fifth of it, most of a handful)."""
    pools = {"digits": digits_pixels, "mixture": lambda: mixture_pool(6000, 32), "zipf": zipf_pool}
    x = pools[pool]()
    ours = np.median([kmeans(x, k, np.random.default_rng(s)).inertia for s in range(5)])
    theirs = np.median(
        [
            MiniBatchKMeans(k, n_init=3, batch_size=5000, random_state=s).fit(x).inertia_
            for s in range(5)
        ]
    )
    assert ours <= theirs


def test_kmeans_reports_its_inertia_and_how_it_ran(rng: np.random.Generator) -> None:
    x, _ = blobs(rng, n_per_blob=30, n_blobs=4, dim=8)
    result = kmeans(x, 4, np.random.default_rng(0))
    assert result.inertia == pytest.approx(inertia(x, result), rel=1e-6)
    assert result.describe() == (
        "k-means: 10 restarts x (k-means++, <= 20 Lloyd iterations), the best then Hartigan "
        "moves, "
        f"4 clusters, inertia {result.inertia:.6g}"
    )
    many = kmeans(x, 60, np.random.default_rng(0), restarts=3)
    assert many.describe().startswith("k-means: 1 run (k-means++, <= 20 Lloyd iterations, Hartigan")
    # Where Hartigan's moves end the clustering, the inertia is theirs, from the float64 sums
    # they keep: the restarts finished over every point of a sampled pool, and above 50 clusters.
    assert many.inertia == pytest.approx(inertia(x, many), rel=1e-6)
    large, _ = blobs(rng, n_per_blob=1500, n_blobs=4, dim=8)
    sampled = kmeans(large, 4, np.random.default_rng(0))
    assert "sampled points" in sampled.method
    assert sampled.inertia == pytest.approx(inertia(large, sampled), rel=1e-6)
    with pytest.raises(InputError, match=r"kmeans\.restarts"):
        kmeans(x, 4, np.random.default_rng(0), restarts=0)


def test_hartigan_moves_only_lower_the_inertia_and_end_at_a_lloyd_fixed_point() -> None:
    x = mixture_pool(1500, 16)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        init = x[rng.choice(x.shape[0], 30, replace=False)]
        start, centres = lloyd(x, init, 3, 0)
        before = inertia(x, clustering_from_assignment(x, start))
        labels, means, _ = hartigan_moves(x, start, centres)
        after = Clustering(labels, means)
        assert inertia(x, after) < before
        np.testing.assert_allclose(means, clustering_from_assignment(x, labels).centres, atol=1e-6)
        nearest = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
        assert (nearest == labels).mean() > 0.999  # ties in float32 aside


def test_precomputed_assignment_is_relabelled_with_means() -> None:
    x = np.array([[0, 0], [2, 0], [10, 10], [12, 10]], np.float32)
    result = clustering_from_assignment(x, np.array([7, 7, 3, 3]))
    assert result.assignment.tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(result.centres, [[11, 10], [1, 0]])


def test_cluster_order_prefers_unlabeled_then_large_and_drops_small() -> None:
    assignment = np.array([0] * 10 + [1] * 20 + [2] * 8 + [3] * 3)
    labeled = np.zeros(assignment.shape[0], bool)
    labeled[10] = True  # cluster 1 has one label
    eligible, small = cluster_order(assignment, labeled, 5, np.random.default_rng(0))
    assert eligible.tolist() == [0, 2, 1]
    assert small.tolist() == [3]


def test_hartigan_moves_stop_at_the_tolerance_on_a_large_pool_without_structure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On more than HARTIGAN_TOL_POINTS points of no structure the moves stop once a pass gains
    less than HARTIGAN_TOL of the inertia: far fewer passes (counted by their screening GEMMs),
    for an inertia within 0.1 % of running them to the end."""
    from alsys.strategies import kmeans_steps

    rng = np.random.default_rng(0)
    x = rng.standard_normal((kmeans_steps.HARTIGAN_TOL_POINTS + 3000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # even on the sphere: no structure
    start, centres = lloyd(x, x[rng.choice(x.shape[0], 10, replace=False)], 20, 0)
    passes = []
    screen = kmeans_steps.sqdist
    monkeypatch.setattr(kmeans_steps, "sqdist", lambda a, c: passes.append(1) or screen(a, c))
    results = {}
    for name, floor in (("tolerance", kmeans_steps.HARTIGAN_TOL_POINTS), ("to the end", 10**9)):
        monkeypatch.setattr(kmeans_steps, "HARTIGAN_TOL_POINTS", floor)
        passes.clear()
        total = kmeans_steps.hartigan_moves(x, start, centres)[2]
        results[name] = (len(passes), total)
    (stopped, stopped_total), (full, full_total) = results.values()
    assert full == kmeans_steps.HARTIGAN_MAX_PASSES and stopped < full / 2, (stopped, full)
    assert full_total <= stopped_total <= 1.001 * full_total
    assert stopped_total < inertia(x, clustering_from_assignment(x, start))


# fmt: off
ROUNDING_EDGES = np.array([
    0.0, -0.0, 1.0, 10.0, 1e5, 1e6, 1e22, 1e23, 1e-22, 1e-23, 0.1234565, 1234565.0, 9.999995,
    999999.5, 999999.49999, 1e-320, 5e-324, 1.7976931348623157e308, np.inf, -np.inf, np.nan,
])
# fmt: on


def test_record_rounding_equals_formatting_each_value() -> None:
    """rounded() (vectorised) gives float(f"{v:.6g}") for every value: magnitudes over 600
    decades, typicality-like values, values already at 7 digits (many near a rounding tie),
    integers, float32 values, and the edges (0, -0, powers of ten, ties, subnormals, the largest
    double, inf, NaN)."""
    rng = np.random.default_rng(0)
    families = [
        10 ** rng.uniform(-300, 300, 20_000) * rng.choice([-1, 1], 20_000),
        1.0 / (rng.random(20_000) * 3 + 1e-5),
        np.round(rng.random(20_000), 7),
        rng.integers(0, 10**12, 20_000).astype(np.float64),
        rng.random(20_000).astype(np.float32).astype(np.float64),
        ROUNDING_EDGES,
    ]
    for values in families:
        got = rounded(values)
        assert got is not None
        expected = [float(f"{v:.6g}") for v in values.tolist()]
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert g == e or (np.isnan(g) and np.isnan(e)), (g, e)
    assert rounded(None) is None


@pytest.mark.parametrize("pool", ["blobs", "zipf", "duplicates", "no structure"])
def test_pruned_kmeans_pp_draws_the_seeds_of_reading_every_point(
    pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large single seeding skips the points no trial centre can come nearer; its seeds are
    those of the seeding that reads every point, and on grouped pools most steps read few."""
    from alsys.strategies import kmeans_steps

    rng = np.random.default_rng(3)
    if pool == "blobs":
        x = blobs(rng, n_per_blob=60, n_blobs=50, dim=32)[0]
    elif pool == "zipf":
        x = zipf_pool(3000)
    elif pool == "duplicates":
        x = blobs(rng, n_per_blob=60, n_blobs=50, dim=32)[0]
        x[::10] = x[1::10]  # 10 % exact duplicates
    else:
        x = rng.normal(size=(3000, 32)).astype(np.float32)
    k, trials = 200, 2 + int(np.log(200))
    everything = kmeans_steps.kmeans_pp_seeds(x, None, k, np.random.default_rng(0), 1, trials)
    full_reads = []
    dots = kmeans_steps.dots
    monkeypatch.setattr(
        kmeans_steps,
        "dots",
        lambda *a: full_reads.append(1) or dots(*a),  # type: ignore[func-returns-value]
    )
    pruned = kmeans_steps.kmeans_pp_pruned(x, k, np.random.default_rng(0), trials)
    np.testing.assert_array_equal(pruned, everything)
    if pool == "blobs":
        assert len(full_reads) < k // 2  # once every blob has a centre, steps read few points
    if pool == "no structure":
        assert len(full_reads) > k // 2  # nothing to skip: it reads every point


def test_restarts_kept_after_a_few_iterations_are_those_of_lowest_inertia() -> None:
    """lloyd_numpy_runs(keep=(3, 3)): after 3 iterations the 3 runs of lowest inertia go on,
    each as it would alone; the others end as they stood after those 3 iterations."""
    from alsys.strategies import kmeans_steps

    x = zipf_pool(3000, seed=1)
    rng = np.random.default_rng(0)
    inits = kmeans_steps.kmeans_pp(x, 20, rng, 10)
    early = kmeans_steps.lloyd_numpy_runs(x, inits, 3)
    squares = kmeans_steps.sum_of_squares(x)
    scores = [kmeans_steps.inertia_from_sums(squares, s, c) for _, _, s, c in early]
    kept = set(np.argsort(scores, kind="stable")[:3].tolist())
    full = kmeans_steps.lloyd_numpy_runs(x, inits, 20)
    narrowed = kmeans_steps.lloyd_numpy_runs(x, inits, 20, keep=(3, 3))
    assert any(not np.array_equal(full[r][0], early[r][0]) for r in kept), "runs went on"
    for r in range(10):
        expected = full[r] if r in kept else early[r]
        np.testing.assert_array_equal(narrowed[r][0], expected[0])


def test_lloyd_tolerance_stops_early_above_the_size_floor_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above 50 clusters on more than HARTIGAN_TOL_POINTS points, Lloyd's iterations end at one
    that gains less than LLOYD_TOL of the inertia: fewer iterations (counted by their GEMMs),
    an inertia within 0.1 % of the capped run's. Smaller pools (digits) iterate as before."""
    from alsys.strategies import kmeans_steps

    rng = np.random.default_rng(0)
    x = rng.standard_normal((kmeans_steps.HARTIGAN_TOL_POINTS + 3000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # no structure: Lloyd settles slowly
    # Measured: the 15th iteration gains 9e-5 of the inertia, the 20th still 6e-5.
    init = x[rng.choice(x.shape[0], 60, replace=False)]
    gemms = []
    nearest = kmeans_steps.nearest_runs
    monkeypatch.setattr(kmeans_steps, "nearest_runs", lambda a, c: gemms.append(1) or nearest(a, c))
    results = {}
    for tol in (LLOYD_TOL, 0.0):
        gemms.clear()
        assignment, centres = kmeans_steps.lloyd_numpy(x, init, 20, tol)
        results[tol] = (len(gemms), inertia(x, Clustering(assignment, centres)))
    (stopped, stopped_total), (capped, capped_total) = results.values()
    assert stopped < capped == 21, (stopped, capped)  # the first assignment, then 20
    assert capped_total <= stopped_total <= 1.001 * capped_total
    large = kmeans(x, 60, np.random.default_rng(0))
    assert "inertia tolerance" in large.method
    small = kmeans(digits_pixels(), 60, np.random.default_rng(0))
    assert "tolerance" not in small.method
