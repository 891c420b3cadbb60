"""The episodic loop end to end on digits, its metrics, determinism and MLflow tracking."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from alsys.config import FSLClassifierConfig, TrialConfig
from alsys.embed.store import EmbeddingStore
from alsys.errors import InputError
from alsys.loop import TrialData, prepare_data, recall_per_class, run_trial
from alsys.strategies import REGISTRY

EMBED_EPOCHS = 3  # enough for finite, structured embeddings; the loop is what is tested
FAST_PARAMS = {
    "probcover": {"n_classes": 10},
    "batchbald": {"num_samples": 200, "max_candidates": 100},
}


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingStore:
    return EmbeddingStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def digits(store: EmbeddingStore) -> TrialData:
    return prepare_data(TrialConfig(strategy="random", embed_epochs=EMBED_EPOCHS), store)


def config(strategy: str, **overrides: object) -> TrialConfig:
    fields = {
        "strategy": strategy,
        "embed_epochs": EMBED_EPOCHS,
        "episodes": 2,
        "strategy_params": FAST_PARAMS.get(strategy, {}),
        **overrides,
    }
    return TrialConfig(**fields)  # type: ignore[arg-type]


def check_rounds(state, n_classes: int, budget: int) -> None:
    bought = state.bought_round
    for i, result in enumerate(state.rounds, start=1):
        assert result.round == i and result.n_labeled == i * budget
        assert len(set(result.selected)) == budget
        assert (bought[result.selected] == i).all()  # bought in this round, never before
        assert 0 <= result.accuracy <= 1 and np.isfinite(result.balanced_accuracy)
        assert sum(result.class_histogram) == result.n_labeled
        assert len(result.per_class_recall) == n_classes
    assert (bought >= 0).sum() == len(state.rounds) * budget


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_every_strategy_runs_two_ssl_rounds(
    strategy: str, digits: TrialData, store: EmbeddingStore
) -> None:
    if strategy == "ood_llr":  # it reads the HVAE's LLR scores besides the embeddings
        digits = prepare_data(config(strategy, hvae_epochs=2), store)
        assert digits.scores is not None
    state = run_trial(config(strategy), digits)
    check_rounds(state, 10, 10)
    # No model in round 1: the strategies that rank by the model's output alone, and BADGE
    # (its gradient embeddings need one), draw at random; UHerding and TCM run model-free.
    inputs = REGISTRY[strategy].inputs
    model_only = (inputs.probs or inputs.mc_samples) and not (inputs.space or inputs.features)
    model_based = model_only or strategy == "badge"
    assert state.rounds[0].random_fallback == model_based
    assert not state.rounds[1].random_fallback


@pytest.mark.parametrize("strategy", ["random", "typiclust"])
def test_fsl_runs_two_rounds_with_a_one_epoch_schedule(strategy: str, digits: TrialData) -> None:
    state = run_trial(config(strategy, setting="fsl", fsl=FSLClassifierConfig(epochs=1)), digits)
    check_rounds(state, 10, 10)


def test_same_config_same_selections_and_metrics(digits: TrialData) -> None:
    first = run_trial(config("supclust", episodes=3), digits)
    second = run_trial(config("supclust", episodes=3), digits)
    assert [r.selected for r in first.rounds] == [r.selected for r in second.rounds]
    assert [r.accuracy for r in first.rounds] == [r.accuracy for r in second.rounds]


def test_resuming_after_a_round_gives_the_uninterrupted_result(digits: TrialData) -> None:
    whole = run_trial(config("margin", episodes=3), digits)
    partial = run_trial(config("margin", episodes=1), digits)
    resumed = run_trial(config("margin", episodes=3), digits, state=copy.deepcopy(partial))
    assert [r.selected for r in resumed.rounds] == [r.selected for r in whole.rounds]
    assert [r.accuracy for r in resumed.rounds] == [r.accuracy for r in whole.rounds]


def test_small_budget_buys_five_per_class(digits: TrialData) -> None:
    state = run_trial(config("typiclust", budget="small", episodes=1), digits)
    assert state.rounds[0].n_labeled == 50


def test_per_class_recall_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 6, 300))
    y_pred[y_pred == 5] = 4  # one class never predicted
    recall = recall_per_class(y_true, y_pred, 6)
    assert np.nanmean(recall) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert recall[5] == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"d_clst": 10}, "d_clst"),
        ({"d_typ": 1000}, "d_typ"),
    ],
)
def test_impossible_dimensions_fail_before_any_training(
    tmp_path: Path, overrides: dict[str, int], field: str
) -> None:
    empty = EmbeddingStore(tmp_path)
    with pytest.raises(InputError, match=field):
        prepare_data(config("typiclust", **overrides), empty)
    assert empty.computed == 0 and not any(p.is_dir() for p in tmp_path.iterdir())


def test_fsl_on_an_embeddings_dataset_is_refused() -> None:
    with pytest.raises(InputError, match="fsl trains on images"):
        TrialConfig(strategy="random", dataset="embeddings", setting="fsl")


@pytest.mark.integration
def test_mlflow_run_holds_params_metrics_and_artifacts(
    tmp_path: Path, store: EmbeddingStore
) -> None:
    from mlflow import MlflowClient

    from alsys.runner import tracked_trial

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial = config("supclust", d_clst=32, d_typ=64, strategy_params={"temperature": 0.5})
    data = prepare_data(trial, store)
    state, run_id = tracked_trial(trial, data, uri, experiment="test")
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # The name spells the parameter set to another value than its default.
    assert run.info.run_name == "supclust-digits-tiny-ssl-s0-c32-t64-temperature0.5"
    assert run.data.params["strategy"] == "supclust"
    assert run.data.params["strategy_params.temperature"] == "0.5"
    assert run.data.params["d_typ"] == "64"
    assert run.data.tags["dataset"] == "digits" and run.data.tags["alsys_version"]
    history = client.get_metric_history(run_id, "balanced_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == [r.balanced_accuracy for r in state.rounds]
    assert len(client.get_metric_history(run_id, "recall_class_9")) == 2
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert artifacts == {"config.json", "selections.json", "learning_curve.png"}


@pytest.mark.integration
def test_a_retried_trial_without_a_checkpoint_reopens_its_run(tmp_path: Path) -> None:
    """The window between creating a run and the first checkpoint: the trial key finds it."""
    from mlflow import MlflowClient

    from alsys.loop import RoundResult
    from alsys.tracking import TrialTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial = config("random")
    client = MlflowClient(tracking_uri=uri)
    parent = client.create_run(client.create_experiment("t")).info.run_id
    first = TrialTracker(trial, uri, "t", parent_run_id=parent, trial_key="random-s0")
    result = RoundResult(1, 10, 0.5, 0.5, [0.5], [10], [0], [0], 0.0, 0.0, False)
    first.log_round(result)
    # The worker dies here; the retry has no checkpoint, hence no run id.
    second = TrialTracker(trial, uri, "t", parent_run_id=parent, trial_key="random-s0")
    assert second.run_id == first.run_id and second.logged_steps == {1}
    second.log_round(result)
    assert len(client.get_metric_history(first.run_id, "accuracy")) == 1
    other = TrialTracker(trial, uri, "t", parent_run_id=parent, trial_key="random-s1")
    assert other.run_id != first.run_id
    elsewhere = client.create_run(client.get_experiment_by_name("t").experiment_id).info.run_id
    third = TrialTracker(trial, uri, "t", parent_run_id=elsewhere, trial_key="random-s0")
    assert third.run_id != first.run_id  # the key is looked up under its own parent only


def test_active_learning_seeds_share_one_simclr_model(
    store: EmbeddingStore, digits: TrialData
) -> None:
    before = store.computed
    other = prepare_data(config("random", seed=7), store)
    assert store.computed == before
    np.testing.assert_array_equal(other.clst, digits.clst)


def test_probcover_purity_rule_takes_k_from_the_dataset() -> None:
    trial = TrialConfig(strategy="probcover")
    assert trial.strategy_kwargs(10)["n_classes"] == 10
    assert "n_classes" not in TrialConfig(
        strategy="probcover", strategy_params={"delta": 0.5}
    ).strategy_kwargs(10)


PROBCOVER_TRIAL = TrialConfig(strategy="probcover", dataset="embeddings", episodes=2)


def blob_dataset() -> TrialData:
    """A bring-your-own-embeddings dataset of four blobs: a trial with no SimCLR to train."""
    from alsys.data.base import Dataset
    from tests.conftest import blobs

    x, y = blobs(np.random.default_rng(0), n_per_blob=40, n_blobs=4)
    test = np.arange(0, 160, 4)  # every fourth point is a test point
    train = np.setdiff1d(np.arange(160), test)
    dataset = Dataset(
        "embeddings",
        ("a", "b", "c", "d"),
        y[train],
        y[test],
        train_features=x[train],
        test_features=x[test],
    )
    return prepare_data(PROBCOVER_TRIAL, dataset=dataset)


def test_probcover_trial_reports_its_delta_every_round() -> None:
    """Selection.metrics -> RoundResult.strategy_metrics -> strategy.* in the tracker's metrics."""
    state = run_trial(PROBCOVER_TRIAL, blob_dataset())
    assert len(state.rounds) == 2
    for result in state.rounds:
        metrics = result.strategy_metrics
        assert metrics["delta"] > 0 and 0 <= metrics["delta_purity"] <= 1
        assert 0 <= metrics["coverage_before"] <= metrics["coverage_after"] <= 1
        assert result.metrics()["strategy.delta"] == metrics["delta"]
        assert any(note.startswith(f"delta={metrics['delta']:.6g}") for note in result.notes)
    assert state.rounds[0].strategy_metrics["coverage_before"] == 0


