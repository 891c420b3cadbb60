"""Digits: does the default SimCLR representation earn the cold start? Beside raw pixels and PCA.

For each representation (raw pixels, PCA of the pixels, the default SimCLR embedding at several
D) it prints, on the digits test split:
- probe@1 and probe@5: balanced accuracy of a logistic-regression probe (L2-normalised
  features, C = 100) trained on 1 or 5 random labels per class, median over ``--draws`` draws;
- TypiClust at cold start, b = 10 (alsys's own strategy): classes covered by its picks and the
  probe trained on them, means over ``--seeds`` seeds;
- round 1 of the real loop (``alsys run``'s path, SSL, tiny budget): TypiClust's balanced
  accuracy, mean over the seeds; only for the spaces a trial can select in.
The default representation must match or beat raw pixels on all of these (issue 16).

    .venv/bin/python benchmarks/embeddings.py                 # trains the preset if not stored
    .venv/bin/python benchmarks/embeddings.py --epochs 5      # a quick look (worse numbers)
    .venv/bin/python benchmarks/embeddings.py --separate      # also one model per D (slow)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from alsys.config import TrialConfig
from alsys.data import load_dataset
from alsys.embed import DIMENSIONS, parse_dims, simclr_embeddings
from alsys.embed.store import EmbeddingStore
from alsys.loop import prepare_data, run_trial
from alsys.strategies import Pool, make_strategy


@dataclass
class Row:
    name: str
    probe1: float
    probe5: float
    covered: float
    picks_probe: float
    round1: float | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def flat(images: np.ndarray) -> np.ndarray:
    """Images as rows of pixel values in [0, 1] (the ``pixels`` space before normalising)."""
    return images.reshape(images.shape[0], -1).astype(np.float64) / 255.0


def probe(train: np.ndarray, test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Balanced accuracy of a logistic regression fitted on ``train`` rows."""
    if len(set(y_train.tolist())) < 2:
        return float(np.mean(y_test == y_train[0]))  # one class: it predicts that class
    # Weakly regularised: with ~10 labels on unit-norm features, the default C = 1 predicts a
    # single class wherever the labeled rows hold one class twice (seen on TypiClust's picks).
    model = LogisticRegression(C=100.0, max_iter=5000).fit(train, y_train)
    return float(balanced_accuracy_score(y_test, model.predict(test)))


def measure(
    name: str, train: np.ndarray, test: np.ndarray, data: object, draws: int, seeds: int
) -> Row:
    y, y_test = data.train_labels, data.test_labels  # type: ignore[attr-defined]
    a, b = _unit(train), _unit(test)
    n_classes = int(y.max()) + 1
    by_class = [np.flatnonzero(y == c) for c in range(n_classes)]
    per_class = {}
    for m in (1, 5):
        scores = []
        for draw in range(draws):
            rng = np.random.default_rng([draw, m])
            rows = np.concatenate([rng.choice(members, m, replace=False) for members in by_class])
            scores.append(probe(a[rows], b, y[rows], y_test))
        per_class[m] = float(np.median(scores))
    typiclust = make_strategy("typiclust")
    covered, picks_probe = [], []
    for seed in range(seeds):
        picks = typiclust.select(
            Pool(embeddings=a.astype(np.float32)),
            np.zeros(len(y), dtype=bool),
            n_classes,
            np.random.default_rng(seed),
        ).indices
        covered.append(len(set(y[picks].tolist())))
        picks_probe.append(probe(a[picks], b, y[picks], y_test))
    return Row(
        name, per_class[1], per_class[5], float(np.mean(covered)), float(np.mean(picks_probe))
    )


