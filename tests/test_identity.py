"""One trial identity, and strategies that declare their inputs (the package's structure is
tests/test_structure.py's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alsys.config import TrialConfig
from alsys.errors import InputError
from alsys.sweep import SweepSpec, load_sweep
from tests.conftest import toy_data

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alsys"

TEMPERATURES = """name: temperatures
dataset: digits
setting: ssl
budget: tiny
strategies: [supclust]
seeds: [0]
strategy_params:
  supclust: [{temperature: 0.1}, {temperature: 1.0}, {temperature: 10.0}]
episodes: 1
embed_epochs: 3
ssl: {steps: 50}
resources: {cpu: 1, gpu: 0}
"""


def test_three_temperature_variants_are_three_trials_with_three_names(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TEMPERATURES)
    trials = load_sweep(tmp_path / "t.yaml").trials
    assert len(trials) == 3 and len({t.id for t in trials}) == 3
    # A name spells the parameters set to other values than the defaults (T = 1 is the default).
    assert sorted(t.name for t in trials) == [
        "supclust-digits-tiny-ssl-s0",
        "supclust-digits-tiny-ssl-s0-temperature0.1",
        "supclust-digits-tiny-ssl-s0-temperature10",
    ]
    params = [t.config.tracked_params()["strategy_params.temperature"] for t in trials]
    assert sorted(params) == [0.1, 1.0, 10.0]
    # The defaults the strategy runs with are params too, under the same scheme.
    assert {t.config.tracked_params()["strategy_params.typ_ratio"] for t in trials} == {0.1}


def test_embed_seeds_is_an_axis_crossed_with_the_baselines_and_named_in_each_run(
    tmp_path: Path,
) -> None:
    yaml = TEMPERATURES.replace("seeds: [0]", "seeds: [0, 1]\nembed_seeds: [0, 2]")
    yaml = yaml.replace(
        "  supclust: [{temperature: 0.1}, {temperature: 1.0}, {temperature: 10.0}]",
        "  supclust: {}",
    )
    (tmp_path / "t.yaml").write_text(yaml + "baselines: [{strategy: random}]\n")
    trials = load_sweep(tmp_path / "t.yaml").trials
    assert sorted(t.name for t in trials) == [
        "random-digits-tiny-ssl-e2-s0",
        "random-digits-tiny-ssl-e2-s1",
        "random-digits-tiny-ssl-s0",
        "random-digits-tiny-ssl-s1",
        "supclust-digits-tiny-ssl-e2-s0",
        "supclust-digits-tiny-ssl-e2-s1",
        "supclust-digits-tiny-ssl-s0",
        "supclust-digits-tiny-ssl-s1",
    ]
    assert {(t.config.embed_seed, t.config.seed) for t in trials} == {
        (e, s) for e in (0, 2) for s in (0, 1)
    }
    # Training 0 keeps the names runs had before the axis; a configuration spans trainings.
    assert len({t.configuration for t in trials}) == 2
    # The one-value form, as the YAMLs wrote it before the axis, is the same trial.
    (tmp_path / "one.yaml").write_text(TEMPERATURES.replace("seeds: [0]", "seed: 0\nembed_seed: 2"))
    assert {t.config.embed_seed for t in load_sweep(tmp_path / "one.yaml").trials} == {2}


def test_identity_is_a_stable_hash_of_the_validated_config() -> None:
    one = TrialConfig(strategy="supclust", strategy_params={"temperature": 0.5})
    again = TrialConfig.from_dict(one.to_dict())
    assert one.trial_id() == again.trial_id() and len(one.trial_id()) == 16
    assert one.trial_id() != TrialConfig(strategy="supclust").trial_id()
    # An explicit default is the same trial as the default left out.
    explicit = TrialConfig(strategy="supclust", strategy_params={"temperature": 1.0})
    assert explicit.trial_id() == TrialConfig(strategy="supclust").trial_id()


@pytest.mark.parametrize(
    ("yaml", "first", "second"),
    [
        ("strategies: [random]\nseeds: [0, 1, 0]\n", "seeds[0]=0", "seeds[2]=0"),
        (
            "strategies: [supclust]\nseeds: [0]\n"
            "strategy_params: {supclust: [{temperature: 2.0}, {typ_ratio: 0.5}, "
            "{temperature: 2.0}]}\n",
            "strategy_params.supclust[0]",
            "strategy_params.supclust[2]",
        ),
        (
            "strategies: [supclust]\nseeds: [0]\n"
            "strategy_params: {supclust: [{}, {temperature: 1.0}]}\n",
            "strategy_params.supclust[0]",
            "strategy_params.supclust[1]",
        ),
        (
            "strategies: [typiclust, random, typiclust]\nseeds: [0]\n",
            "strategies[0]=typiclust",
            "strategies[2]=typiclust",
        ),
        (
            "strategies: [typiclust]\nseeds: [0]\n"
            "baselines: [{strategy: random}, {strategy: random}]\n",
            "baselines[0]",
            "baselines[1]",
        ),
    ],
)
def test_a_duplicated_entry_is_refused_naming_both(
    tmp_path: Path, yaml: str, first: str, second: str
) -> None:
    (tmp_path / "dup.yaml").write_text("name: dup\n" + yaml)
    with pytest.raises(InputError, match="same trial") as error:
        load_sweep(tmp_path / "dup.yaml")
    message = str(error.value)
    assert first in message and second in message and "\n" not in message
    assert message.startswith("dup.yaml: ")


def test_an_axis_that_does_not_apply_is_no_duplicate() -> None:
    spec = SweepSpec(
        name="x", axes={"strategy": ["random", "typiclust"], "seed": [0], "d_clst": [8, 16]}
    )
    names = sorted(t.name for t in spec.expand())
    assert names == [
        "random-digits-tiny-ssl-s0",
        "typiclust-digits-tiny-ssl-s0-c16-t16",
        "typiclust-digits-tiny-ssl-s0-c8-t8",
    ]


def test_a_new_strategy_is_one_class_and_one_registry_line(monkeypatch: Any) -> None:
    """Defined here: its class declares what it reads; config, loop and sweep need nothing."""
    from alsys import strategies
    from alsys.loop import run_trial
    from alsys.strategies.base import BoolArray, Inputs, Pool, Selection, Strategy

    @dataclass(frozen=True)
    class FirstUnlabeled(Strategy):
        """The unlabeled rows in order, or from the end with ``reverse``."""

        name = "first_unlabeled"
        inputs = Inputs(probs=True, name_params=("reverse",))

        reverse: bool = False

        def _select(
            self,
            pool: Pool,
            labeled_mask: BoolArray,
            budget: int,
            rng: np.random.Generator,
            show_progress: bool,
        ) -> Selection:
            assert pool.probs is not None or pool.embeddings is not None
            rows = np.flatnonzero(~labeled_mask)
            rows = rows[::-1] if self.reverse else rows
            chosen = rows[:budget].astype(np.int64)
            return Selection(chosen, tuple({"reason": "order"} for _ in chosen))

    monkeypatch.setitem(strategies.REGISTRY, FirstUnlabeled.name, FirstUnlabeled)

    data = toy_data()
    config = TrialConfig(
        strategy="first_unlabeled", strategy_params={"reverse": True}, episodes=2, seed=0
    )
    assert config.run_name() == "first_unlabeled-digits-tiny-ssl-s0-reverseTrue"
    assert config.tracked_params()["strategy_params.reverse"] is True
    state = run_trial(config, data)
    # Round 2 has a model: the strategy got its probabilities, as declared, and chose by order.
    assert state.rounds[1].selected == [36, 35, 34]
    trials = SweepSpec(
        name="new",
        axes={"strategy": ["first_unlabeled"], "seed": [0, 1]},
        strategy_params={"first_unlabeled": [{}, {"reverse": True}]},
    ).expand()
    assert len(trials) == 4 and len({t.name for t in trials}) == 4
