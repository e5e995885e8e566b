from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from prometheus_client import CollectorRegistry

from agentfleet.dev.testing import FakeAnthropic
from agentfleet.worker.agents import AgentMetrics, AgentSettings, Redactor, Workspace


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def client(fake_anthropic: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=fake_anthropic.api_key, base_url=fake_anthropic.base_url, max_retries=0
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> AgentMetrics:
    return AgentMetrics(registry)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "checkout"
    root.mkdir()
    return Workspace(root)


@pytest.fixture
def settings() -> AgentSettings:
    return AgentSettings(model="claude-sonnet-4-6", max_turns=10, token_budget=100_000)


@pytest.fixture
def redactor(fake_anthropic: FakeAnthropic) -> Redactor:
    return Redactor([fake_anthropic.api_key])
