"""SUPClust (thesis chapter 5, Algorithm 1) and its two ablations (thesis 5.3.2).

Clustering, cluster order and round-robin are TypiClust's. In a visited cluster i, SUPClust
keeps the ``typ_ratio`` most typical candidates (typicality in the D_typ space) and takes the
one of highest SUP, computed in the clustering space against the k-means centres:

    w_i^j = softmax_j(-||c_i - c_j|| / T)  over j != i            (eq. 5.1)
    SUP(x) = 1 / sum_{j != i} w_i^j ||x - c_j||                    (eq. 5.2)

Ablations, each its own strategy name:
    supclust_no_sup: a random point among the kept most typical ones;
    supclust_no_typicality: the highest SUP over all candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from alsys.errors import InputError
from alsys.strategies.base import (
    FloatArray,
    Inputs,
    IntArray,
    argmax_tiebreak,
    check_number,
    top_k_tiebreak,
)
from alsys.strategies.clustering import F32, ClusterContext, ClusterStrategy, Pick


def cluster_weights(centres: FloatArray, cluster: int, temperature: float) -> FloatArray:
    """w_i^j of eq. 5.1 for every other cluster j, in order of j (cluster i left out).

    centres: (k, d), k >= 2 -> (k - 1,) non-negative, summing to 1.
    """
    c = np.asarray(centres, dtype=np.float64)
    centre_distances = np.linalg.norm(c - c[cluster], axis=1)
    return _weights(centre_distances, cluster, temperature)


def _weights(centre_distances: FloatArray, cluster: int, temperature: float) -> FloatArray:
    """Eq. 5.1 from the (k,) distances of centre i to every centre, itself included."""
    others = np.arange(centre_distances.shape[0]) != cluster
    weights: FloatArray = softmax(-centre_distances[others] / temperature)
    return weights


def _sup(
    point_distances: FloatArray, centre_distances: FloatArray, cluster: int, temperature: float
) -> FloatArray:
    """Eq. 5.2 from (m, k) point-to-centre and (k,) centre-to-centre Euclidean distances."""
    others = np.arange(centre_distances.shape[0]) != cluster
    weights = _weights(centre_distances, cluster, temperature)
    scores: FloatArray = 1.0 / (point_distances[:, others] @ weights)
    return scores


def _distances(points: FloatArray, centres: FloatArray) -> FloatArray:
    """(m, k) Euclidean distances, float64."""
    x = np.asarray(points, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    sq = (x * x).sum(axis=1)[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * x @ c.T
    distances: FloatArray = np.sqrt(np.maximum(sq, 0.0))
    return distances


# The float32 dot product of d-vectors x and c is within GAMMA(d) ||x|| ||c|| of the exact one,
# GAMMA(d) = d u / (1 - d u), u = 2^-24 (Higham's bound, any summation order, FMA or not);
# the screen in _exact_where_it_may_win uses twice that, so it never drops a candidate that
# could win.
UNIT_ROUNDOFF32 = 2.0**-24
SCREEN_SAFETY = 2.0


def _sq32(x: F32, ctx: ClusterContext) -> F32:
    """(m, k) float32 squared distances of the rows of ``x`` to every centre (one GEMM)."""
    sq: F32 = x @ ctx.centres32.T
    sq *= -2.0
    sq += ctx.centre_sqnorms.astype(np.float32)[None, :]
    sq += np.einsum("ij,ij->i", x, x)[:, None]
    return np.maximum(sq, 0.0, out=sq)


def _centre_weights(cluster: int, ctx: ClusterContext, temperature: float) -> FloatArray:
    """(k,) the weights of eq. 5.1 at every centre, 0 at the cluster's own."""
    k = ctx.clustering.n_clusters
    weights = np.zeros(k)
    weights[np.arange(k) != cluster] = _weights(ctx.centre_distances[cluster], cluster, temperature)
    return weights


