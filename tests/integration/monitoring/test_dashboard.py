"""The Grafana dashboard and the alerts query metrics the code really exports, in PromQL
the real Prometheus accepts."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from agentfleet.dev.localenv import PrometheusServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
FILES = REPO / "charts" / "agentfleet" / "files"
METRIC = re.compile(r"\bagentfleet_[a-z_]+")
# Suffixes Prometheus client libraries append to the names declared in code.
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    return [r["expr"] for group in rules["groups"] for r in group["rules"]]


def _declared_in_code(name: str, source: str) -> bool:
    candidates = {name} | {name.removesuffix(s) for s in SUFFIXES if name.endswith(s)}
    return any(f'"{c}"' in source for c in candidates)


def test_every_referenced_metric_is_exported_by_the_package() -> None:
    source = "\n".join(p.read_text() for p in (REPO / "operator" / "agentfleet").rglob("*.py"))
    referenced = {m for e in _dashboard_exprs() + _alert_exprs() for m in METRIC.findall(e)}
    assert referenced, "no agentfleet metric referenced at all"
    missing = sorted(m for m in referenced if not _declared_in_code(m, source))
    assert missing == [], f"dashboard/alerts use metrics no code exports: {missing}"


def test_dashboard_queries_parse_in_prometheus(prometheus_server: PrometheusServer) -> None:
    for expr in _dashboard_exprs():
        concrete = expr.replace("$namespace", ".*")
        url = f"{prometheus_server.url}/api/v1/query?" + urllib.parse.urlencode({"query": concrete})
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert json.load(resp)["status"] == "success", concrete
        except urllib.error.HTTPError as exc:
            pytest.fail(f"Prometheus rejected {concrete!r}: {exc.read().decode()}")
