"""The sweep's last stage (analyze, after collect): its verdict on the claim its YAML names.

No Ray here. The verdict (alsys.verdict) is computed from the collect stage's rows, printed
last, written beside the results CSV (verdict.md, a CSV per table, the critical-difference
diagram of a ranking) and logged to the sweep's MLflow parent run: those files as artifacts
under ``verdict/``, the claim and the short outcome as tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from alsys.sweep.cli import SweepResult
    from alsys.sweep.spec import Sweep
    from alsys.verdict import Verdict


def conclude(sweep: Sweep, result: SweepResult, folder: Path, tracking_uri: str) -> Verdict | None:
    """Prints, writes to ``folder`` and logs to the parent run the verdict on ``sweep.claim``
    from ``result.rows``; None (and nothing printed) for a sweep that names no claim. The
    permutations are drawn from a Generator seeded by the sweep's name (``verdict_seed``), as
    `alsys report` draws them."""
    if sweep.claim is None:
        return None
    from alsys.tracking import log_verdict
    from alsys.verdict import (
        CLAIM_TAG,
        VERDICT_TAG,
        rounds_frame,
        seed_table,
        verdict_of,
        verdict_seed,
        write_verdict,
    )

    rng = np.random.default_rng(verdict_seed(sweep.name))
    verdict = verdict_of(sweep.claim, seed_table(rounds_frame(result.rows)), rng)
    files = write_verdict(verdict, folder)
    print("\n" + verdict.text())
    where = f"\nVerdict in full: {files[0]} (its tables as verdict_*.csv beside it)"
    if result.parent:
        tags = {CLAIM_TAG: sweep.claim, VERDICT_TAG: verdict.outcome()}
        log_verdict(tracking_uri, result.parent, files, tags)
        where += f", and under verdict/ on the parent run {result.parent}"
    print(where)
    return verdict