@pytest.mark.integration
def test_mlflow_logs_probcover_delta_per_round(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from alsys.runner import tracked_trial

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state, run_id = tracked_trial(PROBCOVER_TRIAL, blob_dataset(), uri, experiment="test")
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "strategy.delta")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == [r.strategy_metrics["delta"] for r in state.rounds]


class NearestCentroid:
    """A model defined here, not in alsys: it implements alsys.pool.Model (fit on the labeled
    rows; probabilities, MC samples and features for any rows) and counts what it was asked."""

    def __init__(self) -> None:
        self.centroids = np.zeros((0, 0))
        self.calls: list[str] = []

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> NearestCentroid:
        self.calls.append(f"fit {len(y)}")
        # A class with no label yet sits at the origin (the rows are unit-length).
        self.centroids = np.stack(
            [x[y == c].mean(axis=0) if (y == c).any() else np.zeros(x.shape[1]) for c in range(3)]
        )
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.calls.append("proba")
        logits = -((x[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(z / z.sum(axis=1, keepdims=True), dtype=np.float64)

    def mc_proba(self, x: np.ndarray, passes: int) -> np.ndarray:
        self.calls.append("mc")
        return np.stack([self.predict_proba(x) for _ in range(passes)])

    def features(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)


def test_the_loop_runs_with_a_model_it_is_given() -> None:
    from alsys.strategies import margin_scores
    from tests.conftest import toy_data

    data = toy_data(n=90, n_train=60)
    model = NearestCentroid()
    config = TrialConfig(strategy="margin", episodes=3, seed=0)
    state = run_trial(config, data, model=model)
    # Fitted after each selection on every label so far (3 a round), and asked for the pool's
    # probabilities before rounds 2 and 3, for the test split's after each fit, and for the
    # stopping signal's stop set before and after the fits of rounds 2 and 3.
    assert [c for c in model.calls if c.startswith("fit")] == ["fit 3", "fit 6", "fit 9"]
    assert model.calls.count("proba") == 2 + 3 + 2 * 2
    # Round 3's picks are the model's three smallest margins among the unlabeled rows.
    labeled = (state.bought_round >= 1) & (state.bought_round <= 2)
    again = NearestCentroid().fit(
        data.features_train[labeled], data.dataset.train_labels[labeled], 0
    )
    margins = np.where(labeled, np.inf, margin_scores(again.predict_proba(data.features_train)))
    assert sorted(state.rounds[2].selected) == sorted(np.argsort(margins)[:3].tolist())
    # The balanced accuracy is the given model's on the test split.
    final = NearestCentroid().fit(
        data.features_train[state.labeled_mask], data.dataset.train_labels[state.labeled_mask], 0
    )
    predicted = final.predict_proba(data.features_test).argmax(axis=1)
    expected = balanced_accuracy_score(data.dataset.test_labels, predicted)
    assert state.rounds[-1].balanced_accuracy == pytest.approx(expected)


def test_the_loop_gives_a_given_model_mc_samples_for_mc_strategies() -> None:
    from tests.conftest import toy_data

    model = NearestCentroid()
    run_trial(TrialConfig(strategy="bald", episodes=2, mc_passes=4), toy_data(), model=model)
    assert model.calls.count("mc") == 1  # before round 2, the one round with a model