def loop_round1(space: str, seeds: int, store: EmbeddingStore, epochs: int | None) -> float:
    """TypiClust's round-1 balanced accuracy in the real loop (SSL, tiny), mean over seeds."""
    values = []
    dataset = load_dataset("digits")
    for seed in range(seeds):
        config = TrialConfig(
            strategy="typiclust", seed=seed, episodes=1, space=space, embed_epochs=epochs
        )
        data = prepare_data(config, store=store, dataset=dataset)
        values.append(run_trial(config, data).rounds[0].balanced_accuracy)
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="16,64,512", help="SimCLR dimensions to measure")
    parser.add_argument("--pca", default="32", help="PCA dimensions to measure")
    parser.add_argument("--epochs", type=int, help="default: the digits preset")
    parser.add_argument("--draws", type=int, default=10, help="random label draws per probe")
    parser.add_argument("--seeds", type=int, default=10, help="TypiClust / loop seeds")
    parser.add_argument("--store", help="embedding store (default: alsys's own)")
    parser.add_argument("--separate", action="store_true", help="also one model per D")
    args = parser.parse_args()
    dims = parse_dims(args.dims)
    data = load_dataset("digits")
    assert data.train_images is not None and data.test_images is not None
    store = EmbeddingStore(args.store) if args.store else EmbeddingStore()

    start = time.perf_counter()
    # Every D, as a trial asks for them: one nested training is one store entry for all.
    nested = simclr_embeddings("digits", DIMENSIONS, epochs=args.epochs, store=store)
    nested_seconds = time.perf_counter() - start
    pixels, pixels_test = flat(data.train_images), flat(data.test_images)
    rows = [measure("raw pixels", pixels, pixels_test, data, args.draws, args.seeds)]
    for d in parse_dims(args.pca):
        pca = PCA(d, svd_solver="full").fit(pixels)  # fitted on the pool, as the pca:D space
        train, test = pca.transform(pixels), pca.transform(pixels_test)
        rows.append(measure(f"PCA D={d}", train, test, data, args.draws, args.seeds))
    for d in dims:
        rows.append(
            measure(f"SimCLR D={d}", nested[d].train, nested[d].test, data, args.draws, args.seeds)
        )
    rows[0].round1 = loop_round1("pixels", args.seeds, store, args.epochs)
    simclr_default = next(r for r in rows if r.name == f"SimCLR D={max(dims)}")
    simclr_default.round1 = loop_round1("simclr", args.seeds, store, args.epochs)

    print(
        f"digits, SSL, b = 10 ({data.n_train} pool / {len(data.test_labels)} test); "
        f"balanced accuracy; probes median of {args.draws} draws, TypiClust and loop "
        f"means over {args.seeds} seeds"
    )
    print(
        f"{'representation':<16} {'probe@1':>8} {'probe@5':>8} {'TypiClust classes':>18} "
        f"{'probe on picks':>15} {'loop round 1':>13}"
    )
    for r in rows:
        loop = "" if r.round1 is None else f"{r.round1:.3f}"
        print(
            f"{r.name:<16} {r.probe1:>8.3f} {r.probe5:>8.3f} {r.covered:>18.1f} "
            f"{r.picks_probe:>15.3f} {loop:>13}"
        )
    pixels = rows[0]
    verdict = all(
        (
            simclr_default.probe1 >= pixels.probe1,
            simclr_default.probe5 >= pixels.probe5,
            simclr_default.covered >= pixels.covered,
            (simclr_default.round1 or 0) >= 0.65,
        )
    )
    print(
        f"default representation (SimCLR D={max(dims)}) vs raw pixels: "
        f"{'matches or beats them' if verdict else 'DOES NOT match them'} "
        "(probe@1, probe@5, classes covered; loop round 1 >= 0.65)"
    )
    print(f"SimCLR nested training: {nested_seconds:.1f} s (0 if it was already in the store)")
    if args.separate:
        start = time.perf_counter()
        simclr_embeddings(
            "digits",
            dims,
            mode="separate",
            epochs=args.epochs,
            store=EmbeddingStore(tempfile.mkdtemp(prefix="alsys-bench-")),
        )
        print(f"separate trainings: {time.perf_counter() - start:.1f} s for {len(dims)} models")


if __name__ == "__main__":
    main()