def _float32_sup(x: F32, cluster: int, ctx: ClusterContext, temperature: float) -> FloatArray:
    """SUP of every row of ``x`` (m, d) (eq. 5.2) in float32 arithmetic, as float64 values.

    They differ from float64 ones by float32 rounding (about 1e-6 relative; the record keeps 6
    digits). The float64 pass over a whole cluster (a float64 copy of its points, a float64 GEMM
    and float64 temporaries) was the largest cost of a cold-start round on an ImageNet-sized
    pool (1.28M x 500 x 512).
    """
    sq = _sq32(x, ctx)
    np.sqrt(sq, out=sq)
    weights = _centre_weights(cluster, ctx, temperature).astype(np.float32)
    sup: FloatArray = 1.0 / (sq @ weights).astype(np.float64)
    return sup


def _exact_where_it_may_win(
    x: F32, sup: FloatArray, cluster: int, ctx: ClusterContext, temperature: float
) -> IntArray:
    """Recomputes exactly (float64), in place in ``sup`` (float32-accurate SUP of the rows of
    ``x``, (m, d)), the rows whose exact SUP may be the largest of all m; returns them.

    Each float32 squared distance is within E = (GAMMA(d) + 3u) (||x|| + ||c_j||)^2 of exact
    (the dot product's GAMMA(d) bound, the squared norms', and three roundings of sums), so each
    SUP lies in [1 / sum w_j sqrt(dsq + E), 1 / sum w_j sqrt(max(dsq - E, 0))], evaluated in
    float64; a row whose upper end is below the largest lower end cannot hold the maximum, nor
    tie it.
    """
    exact = np.arange(x.shape[0])
    if x.shape[0] > 1:
        weights = _centre_weights(cluster, ctx, temperature)
        near = _sq32(x, ctx).astype(np.float64)
        d = x.shape[1]
        gamma = d * UNIT_ROUNDOFF32 / (1.0 - d * UNIT_ROUNDOFF32)
        sq_x = np.einsum("ij,ij->i", x, x).astype(np.float64)
        norms = np.sqrt(sq_x)[:, None] + np.sqrt(ctx.centre_sqnorms)[None, :]
        slack = SCREEN_SAFETY * (gamma + 3.0 * UNIT_ROUNDOFF32) * norms**2
        low = 1.0 / (np.sqrt(near + slack) @ weights) * (1.0 - 1e-9)
        with np.errstate(divide="ignore"):
            high = 1.0 / (np.sqrt(np.maximum(near - slack, 0.0)) @ weights) * (1.0 + 1e-9)
        exact = exact[high >= low.max()]
    if exact.shape[0] > 0:
        sup[exact] = _sup(
            _distances(x[exact], ctx.centres64), ctx.centre_distances[cluster], cluster, temperature
        )
    return exact


def sup_scores(
    points: FloatArray, centres: FloatArray, cluster: int, temperature: float
) -> FloatArray:
    """SUP(x) of eq. 5.2 for points of cluster ``cluster``; higher = nearer a neighbour cluster.

    Args:
        points: (m, d) in the clustering space.
        centres: (k, d) centres of all clusters, k >= 2.
        cluster: i, the cluster the points belong to.
        temperature: T > 0 of eq. 5.1.

    Returns:
        (m,) SUP scores, float64.
    """
    c = np.asarray(centres, dtype=np.float64)
    if c.shape[0] < 2:
        raise InputError("centres", "SUP needs at least two clusters")
    if not temperature > 0:
        raise InputError("temperature", f"must be > 0, got {temperature}")
    return _sup(
        _distances(points, c), _distances(c[cluster : cluster + 1], c)[0], cluster, temperature
    )


