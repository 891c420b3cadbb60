"""The stopping signal: its estimators (Cohen's kappa on a stop set, the kernel coverage), the
loop's ``stop.*`` metrics, and what ``alsys select`` prints and writes. Whether the signal
predicts the learning curve is measured in benchmarks/stopping.py, not asserted here."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from alsys import stopping
from alsys.cli import main
from alsys.config import TrialConfig
from alsys.loop import TrialData, run_trial
from alsys.strategies import kernel_coverage
from alsys.strategies.base import prepare_features
from tests.test_images import digits_folder, three_rounds  # noqa: F401 (a fixture)
from tests.test_loop import EMBED_EPOCHS


@pytest.mark.parametrize("seed", range(3))
def test_kappa_is_cohens(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 300)
    b = np.where(rng.random(300) < 0.7, a, rng.integers(0, 4, 300))
    assert stopping.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert stopping.cohen_kappa(a, a) == 1.0
    assert stopping.cohen_kappa(np.zeros(5), np.zeros(5)) == 1.0


def test_kernel_coverage_is_maxherdings_and_can_be_sampled() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8))
    labeled = np.array([3, 50, 120])
    unit = prepare_features(x, "x", True)
    assert stopping.kernel_coverage(x, labeled) == pytest.approx(
        kernel_coverage(unit, labeled, 1 / np.sqrt(2))
    )
    rows = np.arange(0, 300, 3)
    single = [stopping.kernel_coverage(x, labeled, [r]) for r in rows]
    assert stopping.kernel_coverage(x, labeled, rows) == pytest.approx(np.mean(single))
    assert stopping.kernel_coverage(x, np.array([], dtype=int)) == 0.0
    assert stopping.kernel_coverage(x, np.arange(300)) == pytest.approx(1.0)


def test_agreement_window_and_rules() -> None:
    first = stopping.round_signal(0.3, 0.0, None, [])
    assert first.agreement is None and first.agreement_mean is None
    assert not first.agreement_says_stop and not first.coverage_says_stop
    two = stopping.round_signal(0.5, 0.3, 0.999, [0.98])
    assert two.agreement_mean is None  # three rounds of kappa are needed
    three = stopping.round_signal(0.505, 0.5, 0.999, [0.2, 0.995, 0.996])
    assert three.agreement_mean == pytest.approx((0.995 + 0.996 + 0.999) / 3)
    assert three.agreement_says_stop and three.coverage_says_stop
    assert three.metrics()["coverage_gain"] == pytest.approx(0.005)
    assert set(first.metrics()) == {
        "coverage",
        "coverage_gain",
        "coverage_says_stop",
        "agreement_says_stop",
    }


def test_the_loop_logs_the_signal_every_round_and_a_resumed_trial_agrees(
    digits_data: TrialData,
) -> None:
    config = TrialConfig(strategy="margin", embed_epochs=EMBED_EPOCHS, episodes=4)
    whole = run_trial(config, digits_data)
    first, *later = whole.rounds
    assert "agreement" not in first.stopping and first.stopping["coverage_gain"] > 0
    assert all(-1 <= r.stopping["agreement"] <= 1 for r in later)
    assert "agreement_mean" in whole.rounds[3].stopping
    coverage = [r.stopping["coverage"] for r in whole.rounds]
    assert coverage == sorted(coverage) and 0 < coverage[0] < coverage[-1] < 1
    assert whole.rounds[2].metrics()["stop.coverage"] == coverage[2]
    partial = run_trial(dataclasses.replace(config, episodes=2), digits_data)
    resumed = run_trial(config, digits_data, state=copy.deepcopy(partial))
    assert [r.stopping for r in resumed.rounds] == [r.stopping for r in whole.rounds]


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 16))[np.repeat(np.arange(5), 40)] * 5 + rng.normal(size=(200, 16))
    np.save(tmp_path / "pool.npy", x.astype(np.float32))
    (tmp_path / "labeled.txt").write_text("3\n17\n44\n")
    return tmp_path


def test_select_prints_the_coverage_line_and_writes_the_signal(
    pool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["select", "--embeddings", str(pool_file / "pool.npy"), "--budget", "5"]
    argv += ["--labeled", str(pool_file / "labeled.txt"), "--strategy", "typiclust"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    signal = report["stopping"]
    assert 0 < signal["coverage_before"] < signal["coverage_after"] < 1
    assert signal["stop"] == (signal["coverage_gain"] < stopping.COVERAGE_GAIN_THRESHOLD)
    assert captured.err.count("\n") == 1 and "stopping signal" in captured.err
    assert f"{signal['coverage_before']:.1%}" in captured.err
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_select_runs_dropquery_on_your_own_dropout_passes(
    pool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=200)
    np.save(pool_file / "probs.npy", probs)
    np.save(pool_file / "dropped.npy", rng.dirichlet(np.ones(3), size=(3, 200)))
    argv = ["select", "--embeddings", str(pool_file / "pool.npy"), "--budget", "4"]
    argv += ["--labeled", str(pool_file / "labeled.txt"), "--strategy", "dropquery"]
    argv += ["--probs", str(pool_file / "probs.npy"), "--quiet"]
    assert main(argv) == 2
    assert "dropout_probs" in capsys.readouterr().err
    assert main([*argv, "--dropout-probs", str(pool_file / "dropped.npy")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["selected"]) == 4 and "change_rate" in report["explanations"][0]


@pytest.mark.parametrize("strategy", ["dcom", "dropquery", "falcun", "uherding"])
def test_three_rounds_by_path_with_the_new_strategies(
    strategy: str,
    digits_folder: tuple[Path, dict[str, str]],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through --features/--paths with the linear probe on the labels so far: every round
    prints its stopping line and writes stop_coverage in the CSV; UHerding fits T once it has
    two labels per class."""
    folder, truth = digits_folder
    monkeypatch.chdir(folder.parent)
    paths = sorted(truth)
    features = np.random.default_rng(0).normal(size=(len(paths), 12)).astype(np.float32)
    classes = np.array([int(truth[p]) for p in paths])
    features[:, :10] += 3 * np.eye(10, dtype=np.float32)[classes]
    np.save(tmp_path / "feats.npy", features)
    (tmp_path / "paths.txt").write_text("".join(f"{folder.name}/{p}\n" for p in paths))
    by_path = {f"{folder.name}/{p}": label for p, label in truth.items()}
    pool = ["--features", str(tmp_path / "feats.npy"), "--paths", str(tmp_path / "paths.txt")]
    if strategy == "dcom":  # its first radius: ProbCover's purity rule, as ProbCover needs k
        pool += ["--param", "n_classes=10"]
    rounds = three_rounds(strategy, pool, by_path, tmp_path, capsys)
    for rows, err in rounds:
        assert "stopping signal" in err
        assert len({row["stop_coverage"] for row in rows}) == 1
    if strategy == "uherding":
        assert "fewer than 2 per class" in rounds[1][1]
        assert "fitted" in rounds[2][1]
    with (tmp_path / f"{strategy}-round3.csv").open(newline="") as handle:
        assert "stop_coverage" in next(csv.reader(handle))
