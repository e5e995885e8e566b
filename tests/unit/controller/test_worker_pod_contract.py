"""The contract between the operator and its worker pods, checked from both ends.

Each test builds a Deployment with the operator's pure builder and reads it back the way
the code in the pod does: the pod's environment is exactly the container's `env` (with
the downward-API fields filled in as the kubelet would), and nothing else. A name or path
that drifts on one side fails here.
"""

from __future__ import annotations

import base64
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.api.workerpool import WorkerPoolSpec
from agentfleet.core.podenv import WorkerSettings
from agentfleet.operator.children import (
    PoolIdentity,
    ServedProject,
    WorkerEnvironment,
    build_deployment,
    build_queue_secret,
)
from agentfleet.worker import build_handler, registered_handlers
from agentfleet.worker.agents import AgentSettings
from agentfleet.worker.stages import HANDLERS, StageConfig, StageHandler
from agentfleet.worker.stages.environment import mounted_credentials

pytestmark = pytest.mark.unit

POOL = PoolIdentity(namespace="team-a", name="genesis", uid="uid-1")
PROJECTS = [ServedProject("shop", "shop-github"), ServedProject("blog", "blog-github")]
POD = {"metadata.namespace": "team-a", "metadata.name": "genesis-5d8f7-abcde"}


REDIS_URL = "redis://:secret@queue:6379/0"


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = (c for c in containers if c["name"] == "worker")
    found: dict[str, Any] = container
    return found


def pod_environment(deployment: dict[str, Any]) -> dict[str, str]:
    """The environment the worker container starts with, as the kubelet fills it in:
    downward-API fields, and the pool's queue Secret (no envFrom Secrets)."""
    queue = build_queue_secret(POOL, WorkerPoolSpec(stage="genesis"), REDIS_URL)
    environ: dict[str, str] = {}
    for entry in _container(deployment)["env"]:
        source = entry.get("valueFrom")
        if source is None:
            environ[entry["name"]] = entry.get("value", "")
        elif "fieldRef" in source:
            environ[entry["name"]] = POD[source["fieldRef"]["fieldPath"]]
        elif source.get("secretKeyRef", {}).get("name") == queue["metadata"]["name"]:
            value = queue["data"][source["secretKeyRef"]["key"]]
            environ[entry["name"]] = base64.b64decode(value).decode()
    return environ


def _deployment(stage: str = "genesis", **spec: Any) -> dict[str, Any]:
    pool_spec = WorkerPoolSpec.model_validate({"stage": stage, **spec})
    return build_deployment(POOL, pool_spec, PROJECTS, 1, WorkerEnvironment(redis_url=REDIS_URL))


def test_agent_settings_are_read_from_the_env_the_operator_sets() -> None:
    deployment = _deployment(
        agent={"model": "claude-opus-4-1", "maxTurns": 17, "tokenBudget": 54321}
    )
    settings = AgentSettings.from_env(pod_environment(deployment))
    assert (settings.model, settings.max_turns, settings.token_budget) == (
        "claude-opus-4-1",
        17,
        54321,
    )


def test_default_agent_settings_survive_the_trip() -> None:
    settings = AgentSettings.from_env(pod_environment(_deployment()))
    spec = WorkerPoolSpec(stage="genesis").agent
    assert (settings.model, settings.max_turns, settings.token_budget) == (
        spec.model,
        spec.max_turns,
        spec.token_budget,
    )


def test_worker_settings_are_read_from_the_env_the_operator_sets() -> None:
    deployment = _deployment(specialties=["tdd"], terminationGracePeriodSeconds=65)
    settings = WorkerSettings.from_env(pod_environment(deployment), {})
    assert settings.redis_url == REDIS_URL
    assert (settings.namespace, settings.pool, settings.pod_name) == (
        "team-a",
        "genesis",
        "genesis-5d8f7-abcde",
    )
    assert settings.stage.value == "genesis"
    assert settings.specialties == ("tdd",)
    assert settings.projects == ("shop", "blog")
    assert settings.metrics_port == _container(deployment)["ports"][0]["containerPort"]
    assert 0 < settings.drain_grace_seconds < 65


def _credential_mounts(deployment: dict[str, Any]) -> dict[str, str]:
    """Secret name -> where the container sees it."""
    pod = deployment["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    return {
        secrets[mount["name"]]: mount["mountPath"]
        for mount in _container(deployment)["volumeMounts"]
        if mount["name"] in secrets
    }


def test_stage_handlers_look_for_credentials_where_the_operator_mounts_them() -> None:
    deployment = _deployment()
    credentials_dir = StageConfig.from_env(pod_environment(deployment)).credentials_dir
    mounts = _credential_mounts(deployment)
    for project in PROJECTS:
        mounted = PurePosixPath(mounts[project.credentials_secret])
        assert mounted == PurePosixPath(credentials_dir) / project.name


def test_a_mounted_token_is_found_by_the_stage_handlers(tmp_path: Path) -> None:
    """The Secret's files as the kubelet writes them, under a stand-in for the pod's root."""
    deployment = _deployment()
    for secret, path in _credential_mounts(deployment).items():
        mounted = tmp_path / path.lstrip("/")
        mounted.mkdir(parents=True)
        (mounted / "token").write_text(f"ghp_token_of_{secret}\n")
    configured = StageConfig.from_env(pod_environment(deployment)).credentials_dir
    lookup = mounted_credentials(tmp_path / str(configured).lstrip("/"), {})
    credentials = lookup("team-a", "blog")
    assert credentials.token is not None
    assert credentials.token.get_secret_value() == "ghp_token_of_blog-github"


@pytest.mark.parametrize("stage", list(Stage))
async def test_a_default_pool_runs_the_claude_handler_of_its_stage(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WorkerPool that names no handler must not crash-loop: its pods build the Claude
    handler of the pool's stage from nothing but their environment."""
    environ = pod_environment(_deployment(stage.value))
    # From the pool's envFromSecrets in a real pod; the SDK refuses to start without it.
    environ["ANTHROPIC_API_KEY"] = "sk-ant-test"
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings.from_env(environ, {})
    assert settings.handler in registered_handlers()
    handler = build_handler(settings.handler, settings)
    assert type(handler) is HANDLERS[stage.value]
    assert isinstance(handler, StageHandler)
    assert handler.env.agent_settings == AgentSettings.from_env(environ)
    assert handler.env.queue is not None
    await handler.env.queue.close()