@dataclass(frozen=True)
class TypicalityFilter(ClusterStrategy):
    """A cluster strategy that keeps a cluster's most typical candidates (Algorithm 1).

    Attributes (besides TypiClust's):
    typ_ratio: fraction of a cluster's candidates kept by typicality, at least one;
        0.10 in Algorithm 1 ("only top 10% data points pass"), rounded down.
    """

    typ_ratio: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.name, "typ_ratio", self.typ_ratio, low=0, high=1, low_open=True)

    def kept_by_typicality(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> tuple[IntArray, FloatArray | None]:
        """Positions in ``candidates`` of the top ``typ_ratio`` by typicality, most typical
        first, and the typicality of every candidate (``None`` for a lone candidate)."""
        typ = self.candidate_typicality(cluster, candidates, ctx)
        if typ is None:
            return np.arange(candidates.shape[0]), None
        n_keep = max(1, math.floor(self.typ_ratio * candidates.shape[0] + 1e-9))
        return top_k_tiebreak(typ, n_keep, rng), typ


@dataclass(frozen=True)
class SUPScore(ClusterStrategy):
    """A cluster strategy that scores candidates by SUP (eq. 5.2), which it records.

    Attributes (besides TypiClust's):
    temperature: T of eq. 5.1; 1.0 in the thesis.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.name, "temperature", self.temperature, low=0, low_open=True)

    def sup(
        self, points: IntArray, among: IntArray, cluster: int, ctx: ClusterContext
    ) -> FloatArray | None:
        """SUP of the pool rows ``points`` (a cluster's candidates, ascending), exact (float64)
        at every position of ``among`` that may hold its largest value and float32-accurate
        elsewhere (see _exact_where_it_may_win); ``None`` for a single cluster.

        SUP depends only on the point and the round's centres, so the float32 values of a
        cluster's first-visit candidates are kept for its later visits (``ctx.derived``).
        """
        if ctx.clustering.n_clusters < 2:
            return None  # a single cluster has no neighbour to lean towards
        kept: dict[int, tuple[IntArray, FloatArray]] = ctx.derived.setdefault("sup32", {})
        if cluster not in kept:
            x = np.ascontiguousarray(ctx.x_clst[points], dtype=np.float32)
            kept[cluster] = (points, _float32_sup(x, cluster, ctx, self.temperature))
        rows, values = kept[cluster]
        sup = values[np.searchsorted(rows, points)]
        x_among = np.ascontiguousarray(ctx.x_clst[points[among]], dtype=np.float32)
        at_among = sup[among]
        _exact_where_it_may_win(x_among, at_among, cluster, ctx, self.temperature)
        sup[among] = at_among
        return sup


# The parameters appear in this order (temperature, typ_ratio): SUPScore's fields come first.
@dataclass(frozen=True)
class SUPClust(TypicalityFilter, SUPScore):
    """SUPClust (Algorithm 1): in each visited cluster, the highest SUP among the ``typ_ratio``
    most typical candidates."""

    name = "supclust"
    inputs = Inputs(space=True, dims=True)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        kept, typ = self.kept_by_typicality(cluster, candidates, ctx, rng)
        # SUP of every candidate, not only the kept ones: the record (and the report's typicality
        # vs SUP figure) shows the whole cluster. It costs m x k float32 dot products a visit,
        # n x k over a cold-start round: less than one Lloyd iteration of the round's k-means.
        sup = self.sup(candidates, kept, cluster, ctx)
        best = 0 if sup is None else argmax_tiebreak(sup[kept], rng)  # one cluster: most typical
        chosen = kept[best]
        why = {
            "typicality": None if typ is None else float(typ[chosen]),
            "sup": None if sup is None else float(sup[chosen]),
            "kept_by_typicality": int(kept.shape[0]),
        }
        return Pick(int(candidates[chosen]), why, typ, sup, candidates[kept])


@dataclass(frozen=True)
class SUPClustNoSup(TypicalityFilter):
    """Ablation "w/o SUP": a random point among the top ``typ_ratio`` by typicality (no
    temperature: it computes no SUP)."""

    name = "supclust_no_sup"
    inputs = Inputs(space=True)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        kept, typ = self.kept_by_typicality(cluster, candidates, ctx, rng)
        chosen = kept[int(rng.integers(kept.shape[0]))]
        why = {
            "typicality": None if typ is None else float(typ[chosen]),
            "kept_by_typicality": int(kept.shape[0]),
        }
        return Pick(int(candidates[chosen]), why, typ, kept=candidates[kept])


@dataclass(frozen=True)
class SUPClustNoTypicality(SUPScore):
    """Ablation "w/o typicality": the highest SUP over all candidates (no typ_ratio: nothing
    is filtered)."""

    name = "supclust_no_typicality"
    inputs = Inputs(space=True)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        sup = self.sup(candidates, np.arange(candidates.shape[0]), cluster, ctx)
        if sup is None:  # one cluster: no SUP, any candidate is as good
            return Pick(int(candidates[rng.integers(candidates.shape[0])]), {"sup": None})
        best = argmax_tiebreak(sup, rng)
        return Pick(int(candidates[best]), {"sup": float(sup[best])}, sup=sup)
