"""Reliability figures: one row per fault scenario, and how bad inputs were refused.

The fault scenarios are the fault tests themselves (tests/test_faults.py: a trial's worker
SIGKILLed mid-round, the driver SIGKILLed and the sweep resumed, the MLflow server stopped
mid-sweep and restarted, two sweeps at once on one store and one experiment, the disk filling
during an embedding write: a 1 MiB tmpfs and a file-size limit), run by pytest
with ALSYS_RELIABILITY_OUT set so each writes its row; plus a corrupted embedding entry,
measured here directly. Bad inputs: the catalogue (tests/test_bad_inputs.py: every command,
the sweep YAMLs, the Python API), the CLI's bad-input table, and the hypothesis fuzz of
`alsys select`, counted from pytest's JUnit report.

    .venv/bin/python benchmarks/reliability.py      # about 10 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corrupted_entry(work: Path) -> dict[str, object]:
    """Flip bytes in a stored embedding: the checksum catches it and the entry is rebuilt."""
    from alsys.config import TrialConfig
    from alsys.embed.store import EmbeddingStore
    from alsys.loop import prepare_data

    config = TrialConfig(strategy="typiclust", d_clst=16, embed_epochs=3)
    store = EmbeddingStore(work / "store")
    before = prepare_data(config, store)
    (entry,) = [p for p in store.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    target = entry / "train.npy"
    data = bytearray(target.read_bytes())
    data[-64:] = bytes(64)
    target.write_bytes(bytes(data))
    start = time.perf_counter()
    again = EmbeddingStore(work / "store")
    after = prepare_data(config, again)
    same = bool((before.clst == after.clst).all())
    return {
        "fault": "embedding file corrupted in the store",
        "affected": 1,
        "completed": int(again.computed == 1 and same),
        "runs": ["-", "-"],
        "rows": ["-", "-"],
        "recovery_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="alsys-reliability-"))
    rows_file = work / "rows.jsonl"
    env = {**os.environ, "ALSYS_RELIABILITY_OUT": str(rows_file)}
    pytest = [sys.executable, "-m", "pytest", "-m", "", "-q", "-p", "no:cacheprovider"]
    subprocess.run([*pytest, "tests/test_faults.py"], cwd=ROOT, env=env, check=False)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    rows.append(corrupted_entry(work))

    junit = work / "bad.xml"
    bad_tests = [
        "tests/test_bad_inputs.py",
        "tests/test_cli.py",
        "tests/test_select_fuzz.py",
        "tests/test_sweep.py::test_bad_sweep_configs_fail_naming_the_field",
        "tests/test_sweep.py::test_tuning_spec_rejects_bad_ranges",
        "tests/test_report.py::test_report_of_a_missing_experiment_fails_in_one_line_and_writes_nothing",
        "tests/test_sweep.py::test_bad_hvae_sweep_fields_are_named",
        "tests/test_hvae.py::test_bad_hvae_settings_name_the_field",
    ]
    subprocess.run(
        [
            *pytest,
            f"--junitxml={junit}",
            "-k",
            "bad or refuse or fuzz or missing or reject",
            *bad_tests,
        ],
        cwd=ROOT,
        check=False,
    )
    cases = ET.parse(junit).getroot().iter("testcase")
    outcomes = [not any(c.tag in ("failure", "error") for c in case) for case in cases]

    print(
        f"\n{'fault':<52} {'affected':>8} {'completed':>9} {'runs exp/found':>15} "
        f"{'metric rows exp/found':>22} {'recovery s':>10}"
    )
    for row in rows:
        runs = "/".join(map(str, row["runs"]))
        metric_rows = "/".join(map(str, row["rows"]))
        recovery = "-" if row["recovery_s"] is None else row["recovery_s"]
        print(
            f"{row['fault']:<52} {row['affected']:>8} {row['completed']:>9} {runs:>15} "
            f"{metric_rows:>22} {recovery:>10}"
        )
    print(
        f"\nbad inputs: {len(outcomes)} test cases (the fuzz case is 120 hypothesis examples), "
        f"{sum(outcomes)} refused clearly (one line naming the field, non-zero exit, no output)"
    )


if __name__ == "__main__":
    main()
