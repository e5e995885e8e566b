"""Malformed and hostile manifests, applied with kubectl against the real API server with
the operator running, as a new user would type them.

Every manifest here is either refused at `kubectl apply` with a message that names the
field, or stored and given `Ready=False` with a reason (and a Warning Event) within
seconds. None is served: no Deployment exists for any of them. The operator stays alive
throughout, and valid objects applied afterwards (including ones exactly at every limit)
are served at once.

The suite also pins down when the API server appends "some validation rules were not
checked because the object was invalid": only next to a blocking schema error (an
unsupported enum value, a missing required field, a wrong type, a string or list over its
maximum), never for the pattern, range and CEL errors that most of these cases raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Kubectl, Objects

pytestmark = pytest.mark.e2e

NOISE = "some validation rules were not checked"
BLOCKING = ("Unsupported value", "Required value", "Too long", "Too many", "must be of type")
"""How the API server words the errors it treats as blocking for CEL (strategy.go,
hasBlockingErr: NotSupported, Required, TooLong, TooMany, TypeInvalid)."""
DIGEST = "sha256:" + "f" * 64
PROJECT = "fuzz"
PROJECT_SPEC: dict[str, Any] = {
    "repository": "acme/fuzz",
    "credentialsSecretRef": {"name": "fuzz-github"},
    "pipeline": {"stages": ["genesis", "development"]},
}


@dataclass(frozen=True)
class Refused:
    """`kubectl apply` fails; the message names `field` and contains `says`."""

    field: str
    says: str = ""


@dataclass(frozen=True)
class NotReady:
    """Stored, then `Ready=False` with `reason` (and a Warning Event of that reason)."""

    reason: str


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    spec: Any
    expect: Refused | NotReady
    metadata: dict[str, Any] = field(default_factory=dict)


def pool(name: str, expect: Refused | NotReady, **spec: Any) -> Case:
    return Case("WorkerPool", name, {"stage": "development", **spec}, expect)


def project(name: str, expect: Refused | NotReady, **spec: Any) -> Case:
    return Case("Project", name, {**PROJECT_SPEC, **spec}, expect)


def env(value: str) -> list[dict[str, str]]:
    return [{"name": "GREETING", "value": value}]


def quantities(**values: Any) -> dict[str, Any]:
    return {"requests": values}


def queries(**values: object) -> dict[str, Any]:
    return {"queries": values}


IMAGE = "spec.image"
MODEL = "spec.agent.model"
CASES: list[Case] = [
    # ------------------------------------------------ WorkerPool: image references
    pool("img-space", Refused(IMAGE, "container image reference"), image="ghcr.io/a b:1"),
    pool("img-leading-space", Refused(IMAGE, "no spaces"), image=" ghcr.io/acme/worker:1"),
    pool("img-trailing-space", Refused(IMAGE), image="ghcr.io/acme/worker:1 "),
    pool("img-newline", Refused(IMAGE), image="ghcr.io/acme/worker:1\n"),
    pool("img-tab", Refused(IMAGE), image="ghcr.io/acme/\tworker:1"),
    pool("img-nul", Refused(IMAGE), image="ghcr.io/acme/worker\u0000:1"),
    pool("img-uppercase-path", Refused(IMAGE), image="ghcr.io/Acme/Worker:1"),
    pool("img-scheme", Refused(IMAGE, "no scheme"), image="https://ghcr.io/acme/worker:1"),
    pool("img-bad-digest", Refused(IMAGE), image="ghcr.io/acme/worker@sha256:xyz"),
    pool("img-long-tag", Refused(IMAGE), image="ghcr.io/acme/worker:" + "t" * 129),
    pool("img-empty", Refused(IMAGE, "at least 1 chars long"), image=""),
    pool("img-too-long", Refused(IMAGE, "Too long"), image="r/" + "a" * 511),
    pool("img-unicode", Refused(IMAGE), image="ghcr.io/acme/wörker:1"),
    pool("img-number", Refused(IMAGE, "must be of type string"), image=42),
    # ------------------------------------------------ WorkerPool: env
    pool("env-nul", Refused("spec.env[0].value", "should match"), env=env("a\u0000b")),
    pool("env-escape", Refused("spec.env[0].value"), env=env("\u001b[31mred")),
    pool("env-del", Refused("spec.env[0].value"), env=env("a\u007fb")),
    pool("env-c1", Refused("spec.env[0].value"), env=env("a\u0085b")),
    pool("env-name-equals", Refused("spec.env[0].name"), env=[{"name": "A=B", "value": "x"}]),
    pool("env-name-digit", Refused("spec.env[0].name"), env=[{"name": "1A", "value": "x"}]),
    pool("env-name-empty", Refused("spec.env[0].name"), env=[{"name": "", "value": "x"}]),
    pool("env-name-unicode", Refused("spec.env[0].name"), env=[{"name": "GRÜSSE", "value": "x"}]),
    pool(
        "env-duplicate",
        Refused("spec.env[1]", "Duplicate value"),
        env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
    ),
    pool(
        "env-two-sources",
        Refused("spec.env[0]", "set exactly one of value and secretKeyRef"),
        env=[{"name": "A", "value": "1", "secretKeyRef": {"name": "s", "key": "k"}}],
    ),
    pool(
        "env-no-source",
        Refused("spec.env[0]", "set exactly one of value and secretKeyRef"),
        env=[{"name": "A"}],
    ),
    pool("env-value-too-long", Refused("spec.env[0].value", "Too long"), env=env("v" * 32769)),
    pool(
        "env-too-many",
        Refused("spec.env", "Too many"),
        env=[{"name": f"V{i}", "value": "x"} for i in range(65)],
    ),
    pool(
        "env-value-number",
        Refused("spec.env[0].value", "must be of type"),
        env=[{"name": "A", "value": 5}],
    ),
    pool(
        "env-secret-key-space",
        Refused("spec.env[0].secretKeyRef.key"),
        env=[{"name": "A", "secretKeyRef": {"name": "fuzz-secret", "key": "a b"}}],
    ),
    pool("env-from-bad-name", Refused("spec.envFromSecrets[0]"), envFromSecrets=["Bad Secret"]),
    pool(
        "env-from-duplicate",
        Refused("spec.envFromSecrets[1]", "Duplicate"),
        envFromSecrets=["a", "a"],
    ),
    # ------------------------------------------------ WorkerPool: agent
    pool("model-nul", Refused(MODEL, "model name"), agent={"model": "claude\u0000"}),
    pool("model-space", Refused(MODEL, "no spaces"), agent={"model": "claude sonnet"}),
    pool("model-newline", Refused(MODEL), agent={"model": "claude-sonnet-4-6\n"}),
    pool("model-dash-lookalike", Refused(MODEL), agent={"model": "claude\u2013sonnet"}),
    pool("model-empty", Refused(MODEL), agent={"model": ""}),
    pool("model-too-long", Refused(MODEL, "Too long"), agent={"model": "m" * 257}),
    pool(
        "max-turns-zero",
        Refused("spec.agent.maxTurns", "greater than or equal to 1"),
        agent={"maxTurns": 0},
    ),
    pool("token-budget-low", Refused("spec.agent.tokenBudget"), agent={"tokenBudget": 999}),
    # ------------------------------------------------ WorkerPool: replicas and names
    pool(
        "min-over-max",
        Refused("spec.minReplicas", "less than or equal to maxReplicas"),
        minReplicas=4,
        maxReplicas=2,
    ),
    pool("min-negative", Refused("spec.minReplicas"), minReplicas=-1),
    pool("max-zero", Refused("spec.maxReplicas"), maxReplicas=0),
    pool(
        "max-past-limit",
        Refused("spec.maxReplicas", "less than or equal to 1000"),
        maxReplicas=1001,
    ),
    pool("replicas-string", Refused("spec.replicas", "must be of type integer"), replicas="3"),
    pool("replicas-float", Refused("spec.replicas", "must be of type integer"), replicas=1.5),
    pool(
        "grace-negative",
        Refused("spec.terminationGracePeriodSeconds"),
        terminationGracePeriodSeconds=-5,
    ),
    pool(
        "grace-past-limit",
        Refused("spec.terminationGracePeriodSeconds"),
        terminationGracePeriodSeconds=86401,
    ),
    Case(
        "WorkerPool", "stage-missing", {"minReplicas": 1}, Refused("spec.stage", "Required value")
    ),
    pool("stage-unknown", Refused("spec.stage", 'supported values: "genesis"'), stage="deploy"),
    pool("stage-number", Refused("spec.stage"), stage=1),
    pool(
        "pull-policy",
        Refused("spec.imagePullPolicy", "Unsupported value"),
        imagePullPolicy="Sometimes",
    ),
    pool("handler-uppercase", Refused("spec.handler"), handler="Claude"),
    pool("specialty-uppercase", Refused("spec.specialties[0]"), specialties=["TDD"]),
    pool(
        "specialty-duplicate",
        Refused("spec.specialties[1]", "Duplicate value"),
        specialties=["tdd", "tdd"],
    ),
    pool(
        "specialty-too-many",
        Refused("spec.specialties", "Too many"),
        specialties=[f"s{i}" for i in range(17)],
    ),
    pool("unknown-field", Refused("spec.notAField", "unknown field"), notAField=True),
    Case("WorkerPool", "spec-string", "development", Refused("spec", "must be of type object")),
    Case(
        "WorkerPool",
        "name-55-plus",
        {"stage": "review"},
        Refused(".", "at most 55 characters"),
        {"name": "p" * 56},
    ),
    Case(
        "WorkerPool", "name-dotted", {"stage": "review"}, Refused(".", "DNS-1035"), {"name": "a.b"}
    ),
    Case(
        "WorkerPool",
        "name-upper",
        {"stage": "review"},
        Refused("metadata.name", "RFC 1123"),
        {"name": "Pool"},
    ),
    # ------------------------------------------------ WorkerPool: selectors and nodes
    pool(
        "project-and-selector",
        Refused("spec.projectSelector", "not both"),
        project="fuzz",
        projectSelector={},
    ),
    pool("project-bad-name", Refused("spec.project"), project="Fuzz_Project"),
    pool(
        "selector-bad-value",
        Refused("spec.projectSelector.matchLabels.team"),
        projectSelector={"matchLabels": {"team": "a/b"}},
    ),
    pool(
        "selector-bad-key",
        Refused("spec.projectSelector.matchLabels", "label keys must be qualified names"),
        projectSelector={"matchLabels": {"-team": "a"}},
    ),
    pool(
        "selector-operator",
        Refused("spec.projectSelector.matchExpressions[0].operator", "Unsupported"),
        projectSelector={
            "matchExpressions": [{"key": "team", "operator": "Like", "values": ["a"]}]
        },
    ),
    pool(
        "selector-in-empty",
        Refused("spec.projectSelector.matchExpressions[0]", "values must be non-empty"),
        projectSelector={"matchExpressions": [{"key": "team", "operator": "In"}]},
    ),
    pool(
        "selector-exists-values",
        Refused("spec.projectSelector.matchExpressions[0]", "empty for Exists"),
        projectSelector={
            "matchExpressions": [{"key": "team", "operator": "Exists", "values": ["x"]}]
        },
    ),
    pool(
        "node-key-space",
        Refused("spec.nodeSelector", "label keys must be qualified names"),
        nodeSelector={"disk type": "ssd"},
    ),
    pool("node-value-space", Refused("spec.nodeSelector.disk"), nodeSelector={"disk": "fast ssd"}),
    pool(
        "node-value-too-long",
        Refused("spec.nodeSelector.disk", "Too long"),
        nodeSelector={"disk": "v" * 64},
    ),
    pool(
        "node-too-many",
        Refused("spec.nodeSelector", "Too many"),
        nodeSelector={f"k{i}": "v" for i in range(65)},
    ),
    # ------------------------------------------------ WorkerPool: resources
    pool(
        "cpu-word",
        Refused("spec.resources.requests.cpu", "should match"),
        resources=quantities(cpu="lots"),
    ),
    pool(
        "cpu-negative",
        Refused("spec.resources.requests", "non-negative"),
        resources=quantities(cpu="-1"),
    ),
    pool(
        "memory-bad-suffix",
        Refused("spec.resources.requests.memory"),
        resources=quantities(memory="1Gb"),
    ),
    pool(
        "memory-bool",
        Refused("spec.resources.requests.memory", "must be of type"),
        resources=quantities(memory=True),
    ),
    pool(
        "resource-name-space",
        Refused("spec.resources.requests", "resource names must be qualified names"),
        resources=quantities(**{"gpu count": "1"}),
    ),
    pool(
        "request-over-limit",
        Refused("spec.resources.requests", "less than or equal to its limit"),
        resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}},
    ),
    pool(
        "quantity-too-long",
        Refused("spec.resources.requests.cpu", "Too long"),
        resources=quantities(cpu="1" * 65),
    ),
    # ------------------------------------------------ WorkerPool: autoscaling
    pool(
        "thresholds-inverted",
        Refused("spec.autoscaling.scaleDown.utilizationBelow", "strictly below"),
        autoscaling={"scaleDown": {"utilizationBelow": 0.9}},
    ),
    pool(
        "utilization-above-one",
        Refused("spec.autoscaling.scaleUp.utilizationAbove"),
        autoscaling={"scaleUp": {"utilizationAbove": 1.5}},
    ),
    pool(
        "poll-zero",
        Refused("spec.autoscaling.pollIntervalSeconds"),
        autoscaling={"pollIntervalSeconds": 0},
    ),
    pool(
        "fallback-negative",
        Refused("spec.autoscaling.fallback.replicas"),
        autoscaling={"fallback": {"replicas": -1}},
    ),
    pool(
        "promql-nul",
        Refused("spec.autoscaling.queries.queueDepth", "should match"),
        autoscaling=queries(queueDepth="sum(x)\u0000"),
    ),
    pool(
        "promql-too-long",
        Refused("spec.autoscaling.queries.queueDepth", "Too long"),
        autoscaling=queries(queueDepth="x" * 4097),
    ),
    pool(
        "promql-number",
        Refused("spec.autoscaling.queries.utilization", "must be of type"),
        autoscaling=queries(utilization=1),
    ),
    # ------------------------------------------------ WorkerPool: stored, not served
    pool(
        "promql-prose",
        NotReady("InvalidSpec"),
        autoscaling=queries(queueDepth="the queue depth please"),
    ),
    pool(
        "promql-range",
        NotReady("InvalidSpec"),
        autoscaling=queries(queueDepth="agentfleet_queue_depth[5m]"),
    ),
    pool(
        "promql-unknown-fn",
        NotReady("InvalidSpec"),
        autoscaling=queries(utilization="busyness(agentfleet_worker_busy)"),
    ),
    pool(
        "promql-unclosed",
        NotReady("InvalidSpec"),
        autoscaling=queries(oldestWaitSeconds="max(agentfleet_queue_oldest_wait_seconds"),
    ),
    pool("promql-string", NotReady("InvalidSpec"), autoscaling=queries(queueDepth='"ten"')),
    pool("secret-missing", NotReady("SecretNotFound"), envFromSecrets=["absent"]),
    pool(
        "secret-key-missing",
        NotReady("SecretKeyNotFound"),
        env=[{"name": "K", "secretKeyRef": {"name": "fuzz-secret", "key": "absent"}}],
    ),
    pool(
        "secret-ref-missing",
        NotReady("SecretNotFound"),
        env=[{"name": "K", "secretKeyRef": {"name": "nowhere", "key": "k"}}],
    ),
    pool("project-missing", NotReady("ProjectNotFound"), project="absent"),
    pool(
        "selector-matches-none",
        NotReady("NoMatchingProjects"),
        projectSelector={"matchLabels": {"team": "nobody"}},
    ),
    pool("stage-not-in-pipeline", NotReady("StageNotInPipeline"), stage="content"),
    pool(
        "gpu-without-limit",
        NotReady("ApplyFailed"),
        resources=quantities(**{"example.com/gpu": "1"}),
    ),
    pool(
        "gpu-fraction",
        NotReady("ApplyFailed"),
        resources={"requests": {"example.com/gpu": "500m"}, "limits": {"example.com/gpu": "500m"}},
    ),
    pool(
        "hugepages-unequal",
        NotReady("ApplyFailed"),
        resources={
            "requests": {"hugepages-2Mi": "2Mi", "memory": "1Gi"},
            "limits": {"hugepages-2Mi": "4Mi", "memory": "1Gi"},
        },
    ),
    # ------------------------------------------------ Project: refused
    project("repo-space", Refused("spec.repository", "owner/name"), repository="acme/my repo"),
    project("repo-nul", Refused("spec.repository"), repository="acme/x\u0000"),
    project("repo-newline", Refused("spec.repository"), repository="acme/x\n"),
    project(
        "repo-http",
        Refused("spec.repository", "https:// URL"),
        repository="http://github.com/acme/x",
    ),
    project("repo-homoglyph", Refused("spec.repository"), repository="\u0430cme/x"),
    project(
        "repo-too-long", Refused("spec.repository", "Too long"), repository="acme/" + "x" * 396
    ),
    Case(
        "Project",
        "repo-missing",
        {"credentialsSecretRef": {"name": "x"}},
        Refused("spec.repository", "Required value"),
    ),
    project(
        "api-url-ftp",
        Refused("spec.githubApiUrl", "http:// or https:// URL"),
        githubApiUrl="ftp://github.example.com",
    ),
    project(
        "api-url-space",
        Refused("spec.githubApiUrl"),
        githubApiUrl="https://github.example.com/api v3",
    ),
    project(
        "api-url-credentials",
        Refused("spec.githubApiUrl"),
        githubApiUrl="https://user:pw@github.example.com",
    ),
    Case(
        "Project",
        "credentials-missing",
        {"repository": "acme/x"},
        Refused("spec.credentialsSecretRef", "Required value"),
    ),
    project(
        "credentials-bad-name",
        Refused("spec.credentialsSecretRef.name"),
        credentialsSecretRef={"name": "GitHub_Token"},
    ),
    project("labels-empty", Refused("spec.intake.labels"), intake={"labels": []}),
    project(
        "label-newline",
        Refused("spec.intake.labels[0]", "should match"),
        intake={"labels": ["agent\nfleet"]},
    ),
    project("label-nul", Refused("spec.intake.labels[0]"), intake={"labels": ["a\u0000"]}),
    project(
        "label-duplicate",
        Refused("spec.intake.labels[1]", "Duplicate value"),
        intake={"labels": ["a", "a"]},
    ),
    project(
        "label-too-long",
        Refused("spec.intake.labels[0]", "Too long"),
        intake={"labels": ["l" * 51]},
    ),
    project(
        "labels-too-many",
        Refused("spec.intake.labels", "Too many"),
        intake={"labels": [f"l{i}" for i in range(21)]},
    ),
    project(
        "poll-too-fast",
        Refused("spec.intake.pollIntervalSeconds", "greater than or equal to 30"),
        intake={"pollIntervalSeconds": 29},
    ),
    project(
        "poll-too-slow",
        Refused("spec.intake.pollIntervalSeconds"),
        intake={"pollIntervalSeconds": 86401},
    ),
    project(
        "poll-string",
        Refused("spec.intake.pollIntervalSeconds", "must be of type integer"),
        intake={"pollIntervalSeconds": "300"},
    ),
    project(
        "webhook-no-secret",
        Refused("spec.intake.webhook.secretRef", "webhook.secretRef is required"),
        intake={"webhook": {"enabled": True}},
    ),
    project(
        "webhook-key-space",
        Refused("spec.intake.webhook.secretRef.key"),
        intake={"webhook": {"enabled": True, "secretRef": {"name": "hook", "key": "a b"}}},
    ),
    project(
        "stages-duplicate",
        Refused("spec.pipeline.stages[1]", "Duplicate value"),
        pipeline={"stages": ["genesis", "genesis"]},
    ),
    project(
        "stages-unknown",
        Refused("spec.pipeline.stages[0]", "Unsupported value"),
        pipeline={"stages": ["deploy"]},
    ),
    project("stages-empty", Refused("spec.pipeline.stages"), pipeline={"stages": []}),
    project(
        "failure-in-pipeline",
        Refused("spec.pipeline.failureStage", "must not be one of pipeline.stages"),
        pipeline={"failureStage": "genesis"},
    ),
    project(
        "attempts-zero",
        Refused("spec.pipeline.maxAttempts.development"),
        pipeline={"maxAttempts": {"development": 0}},
    ),
    project(
        "attempts-past-limit",
        Refused("spec.pipeline.maxAttempts.review"),
        pipeline={"maxAttempts": {"review": 21}},
    ),
    project("priority-unknown", Refused("spec.priority", "Unsupported value"), priority="critical"),
    project("paused-string", Refused("spec.paused", "must be of type boolean"), paused="yes"),
    project("workers-zero", Refused("spec.parallelism.maxWorkers"), parallelism={"maxWorkers": 0}),
    project(
        "threshold-zero",
        Refused("spec.parallelism.successThreshold"),
        parallelism={"successThreshold": 0},
    ),
    project(
        "threshold-over-one",
        Refused("spec.parallelism.successThreshold"),
        parallelism={"successThreshold": 1.5},
    ),
    project(
        "timeout-short",
        Refused("spec.parallelism.taskTimeoutSeconds"),
        parallelism={"taskTimeoutSeconds": 59},
    ),
    project("tokens-zero", Refused("spec.budgets.tokensPerItem"), budgets={"tokensPerItem": 0}),
    project("cost-negative", Refused("spec.budgets.costPerDayUsd"), budgets={"costPerDayUsd": -1}),
    project("unknown-field", Refused("spec.extra", "unknown field"), extra="x"),
    Case(
        "Project",
        "name-upper",
        PROJECT_SPEC,
        Refused("metadata.name", "RFC 1123"),
        {"name": "Bad_Project"},
    ),
    # ------------------------------------------------ Project: stored, not served
    project(
        "no-credentials", NotReady("CredentialsNotFound"), credentialsSecretRef={"name": "absent"}
    ),
    project(
        "credentials-no-token",
        NotReady("CredentialsIncomplete"),
        credentialsSecretRef={"name": "fuzz-secret"},
    ),
    project(
        "webhook-secret-missing",
        NotReady("WebhookSecretNotFound"),
        intake={"webhook": {"enabled": True, "secretRef": {"name": "absent", "key": "secret"}}},
    ),
    project(
        "webhook-key-missing",
        NotReady("WebhookSecretKeyNotFound"),
        intake={
            "webhook": {"enabled": True, "secretRef": {"name": "fuzz-secret", "key": "secret"}}
        },
    ),
]

AT_THE_LIMITS = pool(
    "at-the-limits",
    NotReady("unused"),
    image="registry.example.com:5000/acme/" + "w" * 200 + ":" + "t" * 128 + "@" + DIGEST,
    env=[
        {"name": f"V{i}", "value": "line one\nline two\ttabbed" if i else "v" * 32768}
        for i in range(64)
    ],
    agent={"model": "m" * 256},
    specialties=[f"s{i}" for i in range(16)],
    nodeSelector={f"example.com/k{i}": "v" * 63 for i in range(64)},
    maxReplicas=1000,
    minReplicas=0,
    terminationGracePeriodSeconds=86400,
    resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    autoscaling=queries(queueDepth="sum(agentfleet_queue_depth{namespace='x'})\n+ 0"),
)
"""Valid, exactly at (or near) every limit the cases above cross: it must be served."""


def _manifest(case: Case) -> str:
    return json.dumps(
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": case.kind,
            "metadata": {"name": case.name, **case.metadata},
            "spec": case.spec,
        }
    )


def _names(kind: str, cases: list[Case], expect: type) -> list[str]:
    return [c.name for c in cases if c.kind == kind and isinstance(c.expect, expect)]


def test_the_corpus_is_broad() -> None:
    assert len(CASES) >= 80
    assert len({(c.kind, c.metadata.get("name", c.name)) for c in CASES}) == len(CASES)
    for kind in ("WorkerPool", "Project"):
        assert _names(kind, CASES, Refused) and _names(kind, CASES, NotReady)


def test_malformed_manifests_are_refused_or_conditioned_and_never_served(
    kubectl: Kubectl, objects: Objects
) -> None:
    ns = objects.namespace
    for name, data in (("fuzz-github", {"token": "t"}), ("fuzz-secret", {"present": "x"})):
        objects.core.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        )
    objects.create("projects", PROJECT, PROJECT_SPEC, labels={"team": "fuzz"})

    problems: list[str] = []
    for case in CASES:
        result = kubectl("apply", "-n", ns, "-f", "-", stdin=_manifest(case), check=False)
        output = result.stdout + result.stderr
        if isinstance(case.expect, Refused):
            expected = case.expect
            if result.returncode == 0:
                problems.append(f"{case.kind}/{case.name}: stored, expected a refusal")
                continue
            if expected.field != "." and expected.field not in output:
                problems.append(f"{case.kind}/{case.name}: {expected.field} not named: {output}")
            if expected.says not in output:
                problems.append(f"{case.kind}/{case.name}: no {expected.says!r} in: {output}")
            if NOISE in output and not any(marker in output for marker in BLOCKING):
                problems.append(f"{case.kind}/{case.name}: the noise line without cause: {output}")
        elif result.returncode != 0:
            problems.append(f"{case.kind}/{case.name}: refused, expected to be stored: {output}")
    assert not problems, "\n".join(problems)

    # Everything stored is conditioned within seconds, with a Warning Event, and unserved.
    stored = [c for c in CASES if isinstance(c.expect, NotReady)]
    for case in stored:
        assert isinstance(case.expect, NotReady)
        plural = {"WorkerPool": "workerpools", "Project": "projects"}[case.kind]
        found = objects.wait_condition(plural, case.name, "Ready", "False", case.expect.reason, 20)
        assert objects.condition(found, "Ready")["message"]  # type: ignore[index]
        if case.kind == "Project":
            assert found["status"]["phase"] == "Failed"
        objects.wait_event(case.name, case.expect.reason)
    assert objects.deployments() == {}, "a malformed pool was served"

    # The operator is alive and serves a valid pool at once, including one at the limits.
    kubectl("apply", "-n", ns, "-f", "-", stdin=_manifest(pool("valid", NotReady("unused"))))
    kubectl("apply", "-n", ns, "-f", "-", stdin=_manifest(AT_THE_LIMITS))
    for name in ("valid", "at-the-limits"):
        objects.wait_reconciled("workerpools", name, timeout=15)
        wait_for(partial(objects.deployment, name), 15, f"Deployment {name}")
    assert set(objects.deployments()) == {"valid", "at-the-limits"}


def test_refusals_say_what_is_wrong_without_noise(kubectl: Kubectl, op_namespace: str) -> None:
    """The issue's complaint, case by case: a pattern or CEL error reads as one line."""
    for case in CASES:
        if (
            case.name in ("img-space", "env-nul", "model-nul", "min-over-max")
            and case.kind == "WorkerPool"
        ):
            result = kubectl(
                "apply", "-n", op_namespace, "-f", "-", stdin=_manifest(case), check=False
            )
            assert result.returncode != 0
            assert NOISE not in result.stderr, result.stderr
            assert result.stderr.count("\n") <= 2, result.stderr
