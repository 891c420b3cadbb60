"""The verdicts (alsys.verdict): known answers on generated results, the statistics against
peer implementations (statsmodels, scikit-posthocs, scipy), the critical-difference diagram on
a known ranking, the claim checked where the YAML is read, and a sweep's end on a real MLflow
store."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from alsys.errors import InputError
from alsys.verdict import verdict_of
from alsys.verdict.anova import (
    PERMUTATIONS,
    anova_table,
    power,
    seeds_needed,
    two_way,
    variance_split,
)
from alsys.verdict.paired import (
    hodges_lehmann,
    holm,
    paired_t_greater,
    signed_rank_null,
    wilcoxon_min_pairs,
)
from alsys.verdict.ranks import block_ranks, cd_diagram, cliques, friedman, nemenyi

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
DIMS = (8, 16, 32, 64)
BUMP = (0.0, 0.03, 0.02, 0.0)  # good in the middle, as the thesis's good D_typ (64-256 of 512)
FLAT = (0.0, 0.0, 0.0, 0.0)


def seed_row(configuration: str, kind: str, seed: int, auc: float, **fields: Any) -> dict[str, Any]:
    """One row of the seed table (alsys.verdict.base.SEED_COLUMNS)."""
    row = {
        "label": configuration,
        "configuration": configuration,
        "kind": kind,
        "params": "{}",
        "space": "simclr",
        "dataset": "digits",
        "budget": "tiny",
        "setting": "ssl",
        "d_clst": None,
        "d_typ": None,
        "embed_seed": 0,
        "seed": seed,
        "auc": auc,
    }
    return {**row, **fields}


def grid_table(
    along_clst: tuple[float, ...],
    along_typ: tuple[float, ...],
    seeds: int = 3,
    noise: float = 0.002,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """TypiClust and SUPClust on a 4 x 4 grid: 0.85 + the D_clst effect + the D_typ effect
    + noise per seed. TypiClust at 64/64 is the baseline."""
    rng = np.random.default_rng(rng_seed)
    rows = [
        seed_row(
            kind,
            kind,
            s,
            0.85 + along_clst[i] + along_typ[j] + rng.normal(0, noise),
            d_clst=c,
            d_typ=t,
        )
        for kind in ("typiclust", "supclust")
        for i, c in enumerate(DIMS)
        for j, t in enumerate(DIMS)
        for s in range(seeds)
    ]
    frame = pd.DataFrame(rows)
    for column in ("d_clst", "d_typ"):
        frame[column] = frame[column].astype("Int64")
    return frame


def dims_verdict(frame: pd.DataFrame) -> Any:
    return verdict_of("d_typ_over_d_clst", frame, np.random.default_rng(7))


# -- d_typ_over_d_clst: known answers ---------------------------------------------------------


def test_an_effect_only_along_d_typ_agrees_with_the_thesis() -> None:
    verdict = dims_verdict(grid_table(FLAT, BUMP))
    assert [f.outcome for f in verdict.findings] == ["agrees", "agrees"]
    first = verdict.findings[0]
    assert first.subject == "typiclust, digits/tiny/ssl", "the thesis's strategy first"
    assert first.sentence.startswith("agrees with the thesis: D_typ explains 9")
    # The thesis's criterion: every fixed D_clst has a D_typ above TypiClust 64/64 (16 and 32
    # are), but the columns 8 and 64 have none.
    assert "4 of 4 fixed D_clst and 2 of 4 fixed D_typ" in first.sentence
    assert "as the thesis found" in first.sentence
    assert "Best D_typ: 16" in first.sentence
    assert verdict.notes[0].startswith(
        "typiclust, digits/tiny/ssl: two-way ANOVA (F test) over 3 seeds per grid point, "
        "residuals normal (Shapiro-Wilk p = "
    )


def test_an_effect_only_along_d_clst_disagrees_with_the_thesis() -> None:
    verdict = dims_verdict(grid_table(BUMP, FLAT))
    assert [f.outcome for f in verdict.findings] == ["disagrees", "disagrees"]
    sentence = verdict.findings[0].sentence
    assert sentence.startswith("disagrees with the thesis:")
    assert "2 of 4 fixed D_clst and 4 of 4 fixed D_typ" in sentence
    assert "the reverse of what the thesis found" in sentence


def test_no_effect_is_not_enough_seeds_with_the_seeds_a_grid_would_need() -> None:
    verdict = dims_verdict(grid_table(FLAT, FLAT))
    assert {f.outcome for f in verdict.findings} == {"not enough seeds"}
    for finding in verdict.findings:
        assert finding.sentence.startswith("not enough seeds to tell:")
        assert "neither significant at alpha = 0.05 with 3 seeds" in finding.sentence
        assert (
            "seeds per grid point would show" in finding.sentence or "no number" in finding.sentence
        )
    assert any(note.startswith("Seeds needed: the F test's power") for note in verdict.notes)


def test_a_small_effect_names_the_seeds_needed_and_that_many_would_show_it() -> None:
    """Along D_typ, 0.0015 at the best column under 0.002 noise: 3 seeds do not show it;
    the verdict's figure is the seeds with which the F test reaches 80 % power."""
    small = (0.0, 0.0015, 0.001, 0.0)
    verdict = dims_verdict(grid_table(FLAT, small, rng_seed=3))
    sentence = verdict.findings[0].sentence
    assert verdict.findings[0].outcome == "not enough seeds", sentence
    needed = int(sentence.split("about ")[1].split(" seeds")[0])
    assert 3 < needed < 100
    f2 = float(sentence.split("f² = ")[1].split(")")[0])
    assert power(f2, 4, 4, needed, 3) >= 0.8 > power(f2, 4, 4, needed - 1, 3)


