"""Test doubles for the external services agentfleet talks to, shipped like kopf.testing.

Only Anthropic and GitHub are replaced; both fakes are real HTTP servers speaking the
services' wire formats, so the real `anthropic` and `PyGithub` clients run against them
unchanged (`base_url=fake.base_url`). Everything else (Redis, Prometheus, git) is real.
"""

from agentfleet.dev.testing.fake_anthropic import (
    Conversation,
    FakeAnthropic,
    Script,
    ToolCall,
    Turn,
    call,
    calls,
    say,
    scripted,
)
from agentfleet.dev.testing.fake_github import Delivery, FakeGitHub

__all__ = [
    "Conversation",
    "Delivery",
    "FakeAnthropic",
    "FakeGitHub",
    "Script",
    "ToolCall",
    "Turn",
    "call",
    "calls",
    "say",
    "scripted",
]
