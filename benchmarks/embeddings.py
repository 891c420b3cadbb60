"""Digits: SimCLR embeddings at every D, nested (one training) vs separate (one per D).

For each D and mode, the kNN accuracy (k=20, cosine) and the linear-probe accuracy (logistic
regression on standardised features) on the test split, beside raw pixels; then the training
time of each mode.
Trainings go to a fresh temporary store unless --store is given, so the times are real.

    .venv/bin/python benchmarks/embeddings.py            # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/embeddings.py --epochs 5 --dims 8,32   # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alsys.data import load_dataset
from alsys.embed import DIMENSIONS, parse_dims, simclr_embeddings
from alsys.embed.store import EmbeddingStore


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def scores(train: np.ndarray, test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray):
    a, b = _unit(train), _unit(test)
    knn = KNeighborsClassifier(n_neighbors=20).fit(a, y_train).score(b, y_test)
    probe_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe = probe_model.fit(train, y_train).score(test, y_test)
    return knn, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default=",".join(map(str, DIMENSIONS)))
    parser.add_argument("--epochs", type=int, help="default: the digits preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", help="reuse this store (times then measure reads)")
    args = parser.parse_args()
    dims = parse_dims(args.dims)
    data = load_dataset("digits")
    assert data.train_images is not None and data.test_images is not None
    store = EmbeddingStore(args.store or tempfile.mkdtemp(prefix="alsys-bench-"))

    seconds = {}
    results = {}
    for mode in ("nested", "separate"):
        start = time.perf_counter()
        results[mode] = simclr_embeddings(
            "digits",
            dims,
            mode=mode,
            seed=args.seed,
            epochs=args.epochs,
            store=store,
            show_progress=False,
        )
        seconds[mode] = time.perf_counter() - start

    pixels = scores(
        data.train_images.reshape(data.n_train, -1).astype(np.float32),
        data.test_images.reshape(len(data.test_labels), -1).astype(np.float32),
        data.train_labels,
        data.test_labels,
    )
    print(
        f"digits test accuracy ({data.n_train} train / {len(data.test_labels)} test), "
        f"seed {args.seed}"
    )
    print(
        f"{'features':<12} {'kNN-20 nested':>14} {'probe nested':>13} "
        f"{'kNN-20 separate':>16} {'probe separate':>15}"
    )
    print(f"{'raw pixels':<12} {pixels[0]:>14.3f} {pixels[1]:>13.3f} {'':>16} {'':>15}")
    for d in dims:
        nested = scores(
            results["nested"][d].train,
            results["nested"][d].test,
            data.train_labels,
            data.test_labels,
        )
        separate = scores(
            results["separate"][d].train,
            results["separate"][d].test,
            data.train_labels,
            data.test_labels,
        )
        print(
            f"{'SimCLR D=' + str(d):<12} {nested[0]:>14.3f} {nested[1]:>13.3f} "
            f"{separate[0]:>16.3f} {separate[1]:>15.3f}"
        )
    print(
        f"training: nested {seconds['nested']:.1f} s for all {len(dims)} dimensions (1 run); "
        f"separate {seconds['separate']:.1f} s ({len(dims)} runs); "
        f"ratio {seconds['separate'] / seconds['nested']:.1f}x"
    )


if __name__ == "__main__":
    main()
