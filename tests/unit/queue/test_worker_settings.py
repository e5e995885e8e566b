"""Worker settings from flags and environment variables; the handler registry."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.api.workerpool import CLAUDE_HANDLER
from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue import WorkItem
from agentfleet.worker import (
    HandlerResult,
    UnknownHandlerError,
    build_handler,
    register_handler,
    registered_handlers,
)
from agentfleet.worker.command import CommandHandler, last_line_object
from agentfleet.worker.handlers import HANDLER_ENTRY_POINTS

pytestmark = pytest.mark.unit

DEPLOYMENT_ENV = {
    "AGENTFLEET_REDIS_URL": "redis://queue:6379/0",
    "AGENTFLEET_NAMESPACE": "team-a",
    "AGENTFLEET_POOL": "dev-tdd",
    "AGENTFLEET_STAGE": "development",
    "AGENTFLEET_SPECIALTIES": "tdd, ai-ml",
    "AGENTFLEET_PROJECTS": "",
    "AGENTFLEET_HANDLER": "command",
    "AGENTFLEET_COMMAND": "make test",
    "AGENTFLEET_METRICS_PORT": "9100",
    "POD_NAME": "dev-tdd-7f9c-x2",
    "AGENTFLEET_HEARTBEAT_INTERVAL": "10",
    "AGENTFLEET_HEARTBEAT_TIMEOUT": "120",
    "AGENTFLEET_DRAIN_GRACE_SECONDS": "50",
}


def test_the_deployments_environment_configures_a_worker() -> None:
    settings = WorkerSettings.from_env(DEPLOYMENT_ENV, {})
    assert settings.redis_url == "redis://queue:6379/0"
    assert (settings.namespace, settings.pool, settings.stage) == (
        "team-a",
        "dev-tdd",
        Stage.DEVELOPMENT,
    )
    assert settings.specialties == ("tdd", "ai-ml")
    assert settings.projects == ()
    assert settings.command == "make test"
    assert settings.metrics_port == 9100
    assert settings.pod_name == "dev-tdd-7f9c-x2"
    assert (settings.heartbeat_interval, settings.heartbeat_timeout) == (10, 120)
    assert settings.drain_grace_seconds == 50


def test_flags_override_the_environment() -> None:
    settings = WorkerSettings.from_env(
        DEPLOYMENT_ENV, {"pool": "other", "projects": "shop,blog", "metrics_port": 0, "stage": None}
    )
    assert settings.pool == "other"
    assert settings.projects == ("shop", "blog")
    assert settings.metrics_port == 0
    assert settings.stage is Stage.DEVELOPMENT


def test_defaults_follow_the_documented_thresholds() -> None:
    settings = WorkerSettings(namespace="ns", pool="p", stage=Stage.GENESIS)
    assert settings.heartbeat_timeout == 300
    assert settings.metrics_port == 9090
    assert settings.handler == "command"


@pytest.mark.parametrize(
    "bad",
    [
        {"AGENTFLEET_STAGE": "deploy"},
        {"AGENTFLEET_SPECIALTIES": "Not_A_Label"},
        {"AGENTFLEET_HEARTBEAT_INTERVAL": "300"},
        {"AGENTFLEET_NAMESPACE": ""},  # empty counts as unset: a required setting missing
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings.from_env({**DEPLOYMENT_ENV, **bad}, {})


class EchoHandler:
    def __init__(self, settings: WorkerSettings) -> None:
        self.pool = settings.pool

    async def handle(self, item: WorkItem, context: object) -> HandlerResult:
        return HandlerResult.succeeded({"pool": self.pool})


def make_echo(settings: WorkerSettings) -> EchoHandler:
    return EchoHandler(settings)


SETTINGS = WorkerSettings(namespace="ns", pool="p", stage=Stage.GENESIS, command="true")


def test_handlers_are_built_by_registered_name_or_import_path() -> None:
    assert isinstance(build_handler("command", SETTINGS), CommandHandler)
    register_handler("echo-test", make_echo)
    assert "echo-test" in registered_handlers()
    assert isinstance(build_handler("echo-test", SETTINGS), EchoHandler)
    assert isinstance(build_handler(f"{__name__}:make_echo", SETTINGS), EchoHandler)


def test_the_stage_handlers_are_known_without_importing_them() -> None:
    assert {"claude", "genesis", "development", "content", "review"} <= set(registered_handlers())
    probe = (
        "import sys; from agentfleet.worker import registered_handlers; registered_handlers(); "
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'agentfleet.worker.stages', 'anthropic'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_every_stage_and_the_default_handler_are_entry_points() -> None:
    points = {point.name: point for point in entry_points(group=HANDLER_ENTRY_POINTS)}
    assert set(points) == {CLAUDE_HANDLER, "command", *(stage.value for stage in Stage)}
    for point in points.values():
        assert callable(point.load()), point


@pytest.mark.parametrize("name", ["gpt", "no.such.module:factory", f"{__name__}:missing"])
def test_unknown_handlers_fail_with_the_known_names(name: str) -> None:
    with pytest.raises(UnknownHandlerError):
        build_handler(name, SETTINGS)


def test_command_handler_needs_a_command() -> None:
    with pytest.raises(ValueError, match="AGENTFLEET_COMMAND"):
        build_handler("command", SETTINGS.model_copy(update={"command": None}))


def test_handler_results() -> None:
    ok = HandlerResult.succeeded({"pr": 3})
    assert (ok.outcome, ok.output, ok.follow_ups) == ("succeeded", {"pr": 3}, None)
    assert HandlerResult.succeeded(follow_ups=[]).follow_ups == ()
    failed = HandlerResult.failed("bad input", retryable=False)
    assert (failed.outcome, failed.error, failed.retryable) == ("failed", "bad input", False)


def test_a_commands_last_json_line_is_its_output() -> None:
    assert last_line_object('building\n{"pr": 12, "branch": "b"}\n\n') == {"pr": 12, "branch": "b"}
    assert last_line_object("done\n") == {}
    assert last_line_object("[1, 2]") == {}
    assert last_line_object("") == {}
