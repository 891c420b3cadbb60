"""The claims a sweep can test, and the one check of a YAML's ``claim:`` field.

Light on purpose: the sweep spec imports it to check the field where the YAML is read, before
anything runs; the statistics live in the claim modules.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from alsys.errors import InputError

# claim -> the question its verdict answers.
CLAIMS: dict[str, str] = {
    "d_typ_over_d_clst": "does D_typ affect the performance more than D_clst (thesis 4.4)?",
    "tuned_beats_default": (
        "does tuned SUPClust beat SUPClust with its default parameters, and TypiClust, on the "
        "held-out seeds?"
    ),
    "ranking": "how do the strategies rank, and which differences are more than noise?",
}
# The claims a grid sweep (sweeps/*.yaml but tune_supclust) may name; a search names its own.
GRID_CLAIMS = ("d_typ_over_d_clst", "ranking")
SEARCH_CLAIMS = ("tuned_beats_default",)
CLAIM_TAG = "alsys_claim"  # on a sweep's parent run: the claim its children are judged on
VERDICT_TAG = "alsys_verdict"  # on a sweep's parent run: the verdict's outcome, in short


def check_claim(value: Any, field: str, allowed: Sequence[str]) -> str | None:
    """The YAML's ``claim:`` (None when absent), or an InputError naming ``field``."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in CLAIMS:
        raise InputError(field, f"unknown claim {value!r}; valid: {', '.join(CLAIMS)}")
    if value not in allowed:
        raise InputError(
            field,
            f"{value} is not a claim this kind of sweep can test; it can: {', '.join(allowed)}",
        )
    return value


def check_grid_claim(
    claim: str | None,
    field: str,
    axes: Mapping[str, Sequence[Any]],
    baselines: Sequence[Mapping[str, Any]],
    typiclust: str,
) -> None:
    """What a grid sweep's claim needs of its axes. d_typ_over_d_clst: D_clst and D_typ axes
    of two values or more, and TypiClust (the chapter's baseline at the largest D pair, named
    ``typiclust`` by the caller) among the strategies or the baselines; ranking: two
    strategies or more."""
    if claim == "d_typ_over_d_clst":
        for axis in ("d_clst", "d_typ"):
            if len(set(axes.get(axis, []))) < 2:
                raise InputError(field, f"{claim} needs a {axis} axis of at least two values")
        named = {str(s) for s in axes.get("strategy", [])}
        named |= {str(b.get("strategy")) for b in baselines if isinstance(b, Mapping)}
        if typiclust not in named:
            raise InputError(
                field,
                f"{claim} compares the grid with {typiclust} at the largest D pair: list "
                f"{typiclust} among the strategies or the baselines",
            )
    if claim == "ranking" and len(axes.get("strategy", [])) < 2:
        raise InputError(field, f"{claim} needs at least two strategies")


def verdict_seed(sweep: str) -> int:
    """The seed of a sweep's verdict (its permutation tests): from the sweep's name, so the
    sweep's end and `alsys report` draw the same permutations."""
    return zlib.crc32(sweep.encode())
