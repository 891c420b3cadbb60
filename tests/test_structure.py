"""The package's structure, measured on the code as it runs or as it is written:

- a trial's path from its YAML to its first metric, in module-to-module hops (at most 8);
- its strategy built once per trial in the worker, its config checked once, on the driver;
- no import cycle, no function over 80 lines, no module over 500 lines;
- MLflow in one module, Ray in the sweep layer, no strategy named outside alsys/strategies.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

from tests.conftest import toy_data

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alsys"
MAX_HOPS = 8
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500

# -- A trial's path, from its YAML to its first metric -------------------------------------
#
# How the hops are counted. A sweep reads its YAML in one call chain (the driver's stack when
# yaml.safe_load runs) and hands its trials to Tune in another (the driver's stack when
# tune.Tuner.fit runs); Tune runs the trial in a worker, where the first metric is logged (the
# worker's stack when TrialTracker.log_round first runs). The trial's path is the walk through
# the call tree that joins these: up the YAML reader's stack to the frame the two driver stacks
# share, down to the Tuner, across to the worker (Tune runs the trainable), and down the
# worker's stack to the tracker. Each step from a frame of one module to a frame of another is
# a hop; frames outside alsys/ and sweeps/ (yaml, Tune, Ray) are not counted, so the jump from
# the driver to the worker is one hop (from launch.py to trainable.py). Every frame of alsys and
# sweeps code on those stacks counts, helpers included: a module that only forwards the trial
# adds its hops. Validation and construction detours off this path are bounded apart: the
# config is checked once, on the driver, and the strategy built once per trial, in the worker.


def _module(frame: FrameType) -> str | None:
    """alsys/sweep/launch.py for a frame of alsys or sweeps code, else None."""
    path = Path(frame.f_code.co_filename)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    return relative.as_posix() if relative.parts[0] in ("alsys", "sweeps") else None


def _stack(frame: FrameType | None) -> list[str]:
    """The alsys/sweeps frames of a stack, outermost first, as ``module:function``."""
    out = []
    while frame is not None:
        module = _module(frame)
        if module is not None:
            out.append(f"{module}:{frame.f_code.co_qualname}")
        frame = frame.f_back
    return out[::-1]


def hops(yaml_stack: list[str], fit_stack: list[str], worker_stack: list[str]) -> list[str]:
    """The modules the trial's path passes, one entry per hop's start and the last's end."""
    shared = 0
    while shared < min(len(yaml_stack), len(fit_stack)) and yaml_stack[shared] == fit_stack[shared]:
        shared += 1
    # Up from the YAML reader to the frame both driver stacks share, down to the Tuner.
    frames = yaml_stack[shared - 1 :][::-1] + fit_stack[shared:] + worker_stack
    modules = [f.split(":")[0] for f in frames]
    return [m for i, m in enumerate(modules) if i == 0 or m != modules[i - 1]]


def worker_trace_hook() -> None:
    """Runs in every Ray worker (runtime_env's worker_process_setup_hook): records, per trial
    it runs, the stack when its first metric is logged, and the strategy constructions and
    config checks the worker made, into $ALSYS_TEST_TRACE/<pid>.json."""
    import os as os_
    import sys as sys_
    import threading as threading_
    from pathlib import Path as Path_

    from alsys.config import TrialConfig
    from alsys.strategies import REGISTRY
    from alsys.tracking import TrialTracker

    folder = Path_(os_.environ["ALSYS_TEST_TRACE"])
    # By identity: the __init__ of two field-less strategies are equal code objects.
    inits = {id(cls.__init__.__code__): name for name, cls in REGISTRY.items()}
    check = TrialConfig.__post_init__.__code__
    log_round, finish = TrialTracker.log_round.__code__, TrialTracker.finish.__code__
    events: list[Any] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if id(code) in inits:
            events.append(["built", inits[id(code)]])
        elif code is check:
            events.append(["checked"])
        elif code is log_round and not any(e[0] == "metric" for e in events[-1:]):
            stack = []
            walk = frame
            while walk is not None:
                name = walk.f_code.co_filename
                for part in ("/alsys/", "/sweeps/"):
                    if part in name and "/tests/" not in name:
                        module = part.strip("/") + "/" + name.split(part, 1)[1]
                        stack.append(f"{module}:{walk.f_code.co_qualname}")
                        break
                walk = walk.f_back
            events.append(["metric", stack[::-1]])
        elif code is finish:
            events.append(["finished"])
            (folder / f"{os_.getpid()}.json").write_text(json.dumps(events))

    sys_.setprofile(profile)
    threading_.setprofile(profile)


