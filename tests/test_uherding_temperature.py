"""UHerding's temperature fitted as the official code fits it: ECE on a held-out 30% of the
labels, for a model trained on the other 70% (the caller trains it; the strategy draws the
split and picks T), and T = 1 below the threshold, with notes that say which."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from alsys.config import TrialConfig
from alsys.errors import InputError
from alsys.loop import TrialData, run_trial
from alsys.strategies import Pool, make_strategy
from alsys.strategies.uherding import ece_temperature, expected_calibration_error
from tests.strategy_contract import StrategyContract, softmax
from tests.test_loop import EMBED_EPOCHS


class TestUHerdingFixedTemperatureContract(StrategyContract):
    name = "uherding"
    params = {"temperature": 1.0}


def mask_of(n: int, count: int, seed: int = 0) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).choice(n, count, replace=False)] = True
    return mask


def test_split_is_seventy_thirty_of_the_labeled_rows_and_drawn_from_the_rng() -> None:
    strategy = make_strategy("uherding")
    mask = mask_of(200, 40)
    fit, held = strategy.heldout_split(mask, 10, np.random.default_rng(1))
    assert held.shape == (12,) and fit.shape == (28,)  # int(40 x 0.3), as the official code
    assert set(fit) | set(held) == set(np.flatnonzero(mask)) and not set(fit) & set(held)
    again = strategy.heldout_split(mask, 10, np.random.default_rng(1))
    other = strategy.heldout_split(mask, 10, np.random.default_rng(2))
    assert again is not None and other is not None
    assert held.tolist() == again[1].tolist() and held.tolist() != other[1].tolist()


@pytest.mark.parametrize(
    ("params", "labeled", "classes", "wanted"),
    [
        ({}, 19, 10, False),  # below 2 per class
        ({}, 20, 10, True),
        ({"fit_min_per_class": 5}, 20, 4, True),
        ({"fit_min_per_class": 5}, 19, 4, False),
        ({"temperature": 1.0}, 100, 10, False),  # a fixed T needs no split
    ],
)
def test_split_only_when_fitting_with_enough_labels(
    params: dict[str, Any], labeled: int, classes: int, wanted: bool
) -> None:
    split = make_strategy("uherding", **params).heldout_split(
        mask_of(200, labeled), classes, np.random.default_rng(0)
    )
    assert (split is not None) == wanted


def herding_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 6))
    labels = rng.integers(0, 3, 150)
    # Overconfident probabilities: right 60% of the time, with p1 about 0.99.
    right = rng.random(150) < 0.6
    predicted = np.where(right, labels, (labels + 1) % 3)
    probs = softmax(6 * np.eye(3)[predicted] + rng.normal(size=(150, 3)) * 0.3)
    return x, labels, probs


def test_fitted_temperature_is_the_ece_minimiser_and_picks_as_that_fixed_t() -> None:
    x, labels, probs = herding_inputs()
    mask = mask_of(150, 100)
    strategy = make_strategy("uherding")
    split = strategy.heldout_split(mask, 3, np.random.default_rng(4))
    assert split is not None
    held = split[1]
    pool = Pool(
        embeddings=x,
        probs=probs,
        labels=np.where(mask, labels, -1),
        heldout_rows=held,
        heldout_probs=probs[held],
    )
    fitted = strategy.select(pool, mask, 6, np.random.default_rng(0))
    expected = ece_temperature(probs[held], labels[held])
    assert expected > 1.0  # overconfident: a larger T lowers the ECE
    assert fitted.metrics["temperature"] == expected
    assert any(f"temperature {expected:.3g} fitted" in note for note in fitted.notes)
    fixed = make_strategy("uherding", temperature=expected).select(
        pool, mask, 6, np.random.default_rng(0)
    )
    assert fitted.indices.tolist() == fixed.indices.tolist()
    grid_best = min(
        expected_calibration_error(softmax(np.log(probs[held]) / t), labels[held], 3)
        for t in np.arange(1.0, 20, 0.1)
    )
    one = expected_calibration_error(probs[held], labels[held], 3)
    assert grid_best < one


def test_below_the_threshold_or_without_heldout_probs_t_is_one_and_the_notes_say_why() -> None:
    x, labels, probs = herding_inputs(1)
    few = mask_of(150, 5)
    pool = Pool(embeddings=x, probs=probs, labels=np.where(few, labels, -1))
    selection = make_strategy("uherding").select(pool, few, 4, np.random.default_rng(0))
    assert selection.metrics["temperature"] == 1.0
    assert any("fewer than 2 per class" in note for note in selection.notes)
    enough = mask_of(150, 30)
    pool = Pool(embeddings=x, probs=probs, labels=np.where(enough, labels, -1))
    selection = make_strategy("uherding").select(pool, enough, 4, np.random.default_rng(0))
    assert selection.metrics["temperature"] == 1.0
    assert any("no held-out probabilities" in note for note in selection.notes)


def test_heldout_rows_must_be_labeled_and_bad_temperatures_are_refused() -> None:
    x, labels, probs = herding_inputs(2)
    mask = mask_of(150, 30)
    unlabeled = np.flatnonzero(~mask)[:5]
    pool = Pool(
        embeddings=x,
        probs=probs,
        labels=np.where(mask, labels, -1),
        heldout_rows=unlabeled,
        heldout_probs=probs[unlabeled],
    )
    with pytest.raises(InputError, match="heldout_rows"):
        make_strategy("uherding").select(pool, mask, 3, np.random.default_rng(0))
    for bad in ("auto", 0, -1.0):
        with pytest.raises(InputError, match=r"uherding\.temperature"):
            make_strategy("uherding", temperature=bad)
    with pytest.raises(InputError, match="heldout"):
        Pool(embeddings=x, heldout_rows=unlabeled)


def test_the_loop_trains_the_calibration_model_once_there_are_two_labels_per_class(
    digits_data: TrialData,
) -> None:
    """Tiny budget on digits: 10 labels after round 1 (T = 1), 20 after round 2 (fitted from
    round 3 on). Same seed, same temperatures; the fixed-T run picks the same points as long
    as T = 1 in both (the split draws from a child generator, not the selection's)."""

    def run(temperature: Any) -> Any:
        config = TrialConfig(
            strategy="uherding",
            embed_epochs=EMBED_EPOCHS,
            episodes=4,
            strategy_params={"temperature": temperature},
        )
        return run_trial(config, digits_data)

    fitted, again, fixed = run("fit"), run("fit"), run(1.0)
    temperatures = [r.strategy_metrics["temperature"] for r in fitted.rounds]
    assert temperatures[:2] == [1.0, 1.0]
    assert [r.strategy_metrics["temperature"] for r in again.rounds] == temperatures
    assert any("fewer than 2 per class" in n for n in fitted.rounds[1].notes)
    assert all(any("fitted" in n for n in r.notes) for r in fitted.rounds[2:])
    assert [r.selected for r in fitted.rounds[:2]] == [r.selected for r in fixed.rounds[:2]]