def test_one_seed_or_non_normal_residuals_use_the_seeded_permutation_test() -> None:
    one = dims_verdict(grid_table(FLAT, BUMP, seeds=1))
    assert "permutation test (9999 restricted permutations)" in one.notes[0]
    assert one.notes[0] == (
        "typiclust, digits/tiny/ssl; supclust, digits/tiny/ssl: permutation test (9999 "
        "restricted permutations) over 1 seed per grid point, because one seed leaves no error "
        "within a grid point."
    ), "one note for the two grids, tested alike"
    # Heavy tails: one seed far off at every point of the grid.
    values = np.random.default_rng(0).normal(0, 0.001, size=(4, 4, 5))
    values[:, :, 0] += np.random.default_rng(1).standard_cauchy(size=(4, 4)) * 0.05
    first = two_way(values, np.random.default_rng(11))
    again = two_way(values, np.random.default_rng(11))
    assert first.method.startswith("permutation") and "Shapiro-Wilk" in first.why
    assert first == again, "the same Generator draws the same permutations"
    p = first.effect("D_typ").p
    assert 1 / (PERMUTATIONS + 1) <= p <= 1


def test_the_printed_verdict_is_a_paragraph_and_a_table_and_its_files_hold_the_rest(
    tmp_path: Path,
) -> None:
    from alsys.verdict import write_verdict

    verdict = dims_verdict(grid_table(FLAT, BUMP))
    text = verdict.text()
    assert text.startswith("Verdict on the claim 'd_typ_over_d_clst': does D_typ affect")
    assert "typiclust, digits/tiny/ssl: agrees with the thesis" in text
    assert "Share of the grid's variance:" in text and "interaction" in text
    files = write_verdict(verdict, tmp_path)
    assert [f.name for f in files] == ["verdict.md", "verdict_anova.csv", "verdict_grid_points.csv"]
    points = pd.read_csv(tmp_path / "verdict_grid_points.csv")
    assert len(points) == 15 + 16, "TypiClust's own 64/64 is the baseline, not a test of it"
    assert "# Verdict: d_typ_over_d_clst" in (tmp_path / "verdict.md").read_text()


def test_a_verdict_does_not_depend_on_the_order_of_its_trials() -> None:
    """The sweep's rows and the report's runs come in different orders: the same verdict,
    permutations (one seed) and tied ranks included."""
    for claim, table in (
        ("d_typ_over_d_clst", grid_table(FLAT, BUMP, seeds=1)),
        ("ranking", ranking_table()),
        ("tuned_beats_default", tuning_table(0.01)),
    ):
        shuffled = table.sample(frac=1.0, random_state=np.random.default_rng(5).bit_generator)
        first = verdict_of(claim, table, np.random.default_rng(3))
        again = verdict_of(claim, shuffled.reset_index(drop=True), np.random.default_rng(3))
        assert first.findings == again.findings and first.tables == again.tables, claim


