"""`alsys select` under hypothesis: random pools, labeled sets, budgets, strategies and
parameters. Each call either selects correctly (exactly b unique, in-range, unlabeled rows) or
refuses with one line naming a field and exit code 2; it never crashes (exit 1) and never
returns an invalid selection."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alsys.cli import main
from alsys.strategies import REGISTRY

# The strategies that select from embeddings (with or without a model's outputs besides).
EMBEDDING = sorted(
    n
    for n, cls in REGISTRY.items()
    if cls.inputs.space or cls.inputs.features or not (cls.inputs.probs or cls.inputs.mc_samples)
)
MODEL = sorted(set(REGISTRY) - set(EMBEDDING))
PARAMS = {
    "temperature": st.sampled_from(["1.0", "0.01", "-1", "0", "nan", "abc"]),
    "typ_ratio": st.sampled_from(["0.1", "1", "0", "2"]),
    "k_neighbors": st.sampled_from(["1", "20", "0", "-3"]),
    "n_classes": st.sampled_from(["2", "10", "0"]),
    "bogus": st.just("1"),
}


@st.composite
def calls(
    draw: st.DrawFn,
) -> tuple[list[str], dict[str, np.ndarray], str, int, int, list[int]]:
    n = draw(st.integers(0, 60) | st.integers(20, 60))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    strategy = draw(st.sampled_from([*EMBEDDING, *MODEL, "nope"]))
    arrays: dict[str, np.ndarray] = {}
    if strategy in MODEL:
        classes = draw(st.integers(1, 4))
        probs = rng.dirichlet(np.ones(classes), size=(n,)) if n else np.zeros((0, classes))
        if draw(st.booleans()):
            probs = np.stack([probs] * 3)  # MC samples
        arrays["probs"] = probs
        if draw(st.booleans()):
            arrays["embeddings"] = rng.normal(size=(n, d)).astype(np.float32)
    else:
        x = rng.normal(size=(n, d)).astype(np.float32)
        if n and draw(st.integers(0, 19)) == 0:
            x[rng.integers(n), 0] = np.nan
        if draw(st.integers(0, 19)) == 0:
            x = x[:, :0]  # no columns
        arrays["embeddings"] = x
    labeled = sorted(
        draw(st.lists(st.integers(-2, n + 2), max_size=max(0, min(n + 3, 30)), unique=True))
    )
    valid = draw(st.integers(0, 3)) > 0  # mostly well-formed calls, so selections get checked
    if valid:
        labeled = [i for i in labeled if 0 <= i < n][: max(0, n - 2)]
        budget = draw(st.integers(1, max(1, n - len(labeled))))
    else:
        budget = draw(st.integers(-1, n + 2))
    params = draw(
        st.dictionaries(st.sampled_from(sorted(PARAMS)), st.none(), max_size=0 if valid else 2)
    )
    argv = [f"--param={k}={draw(PARAMS[k])}" for k in params]
    return argv, arrays, strategy, budget, n, labeled


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(calls())
def test_select_either_selects_correctly_or_refuses_clearly(
    call: tuple[list[str], dict[str, np.ndarray], str, int, int, list[int]],
) -> None:
    argv, arrays, strategy, budget, n, labeled = call
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args = ["select", "--strategy", strategy, "--budget", str(budget), "--quiet"]
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
            args += [f"--{name}", str(folder / f"{name}.npy")]
        (folder / "labeled.txt").write_text(" ".join(map(str, labeled)))
        args += ["--labeled", str(folder / "labeled.txt"), "--out", str(folder / "out.json")]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                code = main([*args, *argv])
            except SystemExit as exit_:  # argparse refusals
                code = int(exit_.code or 0)
        out = folder / "out.json"
        event(f"exit {code}")  # --hypothesis-show-statistics: how often each outcome came up
        if code == 0:
            chosen = json.loads(out.read_text())["selected"]
            assert len(chosen) == budget == len(set(chosen))
            assert all(0 <= i < n and i not in labeled for i in chosen)
        else:
            assert code == 2, f"crashed: {stderr.getvalue()}"
            message = stderr.getvalue().strip()
            assert message.startswith("alsys select: error:") and "\n" not in message, message
            assert not out.exists(), "no partial output on a refusal"
