"""Idle is not missing: a WorkerPool that never receives work (a review pool on a quiet
day) reads queue 0 with its metrics available, fills its QUEUE column, and the chart's
metrics-unavailable alert stays silent for it; the same alert fires once Prometheus is
really down.

The whole stack is real (LocalStack on the session's cluster: control plane and node,
Redis, Prometheus, the queue exporter, the operator with its autoscaler; the pool's worker
runs in a container). The alert is judged by `promtool test
rules` on the series the operator itself exported during the run: one sample of
`agentfleet_pool_metrics_available` per autoscaler poll, each taken as a minute of the
alert's time.
"""

from __future__ import annotations

import subprocess
import urllib.request
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.dev.localenv import find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Cluster

pytestmark = pytest.mark.e2e

POOL = "reviewers"
GAUGE = "agentfleet_pool_metrics_available"
DECISIONS = "agentfleet_scaling_decisions_total"
RULES = Path(__file__).resolve().parents[3] / "charts" / "agentfleet" / "files" / "alerts.yaml"
ALERT = "AgentfleetScalingMetricsUnavailable"
SAMPLES = 12
"""Autoscaler polls recorded per phase: more than the alert's 10 minutes of `for`."""


@pytest.fixture
def stack(
    local_cluster: LocalCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> LocalStack:
    """The shared stack fixture, with Project status (and so the lanes the operator
    declares) refreshed every 2 s instead of 15."""
    local = LocalStack(
        namespace=f"idle-{uuid.uuid4().hex[:6]}",
        workdir=tmp_path / "stack",
        operator_env={"AGENTFLEET_PROJECT_STATUS_SECONDS": "2"},
        cluster=local_cluster,
    )
    local.start()
    request.addfinalizer(local.stop)
    request.addfinalizer(
        lambda: (
            print(local.logs(120))
            if getattr(getattr(request.node, "rep_call", None), "failed", False)
            else None
        )
    )
    return local


def _decisions(cluster: Cluster) -> float:
    """Every decision the autoscaler took for the pool so far (one per poll)."""
    url = f"http://127.0.0.1:{cluster.stack.operator_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == DECISIONS and sample.labels.get("pool") == POOL
    )


def _decided_since(cluster: Cluster, before: float) -> bool:
    return _decisions(cluster) > before


def _firing(namespace: str) -> dict[str, object]:
    """The alert as promtool must see it, annotations rendered from the chart's rule."""
    rules = yaml.safe_load(RULES.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == ALERT)
    summary = (
        rule["annotations"]["summary"]
        .replace("{{ $labels.namespace }}", namespace)
        .replace("{{ $labels.pool }}", POOL)
    )
    return {
        "exp_labels": {**rule["labels"], "namespace": namespace, "pool": POOL},
        "exp_annotations": {"summary": summary, "description": rule["annotations"]["description"]},
    }


def _record(cluster: Cluster, samples: int) -> list[int]:
    """The gauge after each of the next `samples` autoscaler polls."""
    values = []
    for _ in range(samples):
        before = _decisions(cluster)
        wait_for(partial(_decided_since, cluster, before), 20, "the next autoscaler poll")
        values.append(int(cluster.operator_metric(GAUGE, pool=POOL)))
    return values


def _promtool(tmp_path: Path, namespace: str, series: str, cases: list[dict[str, object]]) -> str:
    (tmp_path / "alerts.yaml").write_text(RULES.read_text())
    test = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'{GAUGE}{{namespace="{namespace}",pool="{POOL}"}}',
                        "values": series,
                    }
                ],
                "alert_rule_test": cases,
            }
        ],
    }
    (tmp_path / "recorded_test.yaml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [str(find_binary("promtool")), "test", "rules", "recorded_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr if result.returncode else ""


def test_an_idle_pool_reads_zero_and_only_a_real_outage_alerts(
    stack: LocalStack, cluster: Cluster, tmp_path: Path
) -> None:
    ns = stack.namespace
    stack.add_project()
    stack.kubectl(
        "-n", ns, "apply", "-f", "-",
        stdin=f"apiVersion: agentfleet.dev/v1alpha1\nkind: WorkerPool\nmetadata: {{name: {POOL}}}\n"
        "spec: {stage: review, handler: command, minReplicas: 1, maxReplicas: 2,\n"
        "       resources: {requests: {cpu: 50m, memory: 128Mi}},\n"
        "       env: [{name: AGENTFLEET_COMMAND, value: 'true'}],\n"
        "       autoscaling: {pollIntervalSeconds: 1}}\n",
    )  # fmt: skip
    wait_for(lambda: len(cluster.pods(POOL)) == 1, 60, "the pool's worker Pod")

    # Several polls later the pool that never had an item is read, not missing.
    available = wait_for(
        lambda: (c := cluster.condition(POOL, "MetricsAvailable")) and c["status"] == "True" and c,
        60,
        "MetricsAvailable=True on a pool that never received work",
    )
    idle = _record(cluster, SAMPLES)
    assert idle == [1] * SAMPLES, idle
    pool = cluster.pool(POOL)
    assert pool["status"]["metrics"]["queueDepth"] == 0
    assert cluster.condition(POOL, "MetricsAvailable") == available, "it never flapped"
    table = stack.kubectl("-n", ns, "get", "workerpools").splitlines()
    header, row = table[0].split(), next(r.split() for r in table if r.startswith(POOL))
    assert row[header.index("QUEUE")] == "0"
    warnings_while_idle = [r for r, _ in cluster.events(POOL) if r == "MetricsUnavailable"]

    # Prometheus really down: the same pool's metrics are missing, never read as zero.
    assert stack.prometheus is not None
    stack.prometheus.stop()
    wait_for(
        lambda: (c := cluster.condition(POOL, "MetricsAvailable")) and c["status"] == "False",
        30,
        "MetricsAvailable=False while Prometheus is down",
    )
    down = _record(cluster, SAMPLES)
    assert down == [0] * SAMPLES, down
    assert cluster.pool(POOL)["status"]["metrics"].get("queueDepth") is None
    assert cluster.deployment_replicas(POOL) == 1, "never scaled down on missing data"
    assert [r for r, _ in cluster.events(POOL) if r == "MetricsUnavailable"] == [
        *warnings_while_idle,
        "MetricsUnavailable",
    ]

    # The chart's alert on exactly these series: silent while idle, firing in the outage.
    recorded = " ".join(str(v) for v in idle + down)
    assert (
        _promtool(
            tmp_path,
            ns,
            recorded,
            [
                {"eval_time": f"{SAMPLES - 1}m", "alertname": ALERT, "exp_alerts": []},
                {"eval_time": f"{SAMPLES + 9}m", "alertname": ALERT, "exp_alerts": []},
                {
                    "eval_time": f"{2 * SAMPLES - 1}m",
                    "alertname": ALERT,
                    "exp_alerts": [_firing(ns)],
                },
            ],
        )
        == ""
    )
    # The check is not vacuous: the idle half alone never fires.
    assert "FAILED" in _promtool(
        tmp_path,
        ns,
        " ".join(str(v) for v in idle),
        [
            {
                "eval_time": f"{SAMPLES - 1}m",
                "alertname": ALERT,
                "exp_alerts": [_firing(ns)],
            }
        ],
    )