# -- the statistics against peers -------------------------------------------------------------


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_anova_table_is_statsmodels_anova_lm(seeds: int) -> None:
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    rng = np.random.default_rng(seeds)
    values = rng.normal(0.9, 0.01, size=(3, 4, seeds)) + rng.normal(0, 0.01, size=(1, 4, 1))
    mine = anova_table(values)
    frame = pd.DataFrame(
        [
            {"y": values[i, j, s], "c": i, "t": j}
            for i in range(3)
            for j in range(4)
            for s in range(seeds)
        ]
    )
    formula = "y ~ C(c) * C(t)" if seeds > 1 else "y ~ C(c) + C(t)"  # one seed: additive
    peer = sm.stats.anova_lm(ols(formula, data=frame).fit(), typ=2)
    names = {"D_clst": "C(c)", "D_typ": "C(t)", "interaction": "C(c):C(t)", "residual": "Residual"}
    assert len(mine.effects) == len(peer)
    for effect in mine.effects:
        row = peer.loc[names[effect.name]]
        assert effect.ss == pytest.approx(row["sum_sq"], rel=1e-9)
        assert effect.df == row["df"]
        if effect.name != "residual":
            assert effect.f == pytest.approx(row["F"], rel=1e-9)
            assert effect.p == pytest.approx(row["PR(>F)"], rel=1e-7)
    assert sum(e.share for e in mine.effects) == pytest.approx(1.0)


def test_holm_is_statsmodels_multipletests() -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).uniform(0, 0.2, size=12)
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert np.isnan(holm([0.01, math.nan, 0.04])[1])
    assert holm([0.01, math.nan, 0.04])[[0, 2]] == pytest.approx([0.02, 0.04])


def test_the_paired_t_test_is_scipys_one_sided_ttest_rel() -> None:
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.01, 3), rng.normal(0.89, 0.01, 3)
    assert paired_t_greater(a, b).p == pytest.approx(ttest_rel(a, b, alternative="greater").pvalue)
    assert math.isnan(paired_t_greater([0.9], [0.8]).p), "one pair tests nothing"
    assert paired_t_greater([0.9, 0.9], [0.8, 0.8]).p == 0.0  # the same gain on every seed


def test_the_hodges_lehmann_interval_is_the_inverted_signed_rank_test() -> None:
    """The exact interval [lo, hi] holds the shifts the two-sided exact Wilcoxon test does not
    reject at its level: just inside it keeps them, just outside it rejects (scipy)."""
    from scipy.stats import wilcoxon

    differences = np.random.default_rng(4).normal(0.01, 0.02, size=10)
    result = hodges_lehmann(differences)
    walsh = [(x + y) / 2 for i, x in enumerate(differences) for y in differences[i:]]
    assert result.estimate == pytest.approx(np.median(walsh))
    level = 1 - result.coverage
    assert 0.95 <= result.coverage < 0.96  # n = 10: 0.951 exactly
    step = 1e-9
    for edge, inside, outside in ((result.low, +step, -step), (result.high, -step, +step)):
        keep = wilcoxon(differences - (edge + inside), method="exact").pvalue
        drop = wilcoxon(differences - (edge + outside), method="exact").pvalue
        assert keep > level - 1e-12 and drop <= level + 1e-12
    assert signed_rank_null(3).tolist() == pytest.approx(
        [1 / 8, 1 / 8, 1 / 8, 2 / 8, 1 / 8, 1 / 8, 1 / 8]
    )
    few = hodges_lehmann([0.01, 0.03])
    assert (few.low, few.high, few.coverage) == (0.01, 0.03, 0.5), "2 seeds: the range, 50 %"
    assert wilcoxon_min_pairs() == 6


