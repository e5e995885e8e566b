"""The `WorkerPool` custom resource: a Deployment of agent pods serving one stage."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.config import JsonDict

from agentfleet import __version__
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.api.base import ApiModel, Stage
from agentfleet.core.api.conditions import Condition
from agentfleet.core.api.grammar import (
    DNS_SUBDOMAIN_PATTERN,
    ENV_NAME_PATTERN,
    IMAGE_REFERENCE_PATTERN,
    LABEL_KEY_MAX_LENGTH,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_MAX_LENGTH,
    LABEL_VALUE_PATTERN,
    MODEL_NAME_PATTERN,
    QUANTITY_PATTERN,
    TEXT_PATTERN,
    keys_match_rule,
    matches_rule,
    quantity_value,
)
from agentfleet.core.api.project import SecretKeyReference

_EMPTY_OBJECT_DEFAULT: JsonDict = {"default": {}}

# The image a release publishes for this version (worker-image/Dockerfile).
DEFAULT_WORKER_IMAGE = f"ghcr.io/agentfleet/agentfleet-worker:{__version__}"
DEFAULT_MODEL = "claude-sonnet-4-6"
CLAUDE_HANDLER = "claude"
"""The default `spec.handler`: the worker runs the Claude agent of its pool's stage."""
METRICS_PORT = 9090

_QUANTITY = re.compile(QUANTITY_PATTERN)
MAX_MAP_ENTRIES = 64
"""Entries of a label map (matchLabels, nodeSelector); bounds the cost of the CEL rules
that check their keys."""
MAX_RESOURCES = 16
QUANTITY_MAX_LENGTH = 64


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (negative)")
    if isinstance(value, str) and (
        len(value) > QUANTITY_MAX_LENGTH or not _QUANTITY.fullmatch(value)
    ):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2Gi, 1)")
    return value


def _check_keys(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(mapping: dict[str, Any]) -> dict[str, Any]:
        bad = [
            key for key in mapping if len(key) > LABEL_KEY_MAX_LENGTH or not compiled.fullmatch(key)
        ]
        if bad:
            raise ValueError(f"{what}: {', '.join(repr(k) for k in bad)}")
        return mapping

    return AfterValidator(check)


_LABEL_KEY_RULE = keys_match_rule(
    LABEL_KEY_PATTERN,
    LABEL_KEY_MAX_LENGTH,
    "label keys",
    "qualified names ([prefix/]name, e.g. agentfleet.dev/team)",
)
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX_LENGTH, pattern=LABEL_VALUE_PATTERN)]
LabelMap = Annotated[
    dict[Annotated[str, Field(max_length=LABEL_KEY_MAX_LENGTH)], LabelValue],
    Field(max_length=MAX_MAP_ENTRIES),
    _check_keys(LABEL_KEY_PATTERN, "label keys must be qualified names ([prefix/]name)"),
]


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "maxLength": QUANTITY_MAX_LENGTH,
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {
                    "rule": "!isQuantity(string(self)) || "
                    "!quantity(string(self)).isLessThan(quantity('0'))",
                    "message": "must be a non-negative quantity (e.g. 500m, 2Gi, 1)",
                    "reason": "FieldValueInvalid",
                }
            ],
        }
    ),
]


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement on a label."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.operator in ['In', 'NotIn']) == (size(self.values) > 0)",
                    "message": "values must be non-empty for In and NotIn, and empty for "
                    "Exists and DoesNotExist",
                }
            ]
        }
    )

    key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)
    """Label key the requirement applies to."""

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values: In, NotIn, Exists or DoesNotExist."""

    values: list[LabelValue] = Field(default_factory=list, max_length=64)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
            )
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class LabelSelector(ApiModel):
    """Selects Projects by their labels; an empty selector selects every Project."""

    match_labels: LabelMap = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-validations": [_LABEL_KEY_RULE]}
    )
    """Labels a Project must carry, all of them, with exactly these values."""

    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)
    """Set-based requirements a Project must satisfy, all of them."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a network in CIDR notation (e.g. 10.0.0.0/8, fd00::/8): {exc}"
        ) from exc
    return value


