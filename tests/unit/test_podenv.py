"""The worker Pod's environment contract (agentfleet.core.podenv): the variable names are
the documented ones, the environment is read only where asked, and every value type
reads back from its text form."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.podenv import (
    AGENT_ENV_VARS,
    ENV_VARS,
    STAGE_ENV_VARS,
    AgentSettings,
    StageConfig,
    WorkerSettings,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_variable_names_are_the_published_ones() -> None:
    # The names people set on a WorkerPool's spec.env and the operator writes: a rename
    # here breaks running fleets, so the table is spelled out once more.
    assert ENV_VARS["pod_name"] == "POD_NAME"
    assert ENV_VARS["redis_url"] == "AGENTFLEET_REDIS_URL"
    assert ENV_VARS["drain_grace_seconds"] == "AGENTFLEET_DRAIN_GRACE_SECONDS"
    assert {AGENT_ENV_VARS[k] for k in ("model", "max_turns", "token_budget")} == {
        "AGENTFLEET_MODEL",
        "AGENTFLEET_MAX_TURNS",
        "AGENTFLEET_TOKEN_BUDGET",
    }
    assert AGENT_ENV_VARS["command_timeout_seconds"] == "AGENTFLEET_AGENT_COMMAND_TIMEOUT"
    assert AGENT_ENV_VARS["max_retry_wait_seconds"] == "AGENTFLEET_AGENT_MAX_RETRY_WAIT"
    assert STAGE_ENV_VARS["credentials_dir"] == "AGENTFLEET_PROJECTS_DIR"
    assert STAGE_ENV_VARS["test_timeout_seconds"] == "AGENTFLEET_TEST_TIMEOUT"
    assert STAGE_ENV_VARS["max_workers"] == "AGENTFLEET_PARALLEL_MAX_WORKERS"


def test_every_variable_is_documented() -> None:
    docs = "\n".join(path.read_text() for path in DOCS.glob("*.md"))
    names = [*ENV_VARS.values(), *AGENT_ENV_VARS.values(), *STAGE_ENV_VARS.values()]
    assert [name for name in names if f"`{name}`" not in docs] == []


def test_sections_read_their_text_forms() -> None:
    environ = {
        "AGENTFLEET_NAMESPACE": "team-a",
        "AGENTFLEET_POOL": "dev",
        "AGENTFLEET_STAGE": "development",
        "AGENTFLEET_SPECIALTIES": " tdd, ai-ml ,",
        "AGENTFLEET_PROJECTS": "",
        "POD_NAME": "dev-0",
        "AGENTFLEET_AGENT_ALLOWED_COMMANDS": "python,make",
        "AGENTFLEET_MAX_TURNS": "7",
        "AGENTFLEET_TEST_COMMAND": "make 'test all'",
        "AGENTFLEET_GITHUB_PACING": "off",
        "AGENTFLEET_PROJECTS_DIR": "/creds",
        "UNRELATED": "x",
    }
    worker = WorkerSettings.from_env(environ)
    assert (worker.stage, worker.specialties, worker.projects, worker.pod_name) == (
        Stage.DEVELOPMENT,
        ("tdd", "ai-ml"),
        (),
        "dev-0",
    )
    agent = AgentSettings.from_env(environ)
    assert (agent.allowed_commands, agent.max_turns) == (("python", "make"), 7)
    stage = StageConfig.from_env(environ)
    assert stage.test_command == ("make", "test all")
    assert stage.github_pacing is False
    assert stage.credentials_dir == Path("/creds")


def test_flags_win_over_the_environment() -> None:
    environ = {"AGENTFLEET_NAMESPACE": "a", "AGENTFLEET_POOL": "p", "AGENTFLEET_STAGE": "review"}
    settings = WorkerSettings.from_env(environ, {"pool": "q", "specialties": None})
    assert (settings.namespace, settings.pool, settings.specialties) == ("a", "q", ())


def test_bad_values_name_the_setting() -> None:
    with pytest.raises(ValidationError, match="max_turns"):
        AgentSettings.from_env({"AGENTFLEET_MAX_TURNS": "0"})


def test_a_section_made_in_code_does_not_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTFLEET_MODEL", "from-the-environment")
    monkeypatch.setenv("AGENTFLEET_POOL", "from-the-environment")
    assert AgentSettings().model != "from-the-environment"
    assert AgentSettings.from_env().model == "from-the-environment"
    made = WorkerSettings(namespace="ns", pool="p", stage=Stage.REVIEW)
    assert made.pool == "p"
