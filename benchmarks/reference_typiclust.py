"""A TypiClust round written the way the reference (deep-al) code runs it, as a process of its own.

    python benchmarks/reference_typiclust.py POOL.npy LABELED.txt BUDGET --kmeans restarts|today

It loads the pool into memory and L2-normalises it; clusters it with scikit-learn into
min(|L| + b, 500) clusters, KMeans up to 50 and MiniBatchKMeans(batch_size=5000) above, with
the restarts the reference ran (scikit-learn before 1.4: n_init=10 and 3; ``restarts``) or
today's defaults (one run; ``today``); orders the clusters by (labeled count ascending, size
descending), drops those of size <= 5, and picks round-robin the most typical unlabeled member
of each, typicality from an exact faiss flat kNN among the cluster's unlabeled members,
recomputed per pick. It writes the picks and the k-means inertia as JSON (``--out``).

benchmarks/whole_process.py times it against ``alsys select`` on the same pool.
"""

from __future__ import annotations

import argparse
import json

import faiss
import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

MAX_CLUSTERS = 500
MIN_CLUSTER_SIZE = 5
K_NN = 20
RESTARTS = {"restarts": (10, 3), "today": (1, 1)}  # (KMeans, MiniBatchKMeans) n_init


def typicality(features: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatL2(features.shape[1])
    index.add(features)
    distances, _ = index.search(features, k + 1)
    return 1 / (distances[:, 1:].mean(axis=1) + 1e-5)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pool")
    parser.add_argument("labeled")
    parser.add_argument("budget", type=int)
    parser.add_argument("--kmeans", choices=sorted(RESTARTS), default="restarts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()

    features = np.load(args.pool).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    with open(args.labeled) as file:
        text = file.read().replace(",", " ").split()
    labeled = np.array([int(t) for t in text], dtype=np.int64)
    k = min(len(labeled) + args.budget, MAX_CLUSTERS)
    n_init, mb_init = RESTARTS[args.kmeans]
    if k <= 50:
        km: KMeans | MiniBatchKMeans = KMeans(k, n_init=n_init, random_state=args.seed)
    else:
        km = MiniBatchKMeans(k, batch_size=5000, n_init=mb_init, random_state=args.seed)
    clusters = km.fit_predict(features)
    inertia = float(km.inertia_)  # on every point, for both estimators

    labels = clusters.copy()
    sizes = np.bincount(clusters, minlength=k)
    existing = np.bincount(clusters[labeled], minlength=k)
    labels[labeled] = -1
    order = [c for c in np.lexsort((-sizes, existing)) if sizes[c] > MIN_CLUSTER_SIZE]
    selected: list[int] = []
    for i in range(args.budget):
        cluster = order[i % len(order)]
        indices = (labels == cluster).nonzero()[0]
        typ = typicality(features[indices], min(K_NN, len(indices) // 2))
        pick = int(indices[typ.argmax()])
        selected.append(pick)
        labels[pick] = -1
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"selected": selected, "kmeans_inertia": inertia, "n_clusters": k}, out)


if __name__ == "__main__":
    main()