Cidr = Annotated[
    str,
    Field(min_length=3, max_length=43, pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"),
    AfterValidator(_check_cidr),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 3,
            "maxLength": 43,
            "pattern": r"^[0-9a-fA-F:.]+/[0-9]{1,3}$",
            "x-kubernetes-validations": [
                {
                    "rule": "isCIDR(self) && cidr(self) == cidr(self).masked()",
                    "message": "must be a network in CIDR notation with no host bits set "
                    "(e.g. 10.0.0.0/8, fd00::/8)",
                    "reason": "FieldValueInvalid",
                }
            ],
        }
    ),
]


class EgressRule(ApiModel):
    """A destination the pool's Pods may reach besides DNS, the work queue and HTTPS to
    public addresses: a network (a package proxy, GitHub Enterprise on a private address)
    or Pods selected by labels, on these ports."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.cidr) != (has(self.namespaceSelector) || "
                    "has(self.podSelector))",
                    "message": "set either cidr, or namespaceSelector and/or podSelector",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    cidr: Cidr | None = None
    """A network in CIDR notation (IPv4 or IPv6), e.g. 10.20.0.5/32."""

    namespace_selector: LabelSelector | None = None
    """Pods in the namespaces with these labels (with podSelector: those Pods there)."""

    pod_selector: LabelSelector | None = None
    """Pods with these labels (in the pool's namespace unless namespaceSelector is set)."""

    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        min_length=1, max_length=20, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Destination ports."""

    protocol: Literal["TCP", "UDP"] = "TCP"
    """TCP or UDP."""

    @model_validator(mode="after")
    def _one_kind_of_destination(self) -> EgressRule:
        selected = self.namespace_selector is not None or self.pod_selector is not None
        if (self.cidr is not None) == selected:
            raise ValueError("set either cidr, or namespaceSelector and/or podSelector")
        return self


DEFAULT_REQUESTS: dict[str, int | str] = {"cpu": "250m", "memory": "512Mi"}
DEFAULT_LIMITS: dict[str, int | str] = {"memory": "2Gi"}


_RESOURCE_NAME_RULE = keys_match_rule(
    LABEL_KEY_PATTERN,
    LABEL_KEY_MAX_LENGTH,
    "resource names",
    "qualified names (cpu, memory, nvidia.com/gpu)",
)
ResourceMap = Annotated[
    dict[Annotated[str, Field(max_length=LABEL_KEY_MAX_LENGTH)], Quantity],
    Field(max_length=MAX_RESOURCES),
    _check_keys(LABEL_KEY_PATTERN, "resource names must be qualified names (cpu, memory, ...)"),
]


def _quantity_of(field: str, key: str) -> str:
    return f"quantity(string(self.{field}[{key}]))"


class ResourceRequirements(ApiModel):
    """CPU and memory of each worker container."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.limits.all(k, !(k in self.requests) "
                    "|| !isQuantity(string(self.requests[k])) "
                    "|| !isQuantity(string(self.limits[k])) "
                    f"|| !{_quantity_of('limits', 'k')}"
                    f".isLessThan({_quantity_of('requests', 'k')}))",
                    "message": "every request must be less than or equal to its limit",
                    "fieldPath": ".requests",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    requests: ResourceMap = Field(
        default_factory=lambda: dict(DEFAULT_REQUESTS),
        json_schema_extra={
            "default": {"cpu": "250m", "memory": "512Mi"},
            "x-kubernetes-validations": [_RESOURCE_NAME_RULE],
        },
    )
    """Resources reserved for the container (name -> quantity)."""

    limits: ResourceMap = Field(
        default_factory=lambda: dict(DEFAULT_LIMITS),
        json_schema_extra={
            "default": {"memory": "2Gi"},
            "x-kubernetes-validations": [_RESOURCE_NAME_RULE],
        },
    )
    """Upper bounds for the container (name -> quantity)."""

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        over = [
            f"{name} (request {self.requests[name]} > limit {limit})"
            for name, limit in self.limits.items()
            if name in self.requests and quantity_value(self.requests[name]) > quantity_value(limit)
        ]
        if over:
            raise ValueError(
                "every request must be less than or equal to its limit; not: " + ", ".join(over)
            )
        return self


class EnvVar(ApiModel):
    """An environment variable of the worker container, literal or from a Secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) != has(self.secretKeyRef)",
                    "message": "set exactly one of value and secretKeyRef",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    """Variable name."""

    value: str | None = Field(default=None, max_length=32768, pattern=TEXT_PATTERN)
    """Literal value; tab, newline and carriage return are the only control characters it
    may hold (a process environment cannot carry NUL)."""

    secret_key_ref: SecretKeyReference | None = None
    """Take the value from a key of a Secret in the pool's namespace."""

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.secret_key_ref is None):
            raise ValueError("set exactly one of value and secretKeyRef")
        return self


