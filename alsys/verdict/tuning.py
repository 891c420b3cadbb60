"""The verdict of a tuning sweep: on the held-out seeds, does tuned SUPClust beat SUPClust with
its default parameters, and TypiClust?

Per cell, each comparison is paired over the held-out seeds: a two-sided Wilcoxon signed-rank
test, the Hodges-Lehmann estimate of the median difference with its exact confidence interval
(from the Walsh averages), and Holm's correction over the two comparisons.
"""

from __future__ import annotations

from typing import Any

from alsys.strategies import SUPCLUST, TYPICLUST
from alsys.verdict.base import CELL, Finding, Table, Verdict, p_text, subject
from alsys.verdict.claims import CLAIMS
from alsys.verdict.paired import (
    ALPHA,
    PairedTest,
    hodges_lehmann,
    holm,
    wilcoxon_min_pairs,
    wilcoxon_paired,
)

CLAIM = "tuned_beats_default"


def _per_seed(trials: Any) -> Any:
    """auc per seed (a Series) of one configuration's trials."""
    return trials.set_index("seed").auc.sort_index()


def _judgement(test: PairedTest, adjusted: float, estimate: float) -> str:
    if test.p != test.p:
        return "cannot tell" if test.n < 2 else "identical"
    if adjusted < ALPHA:
        return "better" if estimate > 0 else "worse"
    return "within the noise"


def compare(tuned: Any, other: Any) -> tuple[PairedTest, Any]:
    """The paired Wilcoxon test of tuned vs other over the seeds both ran, and the
    Hodges-Lehmann estimate of tuned - other."""
    a, b = tuned.align(other, join="inner")
    return wilcoxon_paired(a.to_numpy(), b.to_numpy()), hodges_lehmann((a - b).to_numpy())


def _cell_sentence(rows: list[tuple[Any, ...]]) -> tuple[str, str]:
    """The outcome and sentence of one tuned configuration from its table rows."""
    main = rows[0]  # against default SUPClust
    n, estimate, low, high, coverage, p, adjusted, judged = main[2:10]
    interval = f"{coverage:.0%} CI [{low:+.4f}, {high:+.4f}]" if n else "no CI"
    said = {
        "better": "tuning helped",
        "worse": "tuning hurt",
        "within the noise": "tuning is not shown to differ from the default beyond the noise",
        "identical": "tuning changed nothing",
        "cannot tell": "too few held-out seeds to tell",
    }[judged]
    sentence = (
        f"{said}: tuned minus default SUPClust, median {estimate:+.4f} ({interval}), Wilcoxon "
        f"{p_text(p)} (Holm {adjusted:.2g}) over {n} held-out seeds"
    )
    if judged == "within the noise" and n < wilcoxon_min_pairs():
        sentence += (
            f"; {n} seeds cannot reach p < {ALPHA} in this test ({wilcoxon_min_pairs()} can)"
        )
    for row in rows[1:]:
        sentence += f"; against {row[1]}: {row[9]} (median {row[3]:+.4f}, {p_text(row[7])})"
    return judged, sentence + "."


def tuned_beats_default(seeds: Any) -> Verdict:
    """seeds: the seed table of the held-out sweep: SUPClust with tuned parameters (params
    not empty), SUPClust with its defaults, TypiClust."""
    findings, rows_out = [], []
    for cell, block in seeds[seeds.space == "simclr"].groupby(list(CELL)):
        supclust = block[block.kind == SUPCLUST]
        default = supclust[supclust.params == "{}"]
        others = [(f"default {SUPCLUST}", default)]
        others.append((TYPICLUST, block[(block.kind == TYPICLUST) & (block.params == "{}")]))
        for label, tuned in supclust[supclust.params != "{}"].groupby("label"):
            about = subject(str(label), tuple(cell))
            present = [(name, trials) for name, trials in others if not trials.empty]
            if not present or present[0][0] != others[0][0]:
                findings.append(
                    Finding(about, "cannot tell", "no default SUPClust on these seeds.")
                )
                continue
            tests = [compare(_per_seed(tuned), _per_seed(t)) for _, t in present]
            adjusted = holm([t.p for t, _ in tests])
            rows = [
                (
                    about,
                    name,
                    test.n,
                    hl.estimate,
                    hl.low,
                    hl.high,
                    hl.coverage,
                    test.p,
                    float(q),
                    _judgement(test, float(q), hl.estimate),
                )
                for (name, _), (test, hl), q in zip(present, tests, adjusted, strict=True)
            ]
            outcome, sentence = _cell_sentence(rows)
            findings.append(Finding(about, outcome, sentence))
            rows_out += rows
    columns = (
        "subject",
        "against",
        "seeds",
        "median_difference",
        "ci_low",
        "ci_high",
        "ci_coverage",
        "wilcoxon_p",
        "holm_p",
        "judgement",
    )
    notes = (
        "Median difference: the Hodges-Lehmann estimate (median of the Walsh averages of the "
        "paired differences); its interval is exact from the Walsh averages' order statistics "
        "(coverage as given: at least 95 % when the seeds allow it). Holm's correction over the "
        "two comparisons.",
    )
    table = Table(
        "paired",
        "Tuned SUPClust against each, paired over the held-out seeds",
        columns,
        tuple(rows_out),
    )
    return Verdict(
        CLAIM,
        CLAIMS[CLAIM],
        tuple(findings) or (Finding("this sweep", "cannot tell", "no tuned SUPClust ran."),),
        notes,
        (table,),
    )