def test_friedman_is_scipys_and_nemenyi_is_scikit_posthocs() -> None:
    import scikit_posthocs as sp
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(2)
    scores = np.round(rng.normal(0.9, 0.02, size=(8, 5)) + np.linspace(0.03, 0, 5), 2)  # ties
    test = friedman(scores)
    peer = friedmanchisquare(*scores.T)
    assert test.statistic == pytest.approx(peer.statistic) and test.p == pytest.approx(peer.pvalue)
    names = tuple("abcde")
    result = nemenyi(scores, names)
    peer_p = sp.posthoc_nemenyi_friedman(scores).to_numpy()
    assert np.asarray(result.p) == pytest.approx(peer_p, abs=1e-6)


def test_variance_split_of_known_trainings() -> None:
    # Two trainings, no spread within: all of it is the representation's (means 1 and 3).
    split = variance_split(np.array([[1.0, 1.0], [3.0, 3.0]]))
    assert (split.representation, split.selection, split.share) == (2.0, 0.0, 1.0)
    split = variance_split(np.array([[1.0, 3.0], [3.0, 1.0]]))
    assert (split.representation, split.selection, split.share) == (0.0, 2.0, 0.0)
    assert math.isnan(variance_split(np.ones((1, 5))).share), "one training splits nothing"


def trainings_table(*grids: tuple[tuple[float, ...], tuple[float, ...], float]) -> pd.DataFrame:
    """One grid_table per SimCLR training (``embed_seed`` 0, 1, ...): its D_clst effect, its
    D_typ effect and its offset (what the training moves every trial by); beside it Random,
    with no D pair (NA, as alsys.verdict.seed_table holds it)."""
    parts = []
    for training, (clst, typ, offset) in enumerate(grids):
        part = grid_table(clst, typ, rng_seed=training)
        random = [seed_row("random", "random", s, 0.7 + 0.01 * s) for s in range(3)]
        part = pd.concat([part, pd.DataFrame(random)], ignore_index=True)
        parts.append(part.assign(embed_seed=training, auc=part.auc + offset))
    table = pd.concat(parts, ignore_index=True)
    for column in ("d_clst", "d_typ"):
        table[column] = table[column].astype("Int64")
    return table


def test_a_verdict_on_several_trainings_says_on_which_it_holds() -> None:
    # The D_typ effect on training 0, the D_clst effect on training 1: neither answer holds on
    # both, whatever the pooled one is.
    verdict = dims_verdict(trainings_table((FLAT, BUMP, 0.0), (BUMP, FLAT, 0.0)))
    table = {t.name: t for t in verdict.tables}["per_training"]
    assert table.columns[-3:] == ("training 0", "training 1", "holds on each")
    assert [row[-3:-1] for row in table.rows] == [("agrees", "disagrees")] * 2
    assert [row[-1] for row in table.rows] == [False, False]
    assert "same on every training alone for 0 of 2 subjects" in verdict.notes[-1]
    assert "(SimCLR training, seed) pair: 2 trainings (embed_seeds 0, 1)" in verdict.notes[-1]


def test_a_training_that_moves_every_trial_is_the_representations_share() -> None:
    # The same D_typ effect on both, training 1 shifted by 0.05: the answer holds on each and
    # the spread of a configuration is mostly the representation's.
    verdict = dims_verdict(trainings_table((FLAT, BUMP, 0.0), (FLAT, BUMP, 0.05)))
    assert [f.outcome for f in verdict.findings] == ["agrees", "agrees"]
    tables = {t.name: t for t in verdict.tables}
    assert all(row[-1] is True for row in tables["per_training"].rows)
    shares = [row[-1] for row in tables["representation"].rows]
    assert len(shares) == 33 and min(shares) > 0.9, shares  # 0.05^2/2 against noise 0.002^2
    names = [row[0] for row in tables["representation"].rows]
    assert names[0] == "random" and "typiclust 8/64" in names, "no D pair: its label alone"
    assert names.index("typiclust 8/64") < names.index("typiclust 16/8"), "D's in their order"
    assert {row[2:4] for row in tables["representation"].rows} == {(2, 3)}
    note = verdict.notes[-1]
    assert "for 2 of 2 subjects; the representation accounts for a median 100 %" in note
    one = dims_verdict(trainings_table((FLAT, BUMP, 0.0)))
    assert "per_training" not in {t.name for t in one.tables}, "one training: no split"


