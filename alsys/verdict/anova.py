"""The two-way analysis of a D_clst x D_typ grid over seeds, pure functions: the ANOVA table of
a balanced design, its permutation version when the F test's assumptions fail, and the number
of seeds a main effect of the observed size needs.

``values`` is always (a, b, n): a levels of the row factor (D_clst), b of the column factor
(D_typ), n seeds at every grid point (balanced: the caller keeps the seeds every point ran).
With n = 1 there is no error within a grid point: the model is additive and the interaction
is the error (it cannot be told apart from noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alsys.verdict.paired import ALPHA

PERMUTATIONS = 9999  # p resolves to 1e-4; the grid is small, so this costs milliseconds
POWER = 0.8  # the power the seeds-needed figure is for (Cohen's convention)
MOST_SEEDS = 1000  # beyond this, "more than 1000 seeds": no sweep will run them


@dataclass(frozen=True)
class Effect:
    """One line of the table: its sum of squares, degrees of freedom, share of the total sum
    of squares (eta squared: the share of the grid's variance it explains), F and p (NaN for
    the residual, and for the interaction under the permutation test)."""

    name: str
    ss: float
    df: int
    share: float
    f: float
    p: float


@dataclass(frozen=True)
class TwoWay:
    """The grid's analysis: rows, columns, interaction (absent with one seed) and residual;
    which test gave the p-values, and why that one; the Shapiro-Wilk p of the residuals (NaN
    when not computed)."""

    effects: tuple[Effect, ...]
    method: str
    why: str
    seeds: int
    shapiro_p: float

    def effect(self, name: str) -> Effect:
        return next(e for e in self.effects if e.name == name)


def sums_of_squares(values: np.ndarray) -> dict[str, np.ndarray]:
    """The balanced design's sums of squares of ``values`` (..., a, b, n), over any leading
    batch axes (the permutations): ``rows``, ``columns``, ``interaction``, ``within`` (zero
    when n = 1) and ``total``, each of shape (...)."""
    a, b, n = values.shape[-3:]
    grand = values.mean(axis=(-3, -2, -1), keepdims=True)
    cell = values.mean(axis=-1, keepdims=True)
    row = cell.mean(axis=-2, keepdims=True)
    column = cell.mean(axis=-3, keepdims=True)
    return {
        "rows": b * n * ((row - grand) ** 2).sum(axis=(-3, -2, -1)),
        "columns": a * n * ((column - grand) ** 2).sum(axis=(-3, -2, -1)),
        "interaction": n * ((cell - row - column + grand) ** 2).sum(axis=(-3, -2, -1)),
        "within": ((values - cell) ** 2).sum(axis=(-3, -2, -1)),
        "total": ((values - grand) ** 2).sum(axis=(-3, -2, -1)),
    }


def _degrees(a: int, b: int, n: int) -> dict[str, int]:
    return {
        "rows": a - 1,
        "columns": b - 1,
        "interaction": (a - 1) * (b - 1),
        "within": a * b * (n - 1),
    }


def _error(ss: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, str]:
    """The error sum of squares and its name: within the grid points, or the interaction when
    one seed leaves none within (the additive model)."""
    return (ss["within"], "within") if n > 1 else (ss["interaction"], "interaction")


def f_statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """F of the rows, the columns and (n > 1) the interaction, over any leading batch axes."""
    a, b, n = values.shape[-3:]
    ss, df = sums_of_squares(values), _degrees(a, b, n)
    error, name = _error(ss, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_error = error / df[name]
        factors = ("rows", "columns", "interaction") if n > 1 else ("rows", "columns")
        return {f: (ss[f] / df[f]) / mean_error for f in factors}


def anova_table(values: np.ndarray, names: tuple[str, str] = ("D_clst", "D_typ")) -> TwoWay:
    """The two-way ANOVA of ``values`` (a, b, n): F tests against the within-point error
    (n > 1), or against the interaction in the additive model (n = 1)."""
    from scipy.stats import f as fisher

    a, b, n = values.shape
    ss, df = sums_of_squares(values), _degrees(a, b, n)
    error, error_name = _error(ss, n)
    total = float(ss["total"])
    fs = f_statistics(values)
    effects = []
    for key, name in (("rows", names[0]), ("columns", names[1]), ("interaction", "interaction")):
        if key not in fs:
            continue
        f = float(fs[key])
        p = math.nan if math.isnan(f) else float(fisher.sf(f, df[key], df[error_name]))
        effects.append(Effect(name, float(ss[key]), df[key], _share(ss[key], total), f, p))
    residual = Effect(
        "residual", float(error), df[error_name], _share(error, total), *[math.nan] * 2
    )
    return TwoWay((*effects, residual), "two-way ANOVA (F test)", "", n, math.nan)


def _share(ss: np.ndarray | float, total: float) -> float:
    return float(ss) / total if total > 0 else math.nan


def permutation_p(values: np.ndarray, factor: str, rng: np.random.Generator) -> float:
    """The p-value of ``factor``'s F ("rows" or "columns") under restricted permutations:
    the observations are shuffled across the factor's levels within each level of the other
    factor (which keeps the other factor's effect), PERMUTATIONS times; p counts the observed
    F among them, (1 + #{F* >= F}) / (1 + PERMUTATIONS)."""
    observed = float(f_statistics(values)[factor])
    if math.isnan(observed):  # nothing varies at all
        return math.nan
    a, b, n = values.shape
    # Put the factor's levels (with the seeds) on the last axis, per level of the other factor.
    strata = (
        values.transpose(1, 0, 2).reshape(b, a * n)
        if factor == "rows"
        else values.reshape(a, b * n)
    )
    copies = np.broadcast_to(strata, (PERMUTATIONS, *strata.shape))
    shuffled = rng.permuted(copies, axis=-1)
    if factor == "rows":
        batch = shuffled.reshape(PERMUTATIONS, b, a, n).transpose(0, 2, 1, 3)
    else:
        batch = shuffled.reshape(PERMUTATIONS, a, b, n)
    null = f_statistics(batch)[factor]
    exceeded = int(np.count_nonzero(null >= observed * (1 - 1e-12)))
    return (1 + exceeded) / (1 + PERMUTATIONS)


def residuals(values: np.ndarray) -> np.ndarray:
    """(a * b * n,) the residuals of the model :func:`anova_table` fits."""
    cell = values.mean(axis=-1, keepdims=True)
    if values.shape[-1] > 1:
        return np.asarray(values - cell).ravel()
    grand = values.mean()
    row, column = values.mean(axis=(1, 2), keepdims=True), values.mean(axis=(0, 2), keepdims=True)
    return np.asarray(values - row - column + grand).ravel()


def two_way(
    values: np.ndarray, rng: np.random.Generator, names: tuple[str, str] = ("D_clst", "D_typ")
) -> TwoWay:
    """The ANOVA when its assumptions hold; else the same table with permutation p-values for
    the two main effects. The F test needs an error within grid points (n >= 2 seeds) and
    normal residuals (Shapiro-Wilk p >= ALPHA)."""
    from scipy.stats import shapiro

    table = anova_table(values, names)
    n = values.shape[-1]
    spread = residuals(values)
    shapiro_p = math.nan
    if n < 2:
        why = "one seed leaves no error within a grid point"
    elif np.ptp(spread) == 0.0:
        why = "the residuals are all equal (Shapiro-Wilk cannot judge them)"
    else:
        shapiro_p = float(shapiro(spread).pvalue)
        if shapiro_p >= ALPHA:
            return TwoWay(table.effects, table.method, "", n, shapiro_p)
        why = f"the residuals are not normal (Shapiro-Wilk p = {shapiro_p:.3g})"
    p = {
        names[0]: permutation_p(values, "rows", rng),
        names[1]: permutation_p(values, "columns", rng),
    }
    effects = tuple(
        Effect(e.name, e.ss, e.df, e.share, e.f, p.get(e.name, math.nan)) for e in table.effects
    )
    method = f"permutation test ({PERMUTATIONS} restricted permutations)"
    return TwoWay(effects, method, why, n, shapiro_p)


def effect_f2(effect: Effect, error: Effect, total_n: int) -> float:
    """Cohen's f^2 = sigma^2_effect / sigma^2_error of a main effect, estimated without the
    noise's bias from the balanced design's expected mean squares:
    E[SS_effect] = N sigma^2_effect + df_effect sigma^2_error, so
    f^2 = df_effect (F - 1) / N (0 when F <= 1: no effect beyond the noise)."""
    if not math.isfinite(effect.f) or error.df == 0:
        return math.nan
    return max(0.0, effect.df * (effect.f - 1.0) / total_n)


def power(f2: float, a: int, b: int, n: int, df_effect: int, alpha: float = ALPHA) -> float:
    """The F test's power for a main effect of size f^2 with n seeds per point of an a x b
    grid: P(F' > F_crit), F' noncentral F(df_effect, ab(n - 1), lambda = f^2 a b n)."""
    from scipy.stats import f as fisher
    from scipy.stats import ncf

    df_error = a * b * (n - 1)
    critical = fisher.ppf(1.0 - alpha, df_effect, df_error)
    return float(ncf.sf(critical, df_effect, df_error, f2 * a * b * n))


def seeds_needed(
    f2: float, a: int, b: int, df_effect: int, alpha: float = ALPHA, target: float = POWER
) -> int | None:
    """The fewest seeds per grid point (>= 2) with which :func:`power` reaches ``target``;
    None beyond MOST_SEEDS (or for no effect at all)."""
    if not f2 > 0:
        return None
    low, high = 2, MOST_SEEDS
    if power(f2, a, b, high, df_effect, alpha) < target:
        return None
    while low < high:  # power grows with n: bisect
        middle = (low + high) // 2
        if power(f2, a, b, middle, df_effect, alpha) >= target:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True)
class VarianceSplit:
    """How much of the spread of a result comes from the representation (between embedding
    trainings) and how much from the selection (between selection seeds within a training):
    variance components of the one-way random-effects model y_es = mu + R_e + S_es."""

    representation: float
    selection: float
    share: float  # representation / (representation + selection); NaN when both are 0
    trainings: int
    seeds: int


def variance_split(values: np.ndarray) -> VarianceSplit:
    """values: (E, S), E embedding trainings x S selection seeds each. From the expected mean
    squares, sigma^2_sel = MS_within and sigma^2_rep = max(0, (MS_between - MS_within) / S)."""
    trainings, seeds = values.shape
    if trainings < 2 or seeds < 2:
        return VarianceSplit(math.nan, math.nan, math.nan, trainings, seeds)
    means = values.mean(axis=1)
    within = float(((values - means[:, None]) ** 2).sum()) / (trainings * (seeds - 1))
    between = seeds * float(((means - means.mean()) ** 2).sum()) / (trainings - 1)
    representation = max(0.0, (between - within) / seeds)
    total = representation + within
    share = representation / total if total > 0 else math.nan
    return VarianceSplit(representation, within, share, trainings, seeds)
