"""The episodic active-learning loop: select, label, train, evaluate, for ``episodes`` rounds.

This is the one place where classifier, strategy and labels meet. Strategies see only the
pool's features and the model's outputs; the loop reveals labels, checks every selection, and
records for each label the round in which it was bought.

Randomness: round r of a trial with seed s draws its selection from
``default_rng([s, r, 0])`` (and the model outputs a strategy asks for from its children, see
alsys.model_inputs) and trains its classifier with seed derived from ``[s, r, 1]``; the
stopping signal's stop set and coverage sample come from ``[s, 0, 3]``. A trial resumed at
round r therefore continues exactly as an uninterrupted one would.

After each round the loop computes the stopping signal (alsys.stopping): the agreement of this
round's model with the previous one on the stop set, and the kernel coverage of the pool by
the labeled set in the selection space; the tracker logs them as ``stop.*``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from alsys import stopping
from alsys.config import TrialConfig
from alsys.data import Dataset, load_dataset
from alsys.model_inputs import model_outputs
from alsys.results import RoundResult, TrialState
from alsys.spaces import unit_rows as _unit
from alsys.strategies import (
    Inputs,
    Pool,
    Strategy,
    get_inputs,
    make_strategy,
    validate_selection,
)

__all__ = [
    "RoundResult",
    "TrialData",
    "TrialState",
    "prepare_data",
    "recall_per_class",
    "rounds",
    "run_trial",
]


@dataclass(frozen=True)
class TrialData:
    """Everything a trial reads, prepared once: the dataset and its embeddings.

    ``features_*`` feed the SSL classifier (and Coreset in SSL); ``clst``/``typ`` are the
    spaces the clustering strategies select in (pool rows only): SimCLR at D_clst/D_typ, or
    the trial's HVAE latent or baseline space (alsys.spaces) as both.
    """

    dataset: Dataset
    features_train: np.ndarray | None
    features_test: np.ndarray | None
    clst: np.ndarray
    typ: np.ndarray
    scores: np.ndarray | None = None  # (n,) LLR^{>k} for ood_llr


def prepare_data(
    config: TrialConfig,
    store: Any = None,
    show_progress: bool = False,
    dataset: Dataset | None = None,
) -> TrialData:
    """Loads the dataset (unless given) and the embeddings the trial needs (from the store,
    computed once). Equal spaces share one array, so they travel and sit in memory once."""
    from alsys.errors import InputError
    from alsys.spaces import baseline_features, parse_space

    if dataset is None:
        dataset = load_dataset(config.dataset, **config.dataset_options)
    space = parse_space(config.space)
    # Model-free and cheap, so computed first: a pca:D the images cannot give fails at once.
    baseline = _unit(baseline_features(space, dataset)) if space.is_baseline else None
    if dataset.train_features is not None and dataset.test_features is not None:
        native = dataset.train_features.shape[1]
        for name in ("d_clst", "d_typ"):
            value = getattr(config, name)
            if value is not None and value != native:
                raise InputError(
                    name,
                    f"the embeddings dataset holds {native}-D features; it cannot give {value}",
                )
        train, test = dataset.train_features, dataset.test_features
        unit_train = _unit(train)
        data = TrialData(dataset, unit_train, _unit(test), unit_train, unit_train)
        return _with_hvae(config, data, store, show_progress)
    from alsys.embed import DIMENSIONS, simclr_embeddings

    wanted = set() if space.model is not None else {config.clustering_dim, config.typicality_dim}
    if config.setting == "ssl":
        wanted.add(config.ssl.embedding_dim)
    if not wanted:  # FSL selecting outside SimCLR: no SimCLR needed here
        rows = _EMPTY if baseline is None else baseline
        return _with_hvae(config, TrialData(dataset, None, None, rows, rows), store, show_progress)
    bad = sorted(d for d in wanted if d not in DIMENSIONS)
    if bad:
        raise InputError(
            "d_clst" if bad[0] == config.clustering_dim else "d_typ",
            f"SimCLR embeddings come in {', '.join(map(str, DIMENSIONS))}; not {bad[0]}",
        )
    # One nested training yields every dimension, so every trial of a dataset shares it.
    dims = list(DIMENSIONS) if config.embed_mode == "nested" else sorted(wanted)
    by_dim = simclr_embeddings(
        config.dataset,
        dims,
        mode=config.embed_mode,
        seed=config.embed_seed,
        epochs=config.embed_epochs,
        store=store,
        dataset_options=config.dataset_options,
        show_progress=show_progress,
    )
    unit = {d: _unit(by_dim[d].train) for d in wanted}
    ssl = config.setting == "ssl"
    any_space = unit[min(wanted)]
    data = TrialData(
        dataset,
        unit[config.ssl.embedding_dim] if ssl else None,
        _unit(by_dim[config.ssl.embedding_dim].test) if ssl else None,
        unit.get(config.clustering_dim, any_space) if baseline is None else baseline,
        unit.get(config.typicality_dim, any_space) if baseline is None else baseline,
    )
    return _with_hvae(config, data, store, show_progress)


_EMPTY = np.zeros((0, 0), dtype=np.float32)


def _with_hvae(config: TrialConfig, data: TrialData, store: Any, show_progress: bool) -> TrialData:
    """``data`` with the HVAE parts a trial reads: its space's latent as the clustering and
    typicality space, and ood_llr's LLR^{>k} scores (each HVAE trained once, in the store)."""
    if not config.hvae_models:
        return data
    from alsys.embed.hvae import hvae_embeddings, space_features
    from alsys.spaces import parse_space

    def entry(model: str) -> dict[str, np.ndarray]:
        return hvae_embeddings(
            config.dataset,
            model,
            seed=config.embed_seed,
            epochs=config.hvae_epochs,
            store=store,
            dataset_options=config.dataset_options,
            simclr={
                "mode": config.embed_mode,
                "epochs": config.embed_epochs,
                "seed": config.embed_seed,
            },
            show_progress=show_progress,
            loaded=data.dataset,
        )

    clst, scores = data.clst, None
    space = parse_space(config.space)
    if space.is_hvae:
        clst = _unit(space_features(entry(str(space.model)), space))
    source = config.score_source()
    if source is not None:
        model, k = source
        scores = np.asarray(entry(model)[f"train_llr{k}"], dtype=np.float64)
    typ = clst if space.model is not None else data.typ
    return TrialData(data.dataset, data.features_train, data.features_test, clst, typ, scores)


