"""Claude agents: a tool-use loop on `anthropic` with tools confined to a workspace."""

from agentfleet.core.podenv import AgentSettings
from agentfleet.core.redaction import REDACTED, RedactingLogger, Redactor
from agentfleet.worker.agents.loop import (
    AgentError,
    AgentResult,
    AgentRunner,
    ToolCallRecord,
    Usage,
)
from agentfleet.worker.agents.metrics import AgentMetrics, default_metrics
from agentfleet.worker.agents.tools import Tool, ToolError, WorkspaceTools, submit_tool
from agentfleet.worker.agents.untrusted import UNTRUSTED_INPUT_RULES, untrusted
from agentfleet.worker.agents.workspace import PathEscapeError, Workspace

__all__ = [
    "REDACTED",
    "UNTRUSTED_INPUT_RULES",
    "AgentError",
    "AgentMetrics",
    "AgentResult",
    "AgentRunner",
    "AgentSettings",
    "PathEscapeError",
    "RedactingLogger",
    "Redactor",
    "Tool",
    "ToolCallRecord",
    "ToolError",
    "Usage",
    "Workspace",
    "WorkspaceTools",
    "default_metrics",
    "submit_tool",
    "untrusted",
]
