"""Retry timing, list prices and settings: pure rules of the agent runtime."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import pytest

from agentfleet.core.api.workerpool import DEFAULT_MODEL
from agentfleet.core.podenv import AgentSettings
from agentfleet.worker.agents.pricing import cost_usd, price_for
from agentfleet.worker.agents.retry import (
    backoff_seconds,
    rate_limit_headroom,
    response_status,
    retry_after_seconds,
    retry_delay,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=1000.0) == expected


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now) == pytest.approx(30, abs=1)


def test_server_retry_after_wins_over_backoff_even_when_longer_than_the_cap() -> None:
    assert retry_delay(0, {"retry-after": "45"}, 0.0, base=1.0, cap=8.0, jitter=0.0) == 45.0
    assert retry_delay(5, {"retry-after": "0"}, 0.0, base=1.0, cap=8.0, jitter=0.0) == 0.0


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    assert [backoff_seconds(n, 1.0, 8.0, 0.0) for n in range(5)] == [1, 2, 4, 8, 8]
    assert backoff_seconds(2, 1.0, 8.0, 0.999) == pytest.approx(3.001, abs=0.01)
    assert retry_delay(1, {}, 0.0, base=0.5, cap=8.0, jitter=0.0) == 1.0


def test_prices_match_model_families_by_longest_prefix() -> None:
    assert price_for("claude-sonnet-4-5-20250929") == price_for("claude-sonnet-4")
    opus_45, opus_4 = price_for("claude-opus-4-5-20251101"), price_for("claude-opus-4-1")
    assert opus_45 is not None and opus_4 is not None
    assert opus_45.input_per_million < opus_4.input_per_million
    assert price_for("some-other-model") is None
    assert price_for("claude-opus-4-7") is None, "no guessed prices for unlisted versions"


def test_cost_of_a_call() -> None:
    # 1M input at $3 + 100k output at $15/M + 1M cache reads at 10 % of input.
    assert cost_usd("claude-sonnet-4-5", 1_000_000, 100_000, 0, 1_000_000) == pytest.approx(
        3.0 + 1.5 + 0.3
    )
    assert cost_usd("unknown", 10, 10) is None


def test_settings_from_environment_and_budget_cap() -> None:
    settings = AgentSettings.from_env(
        {
            "AGENTFLEET_MODEL": "claude-haiku-4-5",
            "AGENTFLEET_MAX_TURNS": "12",
            "AGENTFLEET_TOKEN_BUDGET": "50000",
            "AGENTFLEET_AGENT_ALLOWED_COMMANDS": "python, make ,",
            "UNRELATED": "x",
        }
    )
    assert (settings.model, settings.max_turns, settings.token_budget) == (
        "claude-haiku-4-5",
        12,
        50_000,
    )
    assert settings.allowed_commands == ("python", "make")
    assert settings.with_budget_cap(20_000).token_budget == 20_000
    assert settings.with_budget_cap(90_000).token_budget == 50_000
    assert settings.with_budget_cap(None) is settings


def test_the_default_model_is_current_and_priced() -> None:
    """A WorkerPool that names no model must not run one the installed SDK warns about
    (the client checks this table on every call), and its spend must be costed."""
    # The table as the messages client consults it (the SDK does not re-export it there).
    from anthropic.resources.messages.messages import (  # type: ignore[attr-defined]
        DEPRECATED_MODELS,
    )

    assert DEFAULT_MODEL not in DEPRECATED_MODELS
    assert AgentSettings().model == DEFAULT_MODEL
    assert price_for(DEFAULT_MODEL) is not None


def test_rate_limit_headroom_is_the_lowest_budget_share_and_its_reset() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": "2026-03-01T12:00:30Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "800",
        "anthropic-ratelimit-output-tokens-reset": "2026-03-01T12:00:10Z",
    }
    share, reset = rate_limit_headroom(headers) or (None, None)
    assert share == pytest.approx(0.05)
    assert reset == datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC).timestamp()
    assert rate_limit_headroom({}) is None
    assert rate_limit_headroom({"anthropic-ratelimit-tokens-limit": "0"}) is None
    odd = {"anthropic-ratelimit-tokens-limit": "10", "anthropic-ratelimit-tokens-remaining": "x"}
    assert rate_limit_headroom(odd) is None


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (200, "ok"),
        (429, "rate_limited"),
        (529, "overloaded"),
        (500, "server_error"),
        (408, "server_error"),
        (400, "client_error"),
        (None, "connection"),
    ],
)
def test_response_status_labels(status: int | None, label: str) -> None:
    assert response_status(status) == label