class AgentRuntime(StrEnum):
    """What drives the model on a work item (docs/agents.md, "Runtimes")."""

    BUILTIN = "builtin"
    """agentfleet's own tool-use loop on the `anthropic` SDK."""
    CLAUDE_CODE = "claude-code"
    """Claude Code, through `claude-agent-sdk` (Anthropic's proprietary CLI, bundled in
    the SDK's wheel), with agentfleet's tools as its only tools."""


class AgentSpec(ApiModel):
    """Settings of the Claude agent each worker runs per work item."""

    runtime: AgentRuntime = AgentRuntime.BUILTIN
    """`builtin` (the default: open source end to end, one process per worker) or
    `claude-code` (Claude Code's agent loop, with the same tools and confinement)."""

    model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        max_length=256,
        pattern=MODEL_NAME_PATTERN,
        json_schema_extra=matches_rule(
            MODEL_NAME_PATTERN,
            "model must be a model name of letters, digits and . _ : @ / - "
            "(no spaces or control characters), for example claude-sonnet-4-6",
        ),
    )
    """Anthropic model name (or a cloud provider's form of one: a Bedrock model id or
    inference profile ARN, a Vertex AI `name@version`)."""

    max_turns: int = Field(default=40, ge=1, le=1000)
    """Tool-use turns an agent may take on one work item."""

    token_budget: int = Field(default=200_000, ge=1000)
    """Input plus output tokens an agent may use on one work item."""


