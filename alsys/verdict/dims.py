"""The verdict on thesis 4.4, "D_typ affects the performance more than D_clst".

Per strategy run on a D_clst x D_typ grid, per cell (dataset/budget/setting):

- the share of the grid's variance each dimension explains, and its p-value: a two-way ANOVA
  over the seeds, or restricted permutations when its assumptions fail
  (:func:`alsys.verdict.anova.two_way` says which and why);
- the thesis's own criterion: for each fixed D_clst, is some D_typ above TypiClust at the
  largest D pair (the chapter's "typiclust-rp (512D)")? And for each fixed D_typ, some D_clst?
  One-sided paired t-tests over seeds, Holm-corrected over the grid's points;
- the best D_typ;
- one sentence: agrees with the thesis, disagrees, or not enough seeds to tell (with the
  seeds a grid would need at the observed effect size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alsys.strategies import DIM_STRATEGIES, TYPICLUST
from alsys.verdict.anova import MOST_SEEDS, POWER, TwoWay, effect_f2, seeds_needed, two_way
from alsys.verdict.base import CELL, Finding, Table, Verdict, p_text, subject
from alsys.verdict.claims import CLAIMS
from alsys.verdict.paired import ALPHA, holm, paired_t_greater

CLAIM = "d_typ_over_d_clst"
THESIS_GOOD_D_TYP = (64, 128, 256)  # thesis 4.4, CIFAR-10 with D up to 512


@dataclass(frozen=True)
class Grid:
    """One strategy's grid: the D_clst (a,) and D_typ (b,) levels, the seeds every point ran
    (n,), and ``values`` (a, b, n), the area under the learning curve."""

    clst: tuple[int, ...]
    typ: tuple[int, ...]
    seeds: tuple[int, ...]
    values: np.ndarray


@dataclass(frozen=True)
class Criterion:
    """The thesis's criterion against ``baseline``: per grid point (D_clst, D_typ) the mean
    paired difference to the baseline, its one-sided p and Holm's p, and whether it is above;
    how many fixed D_clst (rows) and fixed D_typ (columns) have a point above. ``why`` says
    why it could not be tested (then the counts are 0)."""

    baseline: str
    seeds: int
    points: tuple[tuple[int, int, float, float, float, bool], ...]
    rows_with: int
    columns_with: int
    why: str = ""


def grid_of(trials: Any) -> Grid | str:
    """The grid of one strategy's trials (rows of the seed table), over the seeds every point
    ran; or why there is none."""
    clst = tuple(sorted(int(c) for c in trials.d_clst.unique()))
    typ = tuple(sorted(int(t) for t in trials.d_typ.unique()))
    if len(clst) < 2 or len(typ) < 2:
        return "not a grid (one D_clst or one D_typ)"
    by_point = {
        (int(c), int(t)): dict(zip(g.seed, g.auc, strict=True))
        for (c, t), g in trials.groupby(["d_clst", "d_typ"])
    }
    if len(by_point) < len(clst) * len(typ):
        return f"the grid is incomplete ({len(by_point)} of {len(clst) * len(typ)} points ran)"
    seeds = tuple(sorted(set.intersection(*(set(v) for v in by_point.values()))))
    if not seeds:
        return "no seed ran at every point of the grid"
    values = np.array([[[by_point[(c, t)][s] for s in seeds] for t in typ] for c in clst])
    return Grid(clst, typ, seeds, values.astype(np.float64))


def criterion(grid: Grid, baseline: Any, name: str, exclude: tuple[int, int] | None) -> Criterion:
    """``baseline``: the baseline's area under the curve per seed (a Series seed -> auc), or
    None; ``exclude``: the grid point that is the baseline itself (TypiClust's own)."""
    if baseline is None:
        return Criterion(name, 0, (), 0, 0, "no TypiClust at the largest D pair in this cell")
    seeds = [s for s in grid.seeds if s in baseline.index]
    if len(seeds) < 2:
        paired = f"{len(seeds)} paired seed{'' if len(seeds) == 1 else 's'}"
        return Criterion(name, len(seeds), (), 0, 0, f"{paired} cannot test it")
    where = [grid.seeds.index(s) for s in seeds]
    base = baseline.loc[seeds].to_numpy(dtype=np.float64)
    keys = [
        (i, j) for i, c in enumerate(grid.clst) for j, t in enumerate(grid.typ) if (c, t) != exclude
    ]
    tests = [paired_t_greater(grid.values[i, j, where], base) for i, j in keys]
    adjusted = holm([t.p for t in tests])
    above = {key: bool(p < ALPHA) for key, p in zip(keys, adjusted, strict=True)}
    points = tuple(
        (grid.clst[i], grid.typ[j], t.mean_difference, t.p, float(q), above[(i, j)])
        for (i, j), t, q in zip(keys, tests, adjusted, strict=True)
    )
    rows = sum(
        any(above.get((i, j), False) for j in range(len(grid.typ))) for i in range(len(grid.clst))
    )
    columns = sum(
        any(above.get((i, j), False) for i in range(len(grid.clst))) for j in range(len(grid.typ))
    )
    return Criterion(name, len(seeds), points, rows, columns)


def criterion_sentence(result: Criterion, grid: Grid) -> str:
    a, b = len(grid.clst), len(grid.typ)
    head = f"The thesis's criterion against {result.baseline}"
    if result.why:
        return f"{head} is not tested: {result.why}."
    if result.rows_with == a and result.columns_with < b:
        judged = "as the thesis found"
    elif result.columns_with == b and result.rows_with < a:
        judged = "the reverse of what the thesis found"
    else:  # both all, or neither all: the same word for the two
        every = "every" if result.rows_with == a else "not every"
        judged = (
            f"{every} fixed D_clst and {every} fixed D_typ has one, so it does not tell them apart"
        )
    return (
        f"{head} (one-sided paired t-tests over {result.seeds} seeds, Holm-corrected over "
        f"{len(result.points)} grid points): {result.rows_with} of {a} fixed D_clst and "
        f"{result.columns_with} of {b} fixed D_typ have a point above it: {judged}."
    )


def main_sentence(two: TwoWay, grid: Grid) -> tuple[str, str]:
    """The outcome and its sentence: which dimension's effect is shown (both: the larger
    share), or, when neither is, the seeds the larger one needs (F-test power)."""
    clst, typ = two.effect("D_clst"), two.effect("D_typ")
    shares = (
        f"D_typ explains {typ.share:.0%} of the grid's variance ({p_text(typ.p)}) and D_clst "
        f"{clst.share:.0%} ({p_text(clst.p)})"
    )
    shown = [e for e in (clst, typ) if e.p < ALPHA]
    if shown:
        winner = max(shown, key=lambda e: e.share)
        if winner is typ:
            return "agrees", f"agrees with the thesis: {shares}."
        return "disagrees", f"disagrees with the thesis: {shares}."
    larger = max((clst, typ), key=lambda e: e.share)
    a, b, n = grid.values.shape
    f2 = effect_f2(larger, two.effect("residual"), a * b * n)
    needed = seeds_needed(f2, a, b, larger.df) if f2 == f2 else None
    power = f"with {POWER:.0%} power"
    if needed is not None:
        more = f"about {needed} seeds per grid point would show the {larger.name} effect {power}"
    elif f2 == 0.0:
        more = f"the {larger.name} effect is no larger than the noise, so no number of seeds would"
    else:
        more = f"more than {MOST_SEEDS} seeds per grid point would be needed {power}"
    size = f"f² = {f2:.3g}" if f2 == f2 else "f² not computable"
    return "not enough seeds", (
        f"not enough seeds to tell: {shares}, neither significant at alpha = {ALPHA} with {n} "
        f"seed{'s' if n != 1 else ''}; at the observed effect size ({size}), {more}."
    )


def best_typ_sentence(grid: Grid) -> str:
    means = grid.values.mean(axis=(0, 2))
    best = int(np.argmax(means))
    good = ", ".join(map(str, THESIS_GOOD_D_TYP))
    return (
        f"Best D_typ: {grid.typ[best]} (mean {means[best]:.3f} over D_clst and seeds; the "
        f"thesis's good D_typ on CIFAR-10 are {good})."
    )


def _baseline(block: Any) -> tuple[str, Any, tuple[int, int]] | None:
    """TypiClust at the largest D pair of the cell, with its defaults: name, auc per seed."""
    typiclust = block[(block.kind == TYPICLUST) & (block.params == "{}")]
    if typiclust.empty:
        return None
    top = (int(typiclust.d_clst.max()), int(typiclust.d_typ.max()))
    at_top = typiclust[(typiclust.d_clst == top[0]) & (typiclust.d_typ == top[1])]
    if at_top.empty:
        return None
    return f"{TYPICLUST} {top[0]}/{top[1]}", at_top.set_index("seed").auc, top


@dataclass(frozen=True)
class _Judged:
    """One strategy's grid in one cell, judged: its finding, method note and table rows."""

    finding: Finding
    note: str
    anova: tuple[tuple[Any, ...], ...]
    points: tuple[tuple[Any, ...], ...]


def judge(about: str, trials: Any, base: Any, rng: np.random.Generator) -> _Judged:
    """One strategy's trials in one cell against the cell's baseline (:func:`_baseline`)."""
    grid = grid_of(trials)
    if isinstance(grid, str):
        return _Judged(Finding(about, "no grid", f"no verdict: {grid}."), "", (), ())
    two = two_way(grid.values, rng)
    outcome, sentence = main_sentence(two, grid)
    own = base is not None and trials.label.iloc[0] == TYPICLUST  # TypiClust's own grid
    name, auc = (base[0], base[1]) if base is not None else ("", None)
    test = criterion(grid, auc, name, base[2] if own else None)
    sentence += " " + criterion_sentence(test, grid) + " " + best_typ_sentence(grid)
    means = grid.values.mean(axis=2)
    return _Judged(
        Finding(about, outcome, sentence),
        _method_note(two),
        tuple((about, e.name, e.share, e.f, e.p, _short(two)) for e in two.effects),
        tuple(
            (about, *point, float(means[grid.clst.index(point[0]), grid.typ.index(point[1])]))
            for point in test.points
        ),
    )


def d_typ_over_d_clst(seeds: Any, rng: np.random.Generator) -> Verdict:
    """seeds: the seed table (:func:`alsys.verdict.base.seed_table`); ``rng`` draws the
    permutations. TypiClust's findings come first: the thesis's claim is about it."""
    data = seeds[
        seeds.kind.isin(DIM_STRATEGIES)
        & (seeds.space == "simclr")
        & seeds.d_clst.notna()
        & seeds.d_typ.notna()
    ]
    judged = [
        judge(subject(str(label), tuple(cell)), trials, _baseline(block), rng)
        for cell, block in data.groupby(list(CELL))
        for label, trials in block.groupby("label")
    ]
    judged.sort(key=lambda j: not j.finding.subject.startswith(f"{TYPICLUST},"))
    findings = tuple(j.finding for j in judged) or (
        Finding("this sweep", "no grid", "no verdict: no D_clst x D_typ grid ran."),
    )
    notes = _grouped([j for j in judged if j.note])
    if any(f.outcome == "not enough seeds" for f in findings):
        notes.append(POWER_NOTE)
    anova = Table(
        "anova",
        "Share of the grid's variance",
        ("subject", "factor", "share", "F", "p", "test"),
        tuple(row for j in judged for row in j.anova),
    )
    points = Table(
        "grid_points",
        "Each grid point against the baseline (the thesis's criterion)",
        ("subject", "d_clst", "d_typ", "mean_difference", "p", "p_holm", "above", "mean_auc"),
        tuple(row for j in judged for row in j.points),
        printed=False,
    )
    return Verdict(CLAIM, CLAIMS[CLAIM], findings, tuple(notes), (anova, points))


POWER_NOTE = (
    "Seeds needed: the F test's power for a main effect, P(F' > F_crit) with F' noncentral "
    "F(df_effect, ab(n - 1), λ = f² a b n), at the observed f² = df_effect (F - 1) / N "
    f"(Cohen's f², unbiased for the noise), alpha = {ALPHA}, {POWER:.0%} power."
)


def _short(two: TwoWay) -> str:
    return "F test" if two.method.startswith("two-way") else "permutation"


def _method_note(two: TwoWay) -> str:
    """Which test gave the p-values, and why that one."""
    seeds = f"{two.seeds} seed{'s' if two.seeds != 1 else ''} per grid point"
    if not two.why:
        normal = f"residuals normal (Shapiro-Wilk p = {two.shapiro_p:.2g})"
        return f"{two.method} over {seeds}, {normal}."
    return f"{two.method} over {seeds}, because {two.why}."


def _grouped(judged: list[_Judged]) -> list[str]:
    """The method notes, once per distinct note, after the subjects they are about."""
    by_note: dict[str, list[str]] = {}
    for one in judged:
        by_note.setdefault(one.note, []).append(one.finding.subject)
    return [f"{'; '.join(subjects)}: {note}" for note, subjects in by_note.items()]
