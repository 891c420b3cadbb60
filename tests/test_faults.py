"""Faults on a real local Ray and a real MLflow store: a trial's worker and the sweep driver are
killed with SIGKILL, by pid, from the test. What must survive is stated in each test.

The sweep runs as a subprocess (``python sweeps/dim_grid.py --config ...``), exactly as a user
starts it; the test follows it through Tune's own ``result.json`` files, which carry each
reported round and the pid of the process that ran it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, start_mlflow, stop_mlflow

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "dim_grid.py"

pytestmark = pytest.mark.integration

# Rounds of about a second each (3000 full-batch steps of the linear head), so a kill lands
# inside a round rather than between trials; a test that kills nothing asks for short ones.
SPEC = """\
name: {name}
dataset: digits
setting: ssl
budget: tiny
strategies: [supclust]
seeds: {seeds}
d_clst: [16]
d_typ: [16]
episodes: 5
embed_epochs: 3
ssl: {{steps: {steps}}}
resources: {{cpu: 1}}
max_failures: 2
"""


class Sweep:
    """One sweep's files, and its driver started as a user would start it."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        seeds: list[int],
        uri: str | None = None,
        steps: int = 3000,
    ) -> None:
        self.tmp, self.name, self.seeds = tmp, name, seeds
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(SPEC.format(name=name, seeds=seeds, steps=steps))
        self.storage = tmp / "ray"
        self.uri = uri or f"sqlite:///{tmp / 'mlflow.db'}"
        self.log = tmp / "driver.log"

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        argv = [sys.executable, str(SWEEP), "--config", str(self.config)]
        argv += ["--storage-path", str(self.storage), "--tracking-uri", self.uri]
        argv += ["--store", str(self.tmp / "store"), *extra]
        with self.log.open("ab") as log:
            # Its own session, so the local Ray it starts can be found (and ended) by session.
            return subprocess.Popen(
                argv,
                cwd=self.tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def progress(self) -> dict[str, dict[str, Any]]:
        """Each trial's own progress file (written synchronously every round, unlike Tune's
        result.json, which the driver copies to storage when it gets to it): run name ->
        {"rounds": [...], "pid": ...}."""
        import numpy as np

        out = {}
        for file in (self.storage / self.name / "alsys_progress").glob("*.npz"):
            try:
                with np.load(file, allow_pickle=False) as saved:
                    out[file.stem] = json.loads(saved["record"].tobytes().decode())
            except (OSError, ValueError, KeyError, EOFError):
                continue  # being replaced this instant
        return out

    def results(self) -> dict[str, list[dict[str, Any]]]:
        """Each trial's reported rounds so far, by run name (a trial folder is named
        ``<run name>_<index>_grid=...``; a fresh Tuner makes new folders, the newest wins)."""
        out = {}
        files = (self.storage / self.name).glob("*/result.json")
        for file in sorted(files, key=lambda f: f.stat().st_mtime):
            lines = file.read_text().splitlines()
            rows = []
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written
                    break
            out[file.parent.name.split("_grid=")[0].rsplit("_", 1)[0]] = rows
        return out

    def wait(self, proc: subprocess.Popen[bytes], timeout: float = 300) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the sweep did not finish in {timeout} s:\n{self.log.read_text()}")

    def mlflow_children(self) -> tuple[Any, list[Any]]:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(self.name)
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.info.run_name == f"sweep-{self.name}"]
        assert len(parents) == 1, "one parent run per sweep, also after a resume"
        parent = parents[0].info.run_id
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
        assert len(children) == len(runs) - 1
        return client, children


def record(fault: str, **figures: Any) -> None:
    """One row of benchmarks/reliability.py's table, when it runs these tests."""
    out = os.environ.get("ALSYS_RELIABILITY_OUT")
    if out:
        with open(out, "a") as handle:
            handle.write(json.dumps({"fault": fault, **figures}) + "\n")