def test_the_replicate_is_the_training_and_seed_pair() -> None:
    from alsys.verdict.representation import replicates

    # Seed 0 of one training is never paired with seed 0 of another: 2 x 3 replicates.
    both = replicates(trainings_table((FLAT, BUMP, 0.0), (FLAT, BUMP, 0.0)))
    assert sorted(set(both.seed)) == [f"e{t}/s{s}" for t in (0, 1) for s in (0, 1, 2)]
    keys = ["configuration", "d_clst", "d_typ", "seed"]
    assert not both.duplicated(subset=keys).any(), "one row per configuration and replicate"
    one = trainings_table((FLAT, BUMP, 0.0))
    assert replicates(one) is one, "one training: the seeds as they are"


def test_the_seed_table_keeps_the_training_of_each_trial() -> None:
    from alsys.stats import Configuration
    from alsys.verdict import rounds_frame, seed_table

    key = Configuration("random", (), "simclr", None, None, "digits", "tiny", "ssl").fields()
    rows = [
        {
            **key,
            "embed_seed": training,
            "seed": seed,
            "baseline": False,
            "round": step,
            "balanced_accuracy": 0.5 + 0.1 * training + 0.01 * step,
        }
        for training in (0, 1)
        for seed in (0, 1)
        for step in (1, 2)
    ]
    table = seed_table(rounds_frame(rows))
    assert len(table) == 4, "one row per (training, seed), not one per seed"
    assert sorted(zip(table.embed_seed, table.seed, table.auc.round(3), strict=True)) == [
        (0, 0, 0.515),
        (0, 1, 0.515),
        (1, 0, 0.615),
        (1, 1, 0.615),
    ]


def test_the_seeds_needed_reach_80_percent_power_in_simulation() -> None:
    """A true D_typ effect with f^2 = sigma^2_effect / sigma^2_error: at the seeds the
    formula asks for, the simulated F test rejects about 80 % of the time."""
    effect = np.array([0.0, 0.004, 0.002, 0.0])
    f2 = float(((effect - effect.mean()) ** 2).mean()) / 0.005**2
    needed = seeds_needed(f2, 4, 4, 3)
    assert needed is not None and needed > 2
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        values = 0.9 + effect[None, :, None] + rng.normal(0, 0.005, size=(4, 4, needed))
        hits += anova_table(values).effect("D_typ").p < 0.05
    assert 0.78 <= hits / 2000 <= 0.86  # power >= 0.8 at `needed`, < 0.8 at one fewer


# -- tuned_beats_default ----------------------------------------------------------------------


def tuning_table(
    tuned_gain: float, seeds: int = 10, typiclust_gain: float = -0.005
) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(3, 3 + seeds):
        base = 0.90 + rng.normal(0, 0.01)  # the seed moves every configuration alike
        tuned = "supclust temperature=0.5"
        rows += [
            seed_row(
                tuned,
                "supclust",
                s,
                base + tuned_gain + rng.normal(0, 0.002),
                params='{"temperature": 0.5}',
            ),
            seed_row("supclust", "supclust", s, base + rng.normal(0, 0.002)),
            seed_row("typiclust", "typiclust", s, base + typiclust_gain + rng.normal(0, 0.002)),
        ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("gain", "seeds", "outcome", "said"),
    [
        (0.01, 10, "better", "tuning helped: tuned minus default SUPClust, median +0.01"),
        (-0.01, 10, "worse", "tuning hurt"),
        (0.0, 10, "within the noise", "not shown to differ from the default beyond"),
        (0.01, 2, "within the noise", "2 seeds cannot reach p < 0.05 in this test (6 can)"),
    ],
)
def test_tuned_beats_default_on_generated_pairs(
    gain: float, seeds: int, outcome: str, said: str
) -> None:
    verdict = verdict_of("tuned_beats_default", tuning_table(gain, seeds), np.random.default_rng(0))
    (finding,) = verdict.findings
    assert finding.outcome == outcome and said in finding.sentence, finding.sentence
    (table,) = verdict.tables
    against = {row[1]: row for row in table.rows}
    assert set(against) == {"default supclust", "typiclust"}
    row = against["default supclust"]
    assert row[2] == seeds and row[4] <= row[3] <= row[5], "the estimate inside its interval"
    if seeds == 10:
        assert row[6] == pytest.approx(1 - 2 * 25 / 1024)  # 1 - 2 P(T+ <= 8): 25 of 2^10 sums
        assert "against typiclust:" in finding.sentence