class WorkerPoolSpec(ApiModel):
    """Desired state of a WorkerPool."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                    "fieldPath": ".minReplicas",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!(has(self.project) && has(self.projectSelector))",
                    "message": "set either project or projectSelector, not both",
                    "fieldPath": ".projectSelector",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    stage: Stage
    """Pipeline stage the workers serve: genesis, development, content or review."""

    specialties: list[
        Annotated[
            str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        ]
    ] = Field(
        default_factory=list, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Specialty lanes read before the stage's general lane (for example tdd, ai-ml)."""

    project: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN
    )
    """Name of the one Project this pool is dedicated to. The pool is then owned by that
    Project: deleting the Project deletes the pool, and pausing it scales the pool to zero."""

    project_selector: LabelSelector | None = None
    """Projects (by label) this pool serves. Unset together with `project`: every Project in
    the namespace."""

    image: str = Field(
        default=DEFAULT_WORKER_IMAGE,
        min_length=1,
        max_length=512,
        pattern=IMAGE_REFERENCE_PATTERN,
        json_schema_extra=matches_rule(
            IMAGE_REFERENCE_PATTERN,
            "image must be a container image reference [registry[:port]/]path[:tag][@digest] "
            "(lowercase path components, no spaces or control characters, no scheme), "
            f"for example {DEFAULT_WORKER_IMAGE}",
        ),
    )
    """Container image of the workers: `[registry[:port]/]path[:tag][@digest]`, the
    reference grammar of the container runtimes (lowercase path, no spaces, no scheme)."""

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image: Always, IfNotPresent or Never."""

    handler: str = Field(
        default=CLAUDE_HANDLER, min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9-]*$"
    )
    """Stage handler the workers run: `claude` for the Claude agent of the pool's stage,
    a stage name (genesis, development, content, review) for that stage's agent, or
    `command` for a shell command per item (tests and demos)."""

    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """CPU and memory requests and limits of each worker."""

    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Extra environment variables of the workers."""

    env_from_secrets: list[
        Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
    ] = Field(
        default_factory=list, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Secrets whose every key becomes an environment variable of the workers (for
    example one holding ANTHROPIC_API_KEY)."""

    agent: AgentSpec = Field(default_factory=AgentSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT)
    """Model, turn and token limits of the agents."""

    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest workers; 0 lets an idle pool scale to zero."""

    max_replicas: int = Field(default=5, ge=1, le=1000)
    """Most workers."""

    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Workers wanted now (the scale subresource; set by the autoscaler or `kubectl scale`),
    clamped to minReplicas..maxReplicas. Unset: minReplicas."""

    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Prometheus-driven scaling policy."""

    termination_grace_period_seconds: int = Field(default=300, ge=0, le=86400)
    """Seconds a worker may spend draining after SIGTERM: it finishes its current item or
    releases it back to the queue."""

    node_selector: LabelMap = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-validations": [_LABEL_KEY_RULE]}
    )
    """Node labels the worker pods must be scheduled on."""

    egress: list[EgressRule] = Field(default_factory=list, max_length=32)
    """Destinations the worker Pods may reach besides what every pool gets: DNS, the work
    queue and HTTPS (443) to public addresses. Everything else, private and link-local
    ranges and the cluster's own addresses included, is refused by the pool's
    NetworkPolicy (see docs/security.md)."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> WorkerPoolSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be less than or equal to maxReplicas")
        if self.project is not None and self.project_selector is not None:
            raise ValueError("set either project or projectSelector, not both")
        return self

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


class ObservedMetrics(ApiModel):
    """The pool's signals as last read by the autoscaler."""

    queue_depth: int | None = Field(default=None, ge=0)
    """Items waiting for this pool."""

    oldest_wait_seconds: float | None = Field(default=None, ge=0)
    """Age in seconds of the oldest waiting item."""

    utilization: float | None = Field(default=None, ge=0)
    """Busy fraction of the pool's workers (0..1)."""

    observed_at: datetime | None = None
    """When these values were read."""


class WorkerPoolConditionType(StrEnum):
    READY = "Ready"
    AVAILABLE = "Available"
    METRICS_AVAILABLE = "MetricsAvailable"
    SCALING_ACTIVE = "ScalingActive"


class WorkerPoolStatus(ApiModel):
    """Observed state of a WorkerPool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the operator last reconciled."""

    replicas: int | None = Field(default=None, ge=0)
    """Worker pods that exist (the Deployment's status.replicas)."""

    ready_replicas: int | None = Field(default=None, ge=0)
    """Worker pods that are ready."""

    desired_replicas: int | None = Field(default=None, ge=0)
    """Replicas the operator set on the Deployment (after clamping and pause)."""

    selector: str | None = None
    """Label selector of the worker pods, in string form (for the scale subresource)."""

    last_scale_time: datetime | None = None
    """When the replicas last changed."""

    last_scale_reason: str | None = None
    """Why the replicas last changed."""

    metrics: ObservedMetrics | None = None
    """Signals the autoscaler last observed."""

    projects: list[str] = Field(default_factory=list)
    """Projects this pool serves, resolved from `project` or `projectSelector`."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    """Ready (children reconciled), Available (enough workers ready), MetricsAvailable and
    ScalingActive (autoscaler)."""
