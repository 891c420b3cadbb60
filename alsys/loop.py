"""The episodic active-learning loop: select, label, train, evaluate, for ``episodes`` rounds.

This is the one place where classifier, strategy and labels meet. Strategies see only the
pool's features and the model's outputs; the loop reveals labels, checks every selection, and
records for each label the round in which it was bought.

The model is given to the loop (:class:`alsys.pool.Model`): the loop fits it on the labeled
rows each round and hands its outputs to the strategy, as the strategy's class declares
(:func:`alsys.pool.pool_for`). The strategy is built once per trial, here.

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
from alsys.errors import InputError, PoolExhausted
from alsys.pool import Model, pool_for
from alsys.results import RoundResult, TrialState
from alsys.spaces import unit_rows as _unit
from alsys.strategies import Pool, Strategy, get_inputs, make_strategy, validate_selection

__all__ = [
    "RoundResult",
    "TrialData",
    "TrialState",
    "build_data",
    "check_data",
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


def check_data(config: TrialConfig, dataset: Dataset) -> None:
    """What of the config only its dataset can say: the pool holds enough points for every
    round, the D of an embeddings dataset, a baseline space within its images. Checked where
    the dataset is loaded: by :func:`prepare_data`, and a sweep before anything starts."""
    from alsys.spaces import check_baseline, parse_space

    budget = config.budget_size(dataset.n_classes)
    if config.episodes * budget > dataset.n_train:
        raise PoolExhausted(
            "episodes",
            f"{config.episodes} rounds of {budget} labels need {config.episodes * budget} "
            f"pool points; {dataset.name} has {dataset.n_train}",
        )
    space = parse_space(config.space)
    if space.is_baseline:
        check_baseline(space, dataset)
    if dataset.train_features is not None:
        native = dataset.train_features.shape[1]
        for name in ("d_clst", "d_typ"):
            value = getattr(config, name)
            if value is not None and value != native:
                raise InputError(
                    name,
                    f"the embeddings dataset holds {native}-D features; it cannot give {value}",
                )


def prepare_data(
    config: TrialConfig,
    store: Any = None,
    show_progress: bool = False,
    dataset: Dataset | None = None,
) -> TrialData:
    """Loads the dataset (unless given), checks the config against it (:func:`check_data`) and
    reads the embeddings the trial needs (:func:`build_data`)."""
    if dataset is None:
        dataset = load_dataset(config.dataset, **config.dataset_options)
    check_data(config, dataset)
    return build_data(config, dataset, store, show_progress)


def build_data(
    config: TrialConfig, dataset: Dataset, store: Any = None, show_progress: bool = False
) -> TrialData:
    """The embeddings a trial reads, of a dataset :func:`check_data` has passed (from the store,
    computed once). Rows are normalised here, where they enter; equal spaces share one array,
    so they travel and sit in memory once."""
    from alsys.spaces import baseline_features, parse_space

    space = parse_space(config.space)
    baseline = _unit(baseline_features(space, dataset), "space") if space.is_baseline else None
    if dataset.train_features is not None and dataset.test_features is not None:
        unit_train = _unit(dataset.train_features, "train_features")
        test = _unit(dataset.test_features, "test_features")
        data = TrialData(dataset, unit_train, test, unit_train, unit_train)
        return _with_hvae(config, data, store, show_progress)
    from alsys.embed import DIMENSIONS, simclr_embeddings

    wanted = set() if space.model is not None else {config.clustering_dim, config.typicality_dim}
    if config.setting == "ssl":
        wanted.add(config.ssl.embedding_dim)
    if not wanted:  # FSL selecting outside SimCLR: no SimCLR needed here
        rows = _EMPTY if baseline is None else baseline
        return _with_hvae(config, TrialData(dataset, None, None, rows, rows), store, show_progress)
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
    unit = {d: _unit(by_dim[d].train, "embeddings") for d in wanted}
    ssl = config.setting == "ssl"
    any_space = unit[min(wanted)]
    data = TrialData(
        dataset,
        unit[config.ssl.embedding_dim] if ssl else None,
        _unit(by_dim[config.ssl.embedding_dim].test, "embeddings") if ssl else None,
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
    from alsys.embed.hvae_store import hvae_embeddings, space_features
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
        clst = _unit(space_features(entry(str(space.model)), space), "space")
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


def run_trial(
    config: TrialConfig,
    data: TrialData,
    state: TrialState | None = None,
    on_round: Callable[[RoundResult, TrialState], None] | None = None,
    model: Model | None = None,
) -> TrialState:
    """Runs the rounds not yet in ``state`` (all of them for a fresh trial), with ``model``
    (default: the config's classifier, :func:`alsys.classifiers.model_for`)."""
    if state is None:
        state = TrialState(np.full(data.dataset.n_train, -1, dtype=np.int64))
    if model is None:
        from alsys.classifiers import model_for

        model = model_for(config, data.dataset.n_classes)
    for result in rounds(config, data, state, model):
        if on_round is not None:
            on_round(result, state)
    return state


def rounds(
    config: TrialConfig, data: TrialData, state: TrialState, model: Model
) -> Iterator[RoundResult]:
    """Runs the rounds not yet in ``state``, appending each to it, and yields each as it
    ends: the caller (a tracker, Tune) acts between rounds without the loop calling it.

    ``model`` is fitted on the labeled rows after every selection (and, when resuming, first
    on the labels of the rounds done); the strategy is built here, once.
    """
    dataset = data.dataset
    n_classes = dataset.n_classes
    budget = config.budget_size(n_classes)
    strategy = make_strategy(config.strategy, **config.strategy_kwargs(n_classes))
    ssl = config.setting == "ssl"
    pool_inputs = data.features_train if ssl else dataset.train_images
    test_inputs = data.features_test if ssl else dataset.test_images
    assert pool_inputs is not None and test_inputs is not None
    n = dataset.n_train
    stop_rows = stopping.stop_set(n, round_seed(config.seed, 0, 3))
    cover_rows = stopping.coverage_rows(n, round_seed(config.seed, 0, 3))
    fitted = False
    for round_index in range(len(state.rounds), config.episodes):
        labeled = state.labeled_mask
        if not fitted and state.rounds:
            # Resuming: retrain the previous round's model, which is deterministic.
            _fit(config, model, pool_inputs, dataset, labeled, round_index - 1)
            fitted = True
        if labeled.sum() + budget > n:
            raise PoolExhausted(
                "episodes",
                f"round {round_index + 1} needs {budget} more points; "
                f"{n - int(labeled.sum())} are unlabeled",
            )
        rng = round_seed(config.seed, round_index, 0)
        current = model if fitted else None
        pool = _strategy_pool(config, data, current, pool_inputs, labeled, strategy, rng)
        start = time.perf_counter()
        selection = strategy.select(pool, labeled, budget, rng)
        selection_seconds = time.perf_counter() - start
        chosen = validate_selection(selection.indices, labeled, budget)
        state.bought_round[chosen] = round_index + 1
        # The model is refitted in place: what the stopping signal needs of the previous one
        # (its predictions on the stop set) is taken before.
        previous = model.predict_proba(pool_inputs[stop_rows]).argmax(axis=1) if fitted else None
        labeled_before, labeled = labeled, state.labeled_mask
        start = time.perf_counter()
        _fit(config, model, pool_inputs, dataset, labeled, round_index)
        fitted = True
        training_seconds = time.perf_counter() - start
        signal = _stopping_signal(
            data.clst,
            pool_inputs[stop_rows],
            cover_rows,
            labeled_before,
            labeled,
            previous,
            model,
            state,
        )
        predicted = model.predict_proba(test_inputs).argmax(axis=1)
        seconds = (selection_seconds, training_seconds)
        result = _round_result(
            round_index, dataset, predicted, labeled, chosen, selection, signal, seconds
        )
        state.rounds.append(result)
        yield result


def _round_result(
    round_index: int,
    dataset: Dataset,
    predicted: np.ndarray,
    labeled: np.ndarray,
    chosen: np.ndarray,
    selection: Any,
    signal: stopping.StoppingSignal,
    seconds: tuple[float, float],
) -> RoundResult:
    """The round's record: the test split's accuracies, the labels bought, the selection's
    notes and metrics, the stopping signal and the (selection, training) seconds."""
    n_classes = dataset.n_classes
    recall = recall_per_class(dataset.test_labels, predicted, n_classes)
    return RoundResult(
        round=round_index + 1,
        n_labeled=int(labeled.sum()),
        accuracy=float(np.mean(predicted == dataset.test_labels)),
        balanced_accuracy=float(np.nanmean(recall)),
        per_class_recall=[float(r) for r in recall],
        class_histogram=np.bincount(dataset.train_labels[labeled], minlength=n_classes).tolist(),
        selected=chosen.tolist(),
        selected_labels=dataset.train_labels[chosen].tolist(),
        selection_seconds=seconds[0],
        training_seconds=seconds[1],
        random_fallback=selection.random_fallback,
        notes=list(selection.notes),
        strategy_metrics=dict(selection.metrics),
        record=selection.record,
        stopping=signal.metrics(),
    )


def _fit(
    config: TrialConfig,
    model: Model,
    inputs: np.ndarray,
    dataset: Dataset,
    labeled: np.ndarray,
    round_index: int,
) -> None:
    seed = int(round_seed(config.seed, round_index, 1).integers(2**31 - 1))
    model.fit(inputs[labeled], dataset.train_labels[labeled], seed)


def _stopping_signal(
    space: np.ndarray,
    stop_inputs: np.ndarray,
    cover_rows: np.ndarray,
    labeled_before: np.ndarray,
    labeled: np.ndarray,
    previous: np.ndarray | None,
    model: Model,
    state: TrialState,
) -> stopping.StoppingSignal:
    """The round's stopping signal: the coverage of the selection space by the labeled set
    before and after the round, and the agreement of the new model with the previous one
    (``previous``: its classes on the stop set, None in the first round)."""
    coverage = stopping.kernel_coverage(space, np.flatnonzero(labeled), cover_rows)
    # The previous round's coverage is this round's before; a checkpoint without it recomputes.
    before = state.rounds[-1].stopping.get("coverage") if state.rounds else 0.0
    if before is None:
        before = stopping.kernel_coverage(space, np.flatnonzero(labeled_before), cover_rows)
    agreement = None
    if previous is not None:
        agreement = stopping.cohen_kappa(previous, model.predict_proba(stop_inputs).argmax(axis=1))
    earlier = [r.stopping["agreement"] for r in state.rounds if "agreement" in r.stopping]
    return stopping.round_signal(coverage, before, agreement, earlier)


def _strategy_pool(
    config: TrialConfig,
    data: TrialData,
    model: Model | None,
    pool_inputs: np.ndarray,
    labeled: np.ndarray,
    strategy: Strategy,
    rng: np.random.Generator,
) -> Pool:
    """What the strategy may see, as its class declares (alsys.pool.pool_for): its selection
    space (or, for those reading the model's features, the SSL embeddings before a model
    exists), the model's outputs once a model exists (alsys.model_inputs), and the classes of
    the labeled points."""
    inputs = get_inputs(config.strategy)
    labels = data.dataset.train_labels
    return pool_for(
        inputs,
        space=data.clst,
        typ_space=None if config.typicality_dim == config.clustering_dim else data.typ,
        scores=data.scores,
        cold_features=data.features_train,
        model=model,
        model_inputs=pool_inputs,
        mc_passes=config.mc_passes,
        labels=np.where(labeled, labels, -1).astype(np.int64) if inputs.labels else None,
        strategy=strategy,
        params=config.effective_params(data.dataset.n_classes),
        labeled=labeled,
        targets=labels,
        n_classes=data.dataset.n_classes,
        rng=rng,
    )
