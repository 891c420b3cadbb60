"""dashboards/: the Grafana and Prometheus files parse, and a real Ray worker exports the alsys
application metrics under the names the alsys dashboard queries."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
NAMES = {
    "ray_alsys_rounds_finished_total",
    "ray_alsys_labels_bought_total",
    "ray_alsys_selection_seconds_bucket",
    "ray_alsys_selection_seconds_sum",
    "ray_alsys_selection_seconds_count",
}


def test_grafana_dashboards_and_prometheus_config_parse() -> None:
    files = sorted((DASHBOARDS / "grafana").glob("*.json"))
    assert {f.name for f in files} >= {"alsys_dashboard.json", "ray_default_dashboard.json"}
    for file in files:
        dashboard = json.loads(file.read_text())
        assert dashboard["title"] and dashboard["panels"], file.name
    alsys = json.loads((DASHBOARDS / "grafana" / "alsys_dashboard.json").read_text())
    queried = {
        name
        for panel in alsys["panels"]
        for target in panel["targets"]
        for name in re.findall(r"ray_alsys_\w+", target["expr"])
    }
    assert queried == NAMES
    config = yaml.safe_load((DASHBOARDS / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]


@pytest.mark.integration
def test_a_trial_worker_exports_the_alsys_metrics() -> None:
    import ray

    from alsys.loop import RoundResult

    @ray.remote
    def one_round() -> str:
        from alsys.sweep.trainable import TrialMetrics

        metrics = TrialMetrics("dashboards-test", "supclust")
        metrics.round_done(
            RoundResult(1, 10, 0.5, 0.5, [], [], list(range(10)), [], 0.2, 0.1, False)
        )
        time.sleep(15)  # stay alive while the node's agent exports
        return "done"

    ray.init(num_cpus=1, include_dashboard=True)
    try:
        ref = one_round.remote()
        (node,) = ray.nodes()
        url = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"
        deadline, found = time.monotonic() + 60, set()
        while time.monotonic() < deadline and found != NAMES:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            lines = [line for line in text.splitlines() if 'sweep="dashboards-test"' in line]
            found = {line.split("{")[0] for line in lines}
            time.sleep(1)
        assert found == NAMES
        labels = next(line for line in lines if line.startswith("ray_alsys_labels_bought_total"))
        assert labels.endswith(" 10.0") and 'strategy="supclust"' in labels
        assert ray.get(ref) == "done"
    finally:
        ray.shutdown()