def recall_per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes,) recall TP_c / (TP_c + FN_c) (eq. 5.3); NaN for classes absent from y_true."""
    support = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_pred == y_true], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)


def round_seed(seed: int, round_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, round_index, stream])


def make_classifier(config: TrialConfig, n_classes: int) -> Any:
    from alsys.classifiers import FSLClassifier, SSLClassifier

    if config.setting == "ssl":
        return SSLClassifier(config.ssl, n_classes)
    return FSLClassifier(config.fsl, config.dataset, n_classes)


def run_trial(
    config: TrialConfig,
    data: TrialData,
    state: TrialState | None = None,
    on_round: Callable[[RoundResult, TrialState], None] | None = None,
) -> TrialState:
    """Runs the rounds not yet in ``state`` (all of them for a fresh trial)."""
    if state is None:
        state = TrialState(np.full(data.dataset.n_train, -1, dtype=np.int64))
    for result in rounds(config, data, state):
        if on_round is not None:
            on_round(result, state)
    return state


def rounds(config: TrialConfig, data: TrialData, state: TrialState) -> Iterator[RoundResult]:
    """Runs the rounds not yet in ``state``, appending each to it, and yields each as it
    ends: the caller (a tracker, Tune) acts between rounds without the loop calling it."""
    dataset = data.dataset
    n_classes = dataset.n_classes
    budget = config.budget_size(n_classes)
    strategy = make_strategy(config.strategy, **config.strategy_kwargs(n_classes))
    inputs = get_inputs(config.strategy)
    ssl = config.setting == "ssl"
    pool_inputs = data.features_train if ssl else dataset.train_images
    test_inputs = data.features_test if ssl else dataset.test_images
    assert pool_inputs is not None and test_inputs is not None
    n = dataset.n_train
    stop_rows = stopping.stop_set(n, round_seed(config.seed, 0, 3))
    cover_rows = stopping.coverage_rows(n, round_seed(config.seed, 0, 3))
    classifier = None
    for round_index in range(len(state.rounds), config.episodes):
        labeled = state.labeled_mask
        if classifier is None and state.rounds:
            # Resuming: retrain the previous round's model, which is deterministic.
            classifier = _train(config, n_classes, pool_inputs, dataset, labeled, round_index - 1)
        if labeled.sum() + budget > n:
            raise ValueError(f"round {round_index + 1} needs {budget} more points; pool exhausted")
        rng = round_seed(config.seed, round_index, 0)
        pool = _strategy_pool(config, inputs, data, classifier, labeled, strategy, rng)
        start = time.perf_counter()
        selection = strategy.select(pool, labeled, budget, rng)
        selection_seconds = time.perf_counter() - start
        chosen = validate_selection(selection.indices, labeled, budget)
        state.bought_round[chosen] = round_index + 1
        previous, labeled_before, labeled = classifier, labeled, state.labeled_mask
        start = time.perf_counter()
        classifier = _train(config, n_classes, pool_inputs, dataset, labeled, round_index)
        training_seconds = time.perf_counter() - start
        signal = _stopping_signal(
            data.clst,
            pool_inputs[stop_rows],
            cover_rows,
            labeled_before,
            labeled,
            previous,
            classifier,
            state,
        )
        predicted = classifier.predict_proba(test_inputs).argmax(axis=1)
        recall = recall_per_class(dataset.test_labels, predicted, n_classes)
        result = RoundResult(
            round=round_index + 1,
            n_labeled=int(labeled.sum()),
            accuracy=float(np.mean(predicted == dataset.test_labels)),
            balanced_accuracy=float(np.nanmean(recall)),
            per_class_recall=[float(r) for r in recall],
            class_histogram=np.bincount(
                dataset.train_labels[labeled], minlength=n_classes
            ).tolist(),
            selected=chosen.tolist(),
            selected_labels=dataset.train_labels[chosen].tolist(),
            selection_seconds=selection_seconds,
            training_seconds=training_seconds,
            random_fallback=selection.random_fallback,
            notes=list(selection.notes),
            strategy_metrics=dict(selection.metrics),
            record=selection.record,
            stopping=signal.metrics(),
        )
        state.rounds.append(result)
        yield result


def _train(
    config: TrialConfig,
    n_classes: int,
    inputs: np.ndarray,
    dataset: Dataset,
    labeled: np.ndarray,
    round_index: int,
) -> Any:
    seed = int(round_seed(config.seed, round_index, 1).integers(2**31 - 1))
    classifier = make_classifier(config, n_classes)
    return classifier.fit(inputs[labeled], dataset.train_labels[labeled], seed)


def _stopping_signal(
    space: np.ndarray,
    stop_inputs: np.ndarray,
    cover_rows: np.ndarray,
    labeled_before: np.ndarray,
    labeled: np.ndarray,
    previous: Any,
    classifier: Any,
    state: TrialState,
) -> stopping.StoppingSignal:
    """The round's stopping signal: the coverage of the selection space by the labeled set
    before and after the round, and the agreement of the new model with the previous one."""
    coverage = stopping.kernel_coverage(space, np.flatnonzero(labeled), cover_rows)
    # The previous round's coverage is this round's before; a checkpoint without it recomputes.
    before = state.rounds[-1].stopping.get("coverage") if state.rounds else 0.0
    if before is None:
        before = stopping.kernel_coverage(space, np.flatnonzero(labeled_before), cover_rows)
    agreement = None
    if previous is not None:
        agreement = stopping.cohen_kappa(
            previous.predict_proba(stop_inputs).argmax(axis=1),
            classifier.predict_proba(stop_inputs).argmax(axis=1),
        )
    earlier = [r.stopping["agreement"] for r in state.rounds if "agreement" in r.stopping]
    return stopping.round_signal(coverage, before, agreement, earlier)


def _strategy_pool(
    config: TrialConfig,
    inputs: Inputs,
    data: TrialData,
    classifier: Any,
    labeled: np.ndarray,
    strategy: Strategy,
    rng: np.random.Generator,
) -> Pool:
    """What the strategy may see, as its class declares: its features or its selection space,
    the model's outputs once a model exists (alsys.model_inputs), and the classes of the
    labeled points."""
    dataset = data.dataset
    pool_inputs = data.features_train if config.setting == "ssl" else dataset.train_images
    assert pool_inputs is not None
    fields: dict[str, Any] = {}
    if inputs.features:
        # The embeddings in SSL, the classifier's penultimate features in FSL (the SimCLR
        # embeddings before the first model, which has no features yet).
        if classifier is not None:
            fields["embeddings"] = classifier.features(pool_inputs)
        else:
            features = data.features_train if data.features_train is not None else data.clst
            fields["embeddings"] = features
    elif inputs.space:
        typ = None if config.typicality_dim == config.clustering_dim else data.typ
        fields.update(embeddings=data.clst, typ_embeddings=typ, scores=data.scores)
    model_based = inputs.probs or inputs.mc_samples
    n_classes = dataset.n_classes
    if classifier is not None and model_based:

        def fit(rows: np.ndarray, seed: int) -> Any:
            model = make_classifier(config, n_classes)
            return model.fit(pool_inputs[rows], dataset.train_labels[rows], seed)

        params = config.effective_params(n_classes)
        fields.update(
            model_outputs(
                inputs,
                strategy,
                params,
                classifier,
                fit,
                pool_inputs,
                labeled,
                n_classes,
                rng,
                config.mc_passes,
            )
        )
    elif "embeddings" not in fields:
        fields["embeddings"] = data.clst  # cold start: model-based strategies draw at random
    if inputs.labels:
        fields["labels"] = np.where(labeled, dataset.train_labels, -1).astype(np.int64)
    return Pool(**fields)
