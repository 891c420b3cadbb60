"""cluster/ and the Dockerfile: static checks of every manifest, and a real two-node Ray
cluster on this machine running the smoke sweep against a real MLflow server over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import serve_mlflow

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
YAMLS = sorted(CLUSTER.rglob("*.yaml"))
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY|API_KEY", re.IGNORECASE)


def ray_pin() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if re.match(r"ray\[", d)]
    return spec.split("==")[1]


def documents() -> list[tuple[Path, Any]]:
    return [(f, doc) for f in YAMLS for doc in yaml.safe_load_all(f.read_text()) if doc]


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_every_yaml_under_cluster_parses() -> None:
    assert {f.name for f in YAMLS} >= {"aws.yaml", "gcp.yaml", "raycluster.yaml", "rayjob.yaml"}
    assert len(documents()) >= 8


def test_every_manifest_and_the_dockerfile_use_the_pinned_ray_version() -> None:
    pin = ray_pin()
    texts = {f: f.read_text() for f in [*YAMLS, ROOT / "Dockerfile"]}
    seen = 0
    for file, text in texts.items():
        for version in re.findall(r"rayproject/ray:([0-9.]+)", text):
            assert version == pin, f"{file.name}: rayproject/ray:{version}, pyproject pins {pin}"
            seen += 1
        for version in re.findall(r"alsys:[\w.]*-ray([0-9.]+?)-", text):
            assert version == pin, f"{file.name}: image tag for Ray {version}, not {pin}"
            seen += 1
        for version in re.findall(r"rayVersion:\s*\"?([0-9.]+)", text):
            assert version == pin, f"{file.name}: rayVersion {version}, not {pin}"
            seen += 1
    assert seen >= 6
    assert f"FROM rayproject/ray:{pin}-py311-gpu" in texts[ROOT / "Dockerfile"]


def test_no_manifest_carries_a_plaintext_secret() -> None:
    for file, doc in documents():
        assert doc.get("kind") != "Secret", f"{file.name}: a Secret belongs to kubectl, not git"
        for node in walk(doc):
            if isinstance(node, dict) and isinstance(node.get("name"), str) and "value" in node:
                assert not SECRET_NAME.search(node["name"]), (
                    f"{file.name}: {node['name']} has an inline value; use valueFrom/secretKeyRef"
                )
            if isinstance(node, str):
                # user:password@host only with $(VAR) references filled from Secrets
                for credentials in re.findall(r"://([^/@\s]+)@", node):
                    assert re.fullmatch(r"\$\(\w+\):\$\(\w+\)", credentials), (file.name, node)
    for file in [*YAMLS, ROOT / "Dockerfile", *sorted((CLUSTER / "local").iterdir())]:
        text = file.read_text()
        assert not re.search(r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text), file
        assert "BEGIN PRIVATE KEY" not in text, file


def test_raycluster_enables_token_auth_and_keeps_trials_off_the_head() -> None:
    docs = {doc["kind"]: doc for _, doc in documents() if "kind" in doc}
    cluster = docs["RayCluster"]["spec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (gpu,) = cluster["workerGroupSpecs"]
    (worker,) = gpu["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert {"/dev/shm", "/mnt/shared"} <= mounts
    shm = [v for v in gpu["template"]["spec"]["volumes"] if v["name"] == "dshm"]
    assert shm[0]["emptyDir"]["medium"] == "Memory"
    job = docs["RayJob"]["spec"]
    assert "sweeps/dim_grid.py" in job["entrypoint"] and "http://" in job["entrypoint"]
    mlflow = [d for _, d in documents() if d.get("metadata", {}).get("name") == "mlflow"]
    (server,) = [d for d in mlflow if d["kind"] == "Deployment"]
    args = server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(a.startswith("--allowed-hosts=") for a in args)
    assert any(a.startswith("--backend-store-uri=postgresql://") for a in args)


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_configs_have_a_cpu_head_gpu_workers_and_shared_storage(name: str) -> None:
    config = yaml.safe_load((CLUSTER / name).read_text())
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert any("--num-cpus=0" in c for c in config["head_start_ray_commands"])
    workers = [
        n for k, n in config["available_node_types"].items() if k != config["head_node_type"]
    ]
    assert workers and all(w["max_workers"] > w["min_workers"] for w in workers)
    assert any("/mnt/shared" in c for c in config["initialization_commands"])
    assert "-v /mnt/shared:/mnt/shared" in config["docker"]["run_options"]
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]


def test_dockerfile_is_non_root_pinned_and_lints_clean() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    for name in ("TORCH_VERSION", "TORCHVISION_VERSION", "FAISS_VERSION"):
        assert re.search(rf"^ARG {name}=\d", text, re.MULTILINE), name
    assert not re.search(r"^(ENV|ARG)\s+\S*(TOKEN|PASSWORD|SECRET)", text, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data", "*.db", "ray_results", "store"} <= set(ignored)
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    with serve_mlflow(tmp_path) as url:
        yield url


@pytest.mark.integration
def test_two_node_cluster_runs_the_smoke_sweep_on_both_nodes(
    tmp_path: Path, mlflow_server: str
) -> None:
    import ray
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    from alsys.sweep import SweepSpec, read_spec
    from alsys.sweep.cli import run_sweep

    smoke = read_spec(ROOT / "sweeps" / "dim_grid.yaml", smoke=True)
    spec = SweepSpec(**{**vars(smoke), "name": "two_nodes", "resources": {"cpu": 1}}).sweep()
    shared = tmp_path / "shared"  # one folder both nodes see, as NFS would be
    # No dashboard: it is tested in tests/test_dashboards.py, and here it would only take
    # a core's share from the trials (as in the other tests' local Rays, tests/conftest.py).
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address)
        errors = run_sweep(
            spec,
            storage_path=str(shared / "ray_results"),
            tracking_uri=mlflow_server,
            experiment="two_nodes",
            store_root=str(shared / "store"),
        ).errors
        with pytest.raises(Exception, match="SQLite file on this node"):
            run_sweep(
                spec,
                storage_path=str(shared / "ray_results_sqlite"),
                tracking_uri=f"sqlite:///{tmp_path / 'no.db'}",
                experiment="two_nodes",
                store_root=str(shared / "store"),
            )
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert errors == []
    nodes: dict[str, str] = {}
    for file in (shared / "ray_results" / "two_nodes").glob("*/result.json"):
        rows = [json.loads(line) for line in file.read_text().splitlines()]
        assert [r["round"] for r in rows] == [1, 2]
        nodes[rows[-1]["run_id"]] = rows[-1]["node_id"]
    assert len(nodes) == 9, "all trials finished (the 8-trial grid and Random)"
    on_second = [run for run, node in nodes.items() if node == second.node_id]
    assert on_second and len(on_second) < 9, "trials ran on both nodes"
    client = MlflowClient(tracking_uri=mlflow_server)
    for run_id in on_second:  # logged over HTTP from the second node
        history = client.get_metric_history(run_id, "balanced_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
        assert client.get_run(run_id).info.status == "FINISHED"
    entries = [p for p in (shared / "store").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1, "one SimCLR training for all 9 trials, on whichever node"