TRIAL_YAML = """name: hops
dataset: digits
setting: ssl
budget: tiny
strategies: [supclust]
seeds: [0, 1]
d_clst: [8]
d_typ: [8]
episodes: 2
embed_epochs: 3
ssl: {steps: 30}
resources: {cpu: 1, gpu: 0}
max_failures: 0
"""


class DriverTrace:
    """The driver's side: its stacks when it reads the YAML and when it hands the trials to
    Tune, and the strategies it built and configs it checked."""

    def __init__(self) -> None:
        import yaml
        from ray import tune

        from alsys.config import TrialConfig
        from alsys.strategies import REGISTRY

        self.inits = {id(cls.__init__.__code__): name for name, cls in REGISTRY.items()}
        self.check = TrialConfig.__post_init__.__code__
        self.read, self.fit = yaml.safe_load.__code__, tune.Tuner.fit.__code__
        self.built: Counter[str] = Counter()
        self.checked = 0
        self.stacks: dict[str, list[str]] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if id(code) in self.inits:
            self.built[self.inits[id(code)]] += 1
        elif code is self.check:
            self.checked += 1
        elif code is self.read and "yaml" not in self.stacks:
            self.stacks["yaml"] = _stack(frame)
        elif code is self.fit and "fit" not in self.stacks:
            self.stacks["fit"] = _stack(frame)


@pytest.mark.integration
def test_a_trial_takes_at_most_8_hops_and_its_strategy_is_built_once_in_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_store: Path
) -> None:
    """A two-trial sweep (two seeds of one configuration) on a real local Ray and MLflow."""
    import ray
    from ray import cloudpickle

    from alsys.sweep.cli import sweep_main

    (tmp_path / "hops.yaml").write_text(TRIAL_YAML)
    traces = tmp_path / "traces"
    traces.mkdir()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels by value
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={
            "worker_process_setup_hook": worker_trace_hook,
            "env_vars": {"ALSYS_TEST_TRACE": str(traces)},
        },
    )
    monkeypatch.setattr("alsys.config._VALID_STRATEGIES", set())  # as in a fresh driver
    driver = DriverTrace()
    argv = ["--config", str(tmp_path / "hops.yaml"), "--storage-path", str(tmp_path / "ray")]
    argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--store", str(warm_store)]
    sys.setprofile(driver)
    try:
        code = sweep_main(ROOT / "sweeps" / "dim_grid.yaml", argv)
    finally:
        sys.setprofile(None)
        ray.shutdown()
    assert code == 0
    events = [e for f in traces.glob("*.json") for e in json.loads(f.read_text())]
    metric = next(e[1] for e in events if e[0] == "metric")
    path = hops(driver.stacks["yaml"], driver.stacks["fit"], metric)
    print("the trial's path:", " -> ".join(path), f"({len(path) - 1} hops)")
    assert path[0] == "alsys/sweep/spec.py" and path[-1] == "alsys/tracking.py"
    assert len(path) - 1 <= MAX_HOPS, path
    # Built once per trial in the worker; checked once per trial, on the driver, where
    # validation built it once for both trials (same parameters).
    assert driver.checked == 2 and driver.built == {"supclust": 1}
    per_trial = _per_trial(events)
    assert len(per_trial) == 2 and all(e == {"built": 1, "checked": 0} for e in per_trial)


def _per_trial(events: list[Any]) -> list[dict[str, int]]:
    """Each trial's constructions and checks in its worker: the events up to its run's end."""
    out, current = [], {"built": 0, "checked": 0}
    for event in events:
        if event[0] in current:
            current[event[0]] += 1
        elif event[0] == "finished":
            out.append(current)
            current = {"built": 0, "checked": 0}
    return out


def test_the_path_counts_every_module_change_and_one_for_tune() -> None:
    yaml = ["sweeps/x.py:<module>", "alsys/sweep/cli.py:main", "alsys/sweep/spec.py:load"]
    fit = ["sweeps/x.py:<module>", "alsys/sweep/cli.py:main", "alsys/sweep/launch.py:launch"]
    worker = ["alsys/sweep/trainable.py:trainable", "alsys/tracking.py:log"]
    assert hops(yaml, fit, worker) == [
        "alsys/sweep/spec.py",
        "alsys/sweep/cli.py",
        "alsys/sweep/launch.py",
        "alsys/sweep/trainable.py",
        "alsys/tracking.py",
    ]


