"""Security defaults, checked in the code and scripts themselves: servers bind to 127.0.0.1,
Ray token auth stays on, nothing the project reads is unpickled freely, no secrets in files."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "alsys").rglob("*.py"))
SELF = Path(__file__).resolve()  # this file spells out the patterns it looks for


def calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def name_of(call: ast.Call) -> str:
    return ast.unparse(call.func)


def test_no_file_is_loaded_with_pickle_enabled() -> None:
    for file in SOURCES:
        for call in calls(ast.parse(file.read_text())):
            name = name_of(call)
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if name in ("np.load", "numpy.load"):
                assert keywords.get("allow_pickle") == "False", f"{file}:{call.lineno}"
            if name == "torch.load":
                assert keywords.get("weights_only") == "True", f"{file}:{call.lineno}"
            assert name not in ("pickle.load", "pickle.loads", "cloudpickle.load"), (
                f"{file}:{call.lineno}: unpickling; use a restricted Unpickler (data/cifar.py)"
            )


def test_local_servers_bind_to_loopback_and_ray_token_auth_stays_on() -> None:
    start = (ROOT / "cluster" / "local" / "start.sh").read_text()
    assert "HOST=${HOST:-127.0.0.1}" in start
    assert '--dashboard-host "$HOST"' in start and 'mlflow server --host "$HOST"' in start
    assert "export RAY_AUTH_MODE=token" in start
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".npy", ".npz"} or not path.is_file() or path == SELF:
            continue
        text = path.read_text(errors="replace")
        assert not re.search(r"RAY_AUTH_MODE=disabled(?!\s+to opt out)", text), name
        assert not re.search(r"--host[= ]0\.0\.0\.0", text) or name.startswith("cluster/k8s/"), (
            f"{name}: binds every interface (only pods, behind a ClusterIP Service, may)"
        )


def test_no_secret_is_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    patterns = [
        r"AKIA[0-9A-Z]{16}",  # AWS access key id
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"(?i)(password|passwd|secret|token)\s*[:=]\s*['\"][^'\"$<{]{8,}['\"]",
    ]
    for name in tracked:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".npy", ".npz"} or path == SELF:
            continue
        text = path.read_text(errors="replace")
        for pattern in patterns:
            assert not re.search(pattern, text), f"{name} matches {pattern}"
