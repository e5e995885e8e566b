"""Prometheus metrics of the operator's reconciliation."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "agentfleet_operator_reconciles_total",
    "Reconciliations by kind and result (ok, problem: Ready=False, error: retried).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "agentfleet_operator_reconcile_duration_seconds",
    "Time to reconcile one object.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DRIFT_CORRECTIONS = Counter(
    "agentfleet_operator_drift_corrections_total",
    "Children changed by someone else and restored by the operator.",
    ["kind"],
)
BUDGET_EXHAUSTED = Gauge(
    "agentfleet_project_budget_exhausted",
    "1 while a Project has spent its daily budget (budgets.tokensPerDay or costPerDayUsd) "
    "and its queued work waits for 00:00 UTC, else 0.",
    ["namespace", "project"],
)