def steps_logged(client: Any, runs: list[Any], metric: str = "balanced_accuracy") -> int:
    return sum(len(client.get_metric_history(r.info.run_id, metric)) for r in runs)


def wait_for(condition: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the driver exited (rc {proc.returncode}) before {what}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def session_pids(sid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session
            out.append(int(stat.parent.name))
    return out


def end_session(sid: int, grace: float = 20) -> list[int]:
    """Waits for the processes of a killed driver's session (its local Ray) to exit; ends the
    ones still there after ``grace`` seconds by pid, and returns their pids."""
    deadline = time.monotonic() + grace
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = session_pids(sid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def test_trial_worker_killed_mid_round_resumes_at_its_last_round(
    tmp_path: Path, warm_store: Path
) -> None:
    """Survives: the trial (retried by Tune from its last checkpoint, not from round 1), its
    results (identical to an uninterrupted run's), and its one MLflow run with each round once."""
    import numpy as np
    import torch

    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data, run_trial
    from alsys.sweep import load_sweep

    sweep = Sweep(tmp_path, "fault_trial", [0])
    driver = sweep.start()

    def after_round_two() -> Any:
        for record in sweep.progress().values():
            if len(record["rounds"]) >= 2:
                return record
        return None

    reported = wait_for(after_round_two, 240, "round 2 was done", driver)
    killed_pid, killed_after = int(reported["pid"]), len(reported["rounds"])
    os.kill(killed_pid, signal.SIGKILL)  # the trial's worker, mid-way through the next round
    killed_at = time.time()
    for record_after in sweep.progress().values():  # a round may have ended before the kill
        if int(record_after["pid"]) == killed_pid:
            killed_after = max(killed_after, len(record_after["rounds"]))
    assert sweep.wait(driver) == 0, sweep.log.read_text()
    assert not alive(killed_pid)
    log = sweep.log.read_text()
    assert "failed and is retried from its last round" in log, log[-3000:]  # the driver says so

    (reported_rows,) = sweep.results().values()
    # Tune's own log is at least once around a kill: it may lose the report a dying worker had
    # in flight (that round's row is then missing), or log a round whose checkpoint it had not
    # yet registered, which the retry then replays (a second, identical row with replayed=1;
    # the sweep's summary keeps the last row per round). And when Tune restarts a trial from a
    # checkpoint, its JsonLoggerCallback copies result.json back from the storage path over
    # the driver's copy (ray/tune/logger/json.py, log_trial_start): rows not yet synced there,
    # those before the kill, can be gone (seen here at 353a224 too). MLflow, checked below,
    # has every round exactly once.
    rows: list[dict[str, Any]] = []
    for row in reported_rows:
        if rows and int(row["round"]) == int(rows[-1]["round"]):
            assert row["replayed"] == 1, (rows[-1], row)
            assert row["balanced_accuracy"] == rows[-1]["balanced_accuracy"], (rows[-1], row)
            rows[-1] = row
        else:
            rows.append(row)
    rounds = [int(r["round"]) for r in rows]
    # Resumed, not restarted: no round run twice, and the last one done; Tune's log holds at
    # least every round after the kill.
    assert rounds == sorted(set(rounds)) and rounds[-1] == 5 and rounds[0] <= killed_after + 1
    new = [r for r in rows if int(r["round"]) > killed_after]
    assert [int(r["round"]) for r in new] == list(range(killed_after + 1, 6))
    assert all(int(r["pid"]) != killed_pid and r["replayed"] == 0 for r in new), "new worker"
    client, children = sweep.mlflow_children()
    record(
        "trial worker SIGKILL mid-round",
        affected=1,
        completed=int(rounds[-1] == 5),
        runs=[1, len(children)],
        rows=[5, steps_logged(client, children)],
        recovery_s=round(float(new[0]["timestamp"]) - killed_at, 1),  # to the next new round
    )
    assert len(children) == 1, "one MLflow run for the trial, also after the retry"
    run = children[0]
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "balanced_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]

    # An uninterrupted run of the same trial, in this process, with the same thread count.
    (config,) = [t.config for t in load_sweep(sweep.config).trials]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        state = run_trial(config, prepare_data(config, EmbeddingStore(tmp_path / "store")))
    finally:
        torch.set_num_threads(threads)
    logged = {m.step: m.value for m in history}
    assert [logged[r.round] for r in state.rounds] == [r.balanced_accuracy for r in state.rounds]
    assert [float(r["balanced_accuracy"]) for r in rows] == [
        state.rounds[int(r["round"]) - 1].balanced_accuracy for r in rows
    ]
    artifact = client.download_artifacts(run.info.run_id, "selections.json", str(tmp_path))
    selections = json.loads(Path(artifact).read_text())
    assert [s["indices"] for s in selections] == [r.selected for r in state.rounds]
    assert np.isfinite([r.balanced_accuracy for r in state.rounds]).all()


def test_driver_killed_mid_sweep_resume_finishes_without_reruns_or_duplicates(
    tmp_path: Path,
    warm_store: Path,
) -> None:
    """Survives: every finished trial (not re-run: no new rounds, same MLflow run), every
    unfinished one (continued by ``--resume``), and exactly one MLflow run per trial."""
    sweep = Sweep(tmp_path, "fault_driver", [0, 1, 2, 3])
    driver = sweep.start()

    def one_finished_one_not() -> Any:
        progress = sweep.progress()
        done = {k for k, record in progress.items() if len(record["rounds"]) == 5}
        return (done, progress) if done and len(done) < 4 else None

    done, saved = wait_for(one_finished_one_not, 300, "a trial finished", driver)
    before = {name: saved[name]["rounds"] for name in done}
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # Ray's own processes outlive a SIGKILLed driver; none may stay. Two of them stayed
    # through a 20 s wait when that was measured, so they are given 5 s, then ended by pid.
    lingering = end_session(driver.pid, grace=5)
    print(f"Ray processes of the killed driver ended by pid after 5 s: {lingering}")
    runs_before = {r.info.run_name: r.info.run_id for r in sweep.mlflow_children()[1]}

    resumed, started = sweep.start("--resume"), time.monotonic()
    try:
        assert sweep.wait(resumed) == 0, sweep.log.read_text()
    finally:
        end_session(resumed.pid)
    resume_s = time.monotonic() - started

    after = sweep.results()
    assert len(after) == 4
    for name, rows in after.items():
        rounds = [int(r["round"]) for r in rows]
        # An unfinished trial continues from the checkpoint Tune's saved state names, so a
        # round its worker ran past that point may be reported again (and logged once).
        assert sorted(set(rounds)) == [1, 2, 3, 4, 5] and rounds[-1] == 5, f"{name}: {rounds}"
        if name in done:
            # Not re-run: every round carries the values measured before the kill (timings
            # included); at most Tune is told them again from the saved progress.
            measured = ("balanced_accuracy", "selection_seconds", "training_seconds")
            last = {r["round"]: [r[k] for k in measured] for r in rows}
            first = {r["round"]: [r[k] for k in measured] for r in before[name]}
            assert last == first, f"{name} finished before the kill and was re-run"
    client, children = sweep.mlflow_children()
    record(
        "sweep driver SIGKILL, then --resume",
        affected=4 - len(done),
        completed=sum(rows[-1]["round"] == 5 for rows in after.values()),
        runs=[4, len(children)],
        rows=[20, steps_logged(client, children)],
        recovery_s=round(resume_s, 1),
    )
    assert len(children) == 4, "no duplicate MLflow runs after --resume"
    for run in children:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "accuracy")]
        assert sorted(steps) == [1, 2, 3, 4, 5], f"{run.info.run_name}: {steps}"
        if run.info.run_name in runs_before:
            assert runs_before[run.info.run_name] == run.info.run_id


def test_mlflow_server_down_mid_sweep_loses_and_doubles_nothing(
    tmp_path: Path, warm_store: Path
) -> None:
    """Survives: every trial and every round's metrics. While the server is down the trials'
    writes are retried (MLflow's client backs off for about 4 minutes before giving up, and
    then the trial fails loudly and Tune retries it); once it is back each round is there
    exactly once."""
    port = free_port()
    server = start_mlflow(tmp_path, port)
    sweep = Sweep(tmp_path, "fault_mlflow", [0, 1], uri=f"http://127.0.0.1:{port}")
    driver = sweep.start()
    try:
        wait_for(lambda: any(sweep.progress().values()), 240, "a round", driver)
        stop_mlflow(server)  # by its pid: the whole server session
        down = time.monotonic()
        time.sleep(10)  # trials go on selecting and training; their writes wait
        rounds_while_down = sum(len(r["rounds"]) for r in sweep.progress().values())
        server = start_mlflow(tmp_path, port)  # same port, same store
        outage = time.monotonic() - down
        back = time.monotonic()
        assert sweep.wait(driver) == 0, sweep.log.read_text()
        finished = time.monotonic() - back
        client, children = sweep.mlflow_children()
        history = {
            run.info.run_name: [
                m.step for m in client.get_metric_history(run.info.run_id, "balanced_accuracy")
            ]
            for run in children
        }
    finally:
        stop_mlflow(server)
        end_session(driver.pid)
    print(f"MLflow down for {outage:.0f} s; {rounds_while_down} rounds reported by then")
    record(
        f"MLflow server down {outage:.0f} s mid-sweep",
        affected=2,
        completed=sum(run.info.status == "FINISHED" for run in children),
        runs=[2, len(children)],
        rows=[10, sum(len(v) for v in history.values())],
        recovery_s=round(finished, 1),
    )
    assert len(children) == 2 and all(run.info.status == "FINISHED" for run in children)
    for name, steps in history.items():
        assert sorted(steps) == [1, 2, 3, 4, 5], f"{name}: {steps}"


def test_two_sweeps_at_once_share_the_store_and_the_experiment_safely(tmp_path: Path) -> None:
    """Survives: both sweeps, each with its own parent run and children, in one MLflow
    experiment; the embedding they both need is computed once (the store's file lock)."""
    from mlflow import MlflowClient

    port = free_port()
    server = start_mlflow(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    for name in ("fault_two_a", "fault_two_b"):
        (tmp_path / name).mkdir()
    sweeps = [
        Sweep(tmp_path / name, name, seeds, uri=uri, steps=300)  # the two meet in the store
        for name, seeds in (("fault_two_a", [0, 1]), ("fault_two_b", [2, 3]))
    ]
    try:
        drivers = [
            s.start("--experiment", "shared", "--store", str(tmp_path / "store")) for s in sweeps
        ]
        codes = [s.wait(d) for s, d in zip(sweeps, drivers, strict=True)]
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("shared")
        runs = client.search_runs([experiment.experiment_id])
        steps = {
            r.info.run_id: [m.step for m in client.get_metric_history(r.info.run_id, "accuracy")]
            for r in runs
        }
    finally:
        stop_mlflow(server)
        for driver in locals().get("drivers", []):
            end_session(driver.pid)
    entries = [p for p in (tmp_path / "store").iterdir() if p.is_dir() and p.name[0] != "."]
    record(
        "two sweeps at once, one store, one experiment",
        affected=4,
        completed=sum(r.info.status == "FINISHED" for r in runs if "seed" in r.data.params),
        runs=[6, len(runs)],
        rows=[20, sum(len(v) for v in steps.values())],
        recovery_s=None,
        embeddings_trained=len(entries),
    )
    assert codes == [0, 0], [s.log.read_text()[-3000:] for s in sweeps]
    parents = {r.info.run_name: r.info.run_id for r in runs if r.info.run_name.startswith("sweep-")}
    assert set(parents) == {"sweep-fault_two_a", "sweep-fault_two_b"}
    for name, seeds in (("fault_two_a", [0, 1]), ("fault_two_b", [2, 3])):
        children = [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[f"sweep-{name}"]
        ]
        assert sorted(int(r.data.params["seed"]) for r in children) == seeds
        for run in children:
            assert run.info.status == "FINISHED" and sorted(steps[run.info.run_id]) == [
                1,
                2,
                3,
                4,
                5,
            ]
    assert len(runs) == 6
    entries = [
        p for p in (tmp_path / "store").iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    assert len(entries) == 1, "one SimCLR training for both sweeps"
    trained = [s.name for s in sweeps if "alsys: trained SimCLR" in s.log.read_text()]
    assert len(trained) == 1, f"trained in {trained}"


DISK_FULL_WRITER = r"""
import json, os, resource, signal, sys
import numpy as np
from alsys.embed.store import EmbeddingStore, StoreWriteError

root, how = sys.argv[1], sys.argv[2]
if how == "rlimit":  # every file this process writes is capped at 256 KiB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
store = EmbeddingStore(root)
spec = {"dataset": "digits", "dims": [512]}
big = {"train": np.ones((1437, 512), np.float32), "test": np.ones((360, 512), np.float32)}
out = {}
try:
    store.get_or_compute(spec, lambda: big)  # 2.9 MiB for 1 MiB of disk
    out["error"] = None
except StoreWriteError as error:
    out["error"] = str(error)
    out["errno"] = error.errno
out["left"] = sorted(p.name for p in store.root.iterdir() if not p.name.endswith(".lock"))
out["read_back"] = store.load(spec) is not None
small = {"train": np.ones((10, 8), np.float32)}
out["small_ok"] = bool((store.get_or_compute({"small": 1}, lambda: small)["train"] == 1).all())
out["small_read_back"] = EmbeddingStore(root).load({"small": 1}) is not None
print(json.dumps(out))
"""


def _tmpfs_argv(folder: Path) -> list[str] | None:
    """A 1 MiB tmpfs at ``folder`` for one command, in a private mount namespace (root, or an
    unprivileged user namespace); None where neither is allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m none {folder}"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return None
    return [
        unshare,
        "-rm",
        "sh",
        "-c",
        f'mount -t tmpfs -o size=1m none {folder} && exec "$@"',
        "-",
    ]


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_disk_full_during_an_embedding_write_fails_cleanly(tmp_path: Path, how: str) -> None:
    """Survives: the store. The write fails with a clear error, no partial entry is left or
    read as valid, and the store goes on serving (and writing) entries that fit.

    ``tmpfs``: a real 1 MiB filesystem that fills (ENOSPC). ``rlimit``: the writer's file size
    capped (EFBIG), which needs no mount rights, so it runs everywhere."""
    store = tmp_path / "store"
    store.mkdir()
    argv = [sys.executable, "-c", DISK_FULL_WRITER, str(store), how]
    if how == "tmpfs":
        prefix = _tmpfs_argv(store)
        if prefix is None:
            pytest.skip("no tmpfs can be mounted here (no root, no user namespaces)")
        argv = prefix + argv
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # numpy's writer reports a short write without an errno; the OS's ENOSPC/EFBIG otherwise
    assert out["errno"] in (None, {"tmpfs": 28, "rlimit": 27}[how]), out
    assert (
        ("disk full" in out["error"])
        or ("No space" in out["error"])
        or ("too large" in out["error"])
    ), out
    assert "nothing of it was kept" in out["error"] and "\n" not in out["error"]
    assert out["left"] == [], f"a partial entry or staging folder was left: {out['left']}"
    assert out["read_back"] is False
    assert out["small_ok"] and out["small_read_back"]
    limit = "tmpfs 1 MiB" if how == "tmpfs" else "RLIMIT_FSIZE"
    record(
        f"disk full during an embedding write ({limit})",
        affected=1,
        completed=int(out["small_ok"] and not out["left"]),
        runs=["-", "-"],
        rows=["-", "-"],
        recovery_s=round(time.perf_counter() - start, 1),
    )
