"""One tracked trial, start to end: the lifecycle that ``alsys run`` and every Tune trial share.

The runner owns the order: open (or reopen) the trial's MLflow run, log the rounds a previous
attempt finished but did not log, run the loop's remaining rounds and log each, then close the
run as finished, or as failed with the error. It yields every round after it is logged, so its
caller (the CLI's table, the Tune trainable's checkpoint and report) acts between rounds; nobody
is called back from inside the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from alsys.config import TrialConfig
from alsys.loop import TrialData, rounds
from alsys.pool import Model
from alsys.results import RoundResult, TrialState
from alsys.tracking import DEFAULT_EXPERIMENT, TrialTracker


def tracked_rounds(
    config: TrialConfig,
    data: TrialData,
    tracker: TrialTracker,
    model: Model,
    state: TrialState | None = None,
    replay_from: int | None = None,
) -> Iterator[tuple[RoundResult, TrialState, bool]]:
    """Yields ``(result, state, replayed)`` per round, each logged to ``tracker`` once.

    ``state`` holds the rounds an earlier attempt finished; those from ``replay_from`` on are
    yielded again (``replayed``) with the state as it stood after each, then the remaining
    rounds run with ``model``. The run ends finished, or failed with the error (which is
    raised).
    """
    if state is None:
        state = TrialState(np.full(data.dataset.n_train, -1, dtype=np.int64))
    try:
        done = len(state.rounds)
        for index in range(done if replay_from is None else replay_from, done):
            view = TrialState(np.where(state.bought_round <= index + 1, state.bought_round, -1))
            view.rounds = state.rounds[: index + 1]
            tracker.log_round(state.rounds[index])  # a no-op unless a kill fell in between
            yield state.rounds[index], view, True
        for result in rounds(config, data, state, model):
            tracker.log_round(result)
            yield result, state, False
    except GeneratorExit:
        raise  # the caller stopped iterating (and says why, if it failed)
    except BaseException as error:
        tracker.fail(error)
        raise
    tracker.finish(state)


def tracked_trial(
    config: TrialConfig,
    data: TrialData,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    on_round: Callable[[RoundResult, TrialState], None] | None = None,
    model: Model | None = None,
) -> tuple[TrialState, str]:
    """Runs a whole trial in its own MLflow run, with ``model`` (default: the config's,
    :func:`alsys.classifiers.model_for`); returns its state and run id."""
    if model is None:
        from alsys.classifiers import model_for

        model = model_for(config, data.dataset.n_classes)
    tracker = TrialTracker(config, tracking_uri, experiment, n_classes=data.dataset.n_classes)
    state = TrialState(np.full(data.dataset.n_train, -1, dtype=np.int64))
    try:
        for result, current, _ in tracked_rounds(config, data, tracker, model, state):
            if on_round is not None:
                on_round(result, current)
    except BaseException as error:  # the caller's own failure (the loop's is logged already)
        tracker.fail(error)
        raise
    return state, tracker.run_id