@pytest.mark.slow  # a profiler on every call
def test_the_strategy_is_built_once_per_trial_and_each_config_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In this process: the spec's expansion (the driver's part), then trials through the
    loop's rounds (what a worker runs for them; the integration test above runs it all)."""
    from alsys.classifiers import model_for
    from alsys.config import TrialConfig
    from alsys.loop import rounds
    from alsys.results import TrialState
    from alsys.strategies import REGISTRY
    from alsys.sweep import SweepSpec

    built: Counter[str] = Counter()
    # By identity: the __init__ of two field-less strategies are equal code objects.
    inits = {id(cls.__init__.__code__): name for name, cls in REGISTRY.items()}
    check = TrialConfig.__post_init__.__code__

    def count(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and id(frame.f_code) in inits:
            built[inits[id(frame.f_code)]] += 1
        elif event == "call" and frame.f_code is check:
            built["(config checked)"] += 1

    spec = SweepSpec(
        name="built",
        axes={"strategy": ["random", "typiclust"], "seed": [0, 1, 2], "d_clst": [8, 16]},
        fixed={"episodes": 3, "ssl": {"steps": 5}},  # the training is not what is counted
        strategy_params={"typiclust": [{}, {"k_neighbors": 5}]},
    )
    monkeypatch.setattr("alsys.config._VALID_STRATEGIES", set())
    sys.setprofile(count)
    try:
        trials = spec.sweep().trials
    finally:
        sys.setprofile(None)
    # 3 Random + 3 x 2 x 2 TypiClust, each config built (so checked) once; validation builds
    # each distinct parameter set once: Random, TypiClust, TypiClust with k_neighbors = 5.
    assert len(trials) == 15
    assert built == {"(config checked)": 15, "random": 1, "typiclust": 2}
    data = toy_data()
    built.clear()
    ran = [trials[0], trials[-1]]  # a Random and a TypiClust trial, 3 rounds each
    for trial in ran:
        state = TrialState(np.full(data.dataset.n_train, -1, dtype=np.int64))
        model = model_for(trial.config, data.dataset.n_classes)
        sys.setprofile(count)
        try:
            assert len(list(rounds(trial.config, data, state, model))) == 3
        finally:
            sys.setprofile(None)
    expected = Counter(t.config.strategy for t in ran)
    assert built == expected, "once per trial, and no config checked again"


# -- Imports, sizes, edges -------------------------------------------------------------------


def _python_files(*roots: str) -> list[Path]:
    return sorted(f for root in roots for f in (ROOT / root).rglob("*.py"))


def _module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``, which never run."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            out.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return out


def import_graph() -> dict[str, set[str]]:
    """alsys module -> the alsys modules it imports when it runs, at module level or inside
    functions (``from package import submodule`` is an edge to the submodule; an import under
    ``if TYPE_CHECKING:`` never runs and is none)."""
    modules = {_module_name(f): f for f in _python_files("alsys")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, file in modules.items():
        tree = ast.parse(file.read_text())
        typing_only = _typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_alsys_module_imports_the_command_line() -> None:
    """``alsys.cli`` parses and dispatches; the library (``alsys.select`` included) never
    reaches back into it."""
    graph = import_graph()
    assert graph, "the import graph is empty"
    assert "alsys.select.paths" in graph
    importers = sorted(module for module, targets in graph.items() if "alsys.cli" in targets)
    assert importers == []


def test_the_command_line_parses_and_refuses_without_the_heavy_libraries() -> None:
    """``alsys --help`` and a one-line refusal of bad input import no torch, ray, MLflow or
    scikit-learn: a user's typo costs a fraction of a second, not the seconds those take."""
    import subprocess

    code = (
        "import sys, alsys.cli; "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def long_functions(*roots: str) -> dict[tuple[str, str], int]:
    out = {}
    for file in _python_files(*roots):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out[(file.relative_to(ROOT).as_posix(), node.name)] = lines
    return out


def test_no_function_is_over_80_lines() -> None:
    long = long_functions("alsys", "sweeps")
    assert not long, long


def test_no_module_is_over_500_lines_and_tracking_does_not_import_the_loop() -> None:
    long = {
        f.relative_to(ROOT).as_posix(): n
        for f in _python_files("alsys", "sweeps")
        if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long
    graph = import_graph()
    assert not graph["alsys.tracking"] & {"alsys.loop", "alsys.runner"}
    assert "alsys.loop" not in graph["alsys.embed.hvae"], "the loop imports the embeddings"


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


def test_mlflow_ray_and_strategy_names_stay_in_their_modules() -> None:
    from alsys.strategies import REGISTRY

    names = set(REGISTRY)
    for file in _python_files("alsys"):
        relative = file.relative_to(PACKAGE)
        tree = ast.parse(file.read_text())
        for module in _imports(tree):
            top = module.split(".")[0]
            if top == "mlflow":
                assert relative.as_posix() == "tracking.py", f"{relative} imports {module}"
            if top == "ray":
                assert relative.parts[0] == "sweep", f"{relative} imports {module}"
        if relative.parts[0] == "strategies":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names:
                raise AssertionError(f"{relative}:{node.lineno} names strategy {node.value!r}")
