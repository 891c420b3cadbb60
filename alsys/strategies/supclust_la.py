"""Label-aware SUPClust: SUPClust that spends its budget on the classes it has bought least.

The thesis's future work (chapter 6): "by using the label information in the labeled dataset to
balance the label distribution of the labeled dataset, we may be able to further improve our
querying strategy". On imbalanced pools (CIFAR-10-LT, ISIC-2019, ``digits_lt``) TypiClust and
SUPClust visit clusters by size, so the head classes keep winning the visits.

The design (alsys's own; the thesis gives none):

1. Each pool point takes the class of its nearest labeled point in the clustering space, and
   each cluster the majority of its members' classes: the class the cluster *looks like*.
2. Clusters are visited in order of the labels their class will have by the time of the
   visit: the labels already bought for the class they look like, plus one for each cluster of
   that class visited before them (in TypiClust's order: labeled members ascending, size
   descending, rng). Ties keep TypiClust's order. So the classes bought least come first and
   take turns; the round-robin, the size filter and the pick inside a cluster (typicality
   filter, then highest SUP) are SUPClust's.
3. With nothing labeled (cold start) there is nothing to balance: it is SUPClust, pick for pick.

Only the labels already bought are read (``Pool.labels``); the classes of unlabeled points are
never seen. The guess in step 1 is a 1-nearest-neighbour classifier on the labeled set, the
cheapest label propagation (one exact kNN search of the pool against |L| points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alsys.errors import InputError
from alsys.strategies.base import BoolArray, Inputs, IntArray, Pool
from alsys.strategies.clustering import ClusterContext, Pick, knn_sqdist, tiers
from alsys.strategies.supclust import SUPClust


def cluster_classes(
    x: np.ndarray, assignment: IntArray, labels: IntArray, labeled_mask: BoolArray, k: int
) -> tuple[IntArray, IntArray]:
    """The class each cluster looks like, and how many labels that class has.

    Args:
        x: (n, d) float32 clustering space.
        assignment: (n,) cluster ids in [0, k).
        labels: (n,) classes of the labeled points, -1 elsewhere.
        labeled_mask: (n,) at least one True.

    Returns:
        ``(looks_like, bought)``, both (k,): the majority class of the members' nearest labeled
        points (ties: the smaller class id; -1 for an empty cluster), and the labeled count of
        that class (0 for an empty cluster).
    """
    labeled_rows = np.flatnonzero(labeled_mask)
    known = labels[labeled_rows]
    n_classes = int(known.max()) + 1
    nearest = knn_sqdist(np.ascontiguousarray(x), np.ascontiguousarray(x[labeled_rows]), 1)[1]
    guessed = known[nearest[:, 0]]
    votes = np.zeros((k, n_classes), dtype=np.int64)
    np.add.at(votes, (assignment, guessed), 1)
    looks_like = np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), -1)
    counts = np.bincount(known, minlength=n_classes)
    bought = np.where(looks_like >= 0, counts[np.maximum(looks_like, 0)], 0)
    return looks_like.astype(np.int64), bought.astype(np.int64)


@dataclass(frozen=True)
class SUPClustLA(SUPClust):
    """SUPClust with clusters visited rarest-bought class first (see the module docstring).

    Its parameters are SUPClust's. Each pick's explanation adds ``looks_like`` (the class its
    cluster looks like) and ``class_labeled`` (labels bought for that class before the round).
    """

    name = "supclust_la"
    inputs = Inputs(space=True, dims=True, labels=True)

    def visit_order(
        self,
        ctx: ClusterContext,
        pool: Pool,
        labeled_mask: BoolArray,
        rng: np.random.Generator,
    ) -> tuple[IntArray, IntArray]:
        if not labeled_mask.any():
            return super().visit_order(ctx, pool, labeled_mask, rng)
        if ctx.labels is None:
            raise InputError(
                "labels",
                f"strategy {self.name} needs the classes of the labeled points",
            )
        k = ctx.clustering.n_clusters
        looks_like, bought = cluster_classes(
            ctx.x_clst, ctx.clustering.assignment, ctx.labels, labeled_mask, k
        )
        ctx.derived.update(looks_like=looks_like, bought=bought)
        # A visit buys one label of the class its cluster looks like, so the j-th cluster of a
        # class (in TypiClust's order) is visited as if j labels of it had been bought already.
        tie = rng.random(k)
        typiclust_order = np.lexsort((tie, -ctx.sizes, ctx.labeled_counts))
        rank = np.empty(k, dtype=np.int64)
        for c in np.unique(looks_like):
            members = typiclust_order[looks_like[typiclust_order] == c]
            rank[members] = np.arange(members.shape[0])
        order = np.lexsort((tie, -ctx.sizes, ctx.labeled_counts, bought + rank))
        return tiers(order, ctx.sizes, self.min_cluster_size)

    def pick(
        self, cluster: int, candidates: IntArray, ctx: ClusterContext, rng: np.random.Generator
    ) -> Pick:
        pick = super().pick(cluster, candidates, ctx, rng)
        if "looks_like" not in ctx.derived:
            return pick
        pick.why["looks_like"] = int(ctx.derived["looks_like"][cluster])
        pick.why["class_labeled"] = int(ctx.derived["bought"][cluster])
        return pick