# -- ranking and the critical-difference diagram ----------------------------------------------

KNOWN_RANKS = (1.0, 2.0, 3.5, 3.5, 5.0)


def ranking_table(cells: int = 6, seeds: int = 3) -> pd.DataFrame:
    """Five configurations whose order is the same in every cell and seed, but c and d tie:
    mean ranks 1, 2, 3.5, 3.5, 5."""
    offsets = {"a": 0.04, "b": 0.03, "c": 0.02, "d": 0.02, "e": 0.0}
    rows = [
        seed_row(
            name,
            name,
            s,
            0.85 + gain + 0.001 * s,
            dataset=f"set{cell // 2}",
            budget=("tiny", "small")[cell % 2],
        )
        for cell in range(cells)
        for s in range(seeds)
        for name, gain in offsets.items()
    ]
    return pd.DataFrame(rows)


def test_ranking_on_a_known_ranking(tmp_path: Path) -> None:
    from alsys.verdict import write_verdict

    verdict = verdict_of("ranking", ranking_table(), np.random.default_rng(0))
    cd = verdict.diagram
    assert cd is not None
    assert cd.names == tuple("abcde") and cd.mean_ranks == KNOWN_RANKS
    assert cd.blocks == 6
    # Demšar's table: q_0.05 = 2.728 for k = 5; CD = 2.728 sqrt(5 * 6 / (6 * 6)).
    assert cd.q_alpha == pytest.approx(2.728, abs=5e-4)
    assert cd.cd == pytest.approx(cd.q_alpha * math.sqrt(30 / 36))
    # a is 2.5 ranks from c and d: just beyond CD = 2.49, so no run holds a and c.
    assert cd.cliques == ((0, 1), (1, 2, 3), (2, 3, 4))
    (finding,) = verdict.findings
    assert finding.outcome == "ranked"
    assert "over 6 blocks (cells (dataset/budget/setting)" in finding.sentence
    assert "a is ahead of c, d, e and level with b" in finding.sentence
    ranks = next(t for t in verdict.tables if t.name == "ranks")
    assert [row[:2] for row in ranks.rows] == list(zip("abcde", KNOWN_RANKS, strict=True))
    cells = next(t for t in verdict.tables if t.name == "cell_ranks")
    assert {(row[1], row[2]) for row in cells.rows} == set(zip("abcde", KNOWN_RANKS, strict=True))
    files = write_verdict(verdict, tmp_path)
    png = tmp_path / "verdict_cd.png"
    assert png in files and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_cd_diagram_draws_every_name_at_its_rank_and_a_bar_per_clique(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    original = Figure.savefig

    def keep(self: Figure, *args: Any, **kwargs: Any) -> None:
        saved.append(self)
        original(self, *args, **kwargs)

    scores = np.tile(np.array([0.9, 0.8, 0.7, 0.7, 0.6]), (6, 1))
    result = nemenyi(scores, tuple("abcde"))
    Figure.savefig = keep  # type: ignore[method-assign]
    try:
        cd_diagram(result, tmp_path / "cd.png")
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    (ax,) = saved[0].axes
    texts = {t.get_text() for t in ax.texts}
    assert {"a (1.00)", "b (2.00)", "c (3.50)", "d (3.50)", "e (5.00)"} <= texts
    assert f"CD = {result.cd:.2f}" in texts
    thick = [c for c in ax.collections if max(c.get_linewidths()) == 3]
    assert len(thick) == len(result.cliques) == 3
    spans = sorted(tuple(round(x, 2) for x in c.get_segments()[0][:, 0]) for c in thick)
    assert spans == [(0.97, 2.03), (1.97, 3.53), (3.47, 5.03)], "each from its first to last rank"


def test_cliques_and_ranks_by_hand() -> None:
    assert cliques(np.array([1.0, 1.5, 2.0, 5.0]), 1.2) == ((0, 1, 2),)
    assert cliques(np.array([1.0, 3.0, 5.0]), 1.0) == ()
    assert block_ranks(np.array([[0.9, 0.8, 0.9]])).tolist() == [[1.5, 3.0, 1.5]]


def test_one_cell_ranks_over_its_seeds_and_one_block_is_not_enough() -> None:
    one_cell = ranking_table(cells=1, seeds=4)
    verdict = verdict_of("ranking", one_cell, np.random.default_rng(0))
    assert "over 4 blocks (seeds of the one cell set0/tiny/ssl)" in verdict.findings[0].sentence
    single = verdict_of("ranking", ranking_table(cells=1, seeds=1), np.random.default_rng(0))
    assert single.findings[0].outcome == "not enough blocks" and single.diagram is None


# -- the claim, where the YAML is read --------------------------------------------------------


def test_every_sweep_names_its_claim() -> None:
    from alsys.sweep import load_sweep
    from tests.sweep_scripts import load_tuning_spec

    claims = {n: load_sweep(SWEEPS / f"{n}.yaml").claim for n in ("dim_grid", "main_results")}
    assert claims == {"dim_grid": "d_typ_over_d_clst", "main_results": "ranking"}
    assert load_sweep(SWEEPS / "dim_grid.yaml", smoke=True).claim == "d_typ_over_d_clst"
    assert load_tuning_spec(SWEEPS / "tune_supclust.yaml").claim == "tuned_beats_default"


def test_a_claim_its_sweep_cannot_answer_fails_naming_the_field(tmp_path: Path) -> None:
    """The claim's needs, checked with the YAML (the field's other checks: test_sweep.py)."""
    from alsys.sweep import load_sweep

    grid = "name: x\nclaim: d_typ_over_d_clst\nseeds: [0]\nd_clst: [8, 16]\n"
    for text, problem in (
        (grid + "strategies: [supclust]\nd_typ: [8, 16]\n", "list typiclust among the"),
        (grid + "strategies: [typiclust]\n", "needs a d_typ axis of at least two values"),
        ("name: x\nclaim: ranking\nstrategies: [random]\n", "ranking needs at least two"),
    ):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(InputError, match=r"bad\.yaml: claim") as error:
            load_sweep(tmp_path / "bad.yaml")
        assert problem in str(error.value) and "\n" not in str(error.value)
    # A baseline is enough to name TypiClust.
    baseline = "baselines: [{strategy: typiclust, d_clst: max, d_typ: max}]\n"
    (tmp_path / "ok.yaml").write_text(grid + "strategies: [supclust]\nd_typ: [8, 16]\n" + baseline)
    assert load_sweep(tmp_path / "ok.yaml").claim == "d_typ_over_d_clst"


def test_the_tuning_sweep_takes_only_its_own_claim(tmp_path: Path) -> None:
    from tests.sweep_scripts import load_tuning_spec

    text = (SWEEPS / "tune_supclust.yaml").read_text()
    (tmp_path / "t.yaml").write_text(text.replace("claim: tuned_beats_default", "claim: ranking"))
    with pytest.raises(InputError, match=r"t\.yaml: claim: ranking is not a claim"):
        load_tuning_spec(tmp_path / "t.yaml")


def test_the_full_section_is_opt_in_and_reaches_512() -> None:
    from alsys.sweep import load_sweep

    full = load_sweep(SWEEPS / "dim_grid.yaml", full=True)
    dims = {(t.config.d_clst, t.config.d_typ) for t in full.trials if t.config.d_clst}
    assert len(dims) == 49 and max(dims) == (512, 512)
    assert len(full.trials) == 2 * 49 * 3 + 3
    baseline = {(t.config.d_clst, t.config.d_typ) for t in full.trials if t.baseline}
    assert baseline == {(None, None), (512, 512)}, "Random and TypiClust at 512/512"
    with pytest.raises(InputError, match=r"--full: main_results\.yaml has no full: section"):
        load_sweep(SWEEPS / "main_results.yaml", full=True)
    with pytest.raises(InputError, match="--full: give --smoke or --full, not both"):
        load_sweep(SWEEPS / "dim_grid.yaml", smoke=True, full=True)


# -- a sweep's end, on a real MLflow store ----------------------------------------------------


def _log_trials(uri: str, experiment: str, parent: str, sweep: Any, value: Any) -> None:
    """Each trial of ``sweep`` as the tracker logs it (its params, configuration tag and
    rounds), a child of ``parent``, without running it."""
    from mlflow import MlflowClient

    from alsys.tracking import CONFIGURATION_TAG

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    for trial in sweep.trials:
        config = trial.config
        tags = {"mlflow.parentRunId": parent, CONFIGURATION_TAG: config.configuration().to_json()}
        run = client.create_run(experiment_id, run_name=trial.name, tags=tags).info.run_id
        for key in ("strategy", "seed", "d_clst", "d_typ"):
            client.log_param(
                run, key, str(getattr(config, key)) if getattr(config, key) is not None else "null"
            )
        for r in (1, 2):
            client.log_metric(run, "balanced_accuracy", value(config, r), step=r)
            client.log_metric(run, "n_labeled", 10 * r, step=r)
        client.set_terminated(run)


@pytest.mark.integration
def test_a_sweeps_end_prints_writes_and_logs_its_verdict_and_the_report_opens_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2 x 2 grid of TypiClust over 3 seeds with made-up rounds (an effect along D_typ only)
    through the conclude stage to a real MLflow parent run; `alsys report` then opens with the
    same verdict, computed from the runs."""
    from mlflow import MlflowClient

    from alsys.report import build_report
    from alsys.sweep import SweepSpec
    from alsys.sweep.cli import SweepResult
    from alsys.sweep.collect import trial_rows
    from alsys.sweep.conclude import conclude
    from alsys.tracking import open_sweep_run

    axes = {"strategy": ["typiclust"], "seed": [0, 1, 2], "d_clst": [8, 16], "d_typ": [8, 16]}
    sweep = SweepSpec("dims", axes, claim="d_typ_over_d_clst").sweep()
    noise = {
        t.name: np.random.default_rng(i).normal(0, 0.002, 2) for i, t in enumerate(sweep.trials)
    }

    def value(config: Any, r: int) -> float:
        return (
            0.8 + 0.02 * r + (0.03 if config.d_typ == 8 else 0.0) + noise[config.run_name()][r - 1]
        )

    rows = [
        row
        for t in sweep.trials
        for row in trial_rows(t, [(r, value(t.config, r)) for r in (1, 2)])
    ]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = open_sweep_run(
        uri, "dims", sweep.name, {"sweep": sweep.name, "alsys_claim": "d_typ_over_d_clst"}
    )
    verdict = conclude(sweep, SweepResult(rows, [], None, parent), tmp_path / "out", uri)
    assert verdict is not None and verdict.findings[0].outcome == "agrees"
    printed = capsys.readouterr().out
    assert printed.rstrip().splitlines()[-1].startswith("Verdict in full: "), (
        "the sweep ends with it"
    )
    assert "Verdict on the claim 'd_typ_over_d_clst'" in printed
    assert "typiclust, digits/tiny/ssl: agrees with the thesis" in printed
    assert (tmp_path / "out" / "verdict.md").is_file()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(parent)
    assert run.data.tags["alsys_claim"] == "d_typ_over_d_clst"
    assert run.data.tags["alsys_verdict"] == "typiclust, digits/tiny/ssl: agrees"
    logged = {a.path for a in client.list_artifacts(parent, "verdict")}
    assert logged == {
        "verdict/verdict.md",
        "verdict/verdict_anova.csv",
        "verdict/verdict_grid_points.csv",
    }
    _log_trials(uri, "dims", parent, sweep, value)
    page = build_report("dims", tmp_path / "report", uri).read_text()
    assert page.index("<h2>Verdicts") < page.index("<h2>Learning curves"), "it opens the report"
    import html

    assert html.escape(verdict.findings[0].sentence) in page, "the same verdict from the runs"
