"""Claude agents: a tool-use loop on `anthropic` with tools confined to a workspace."""

from agentfleet.agents.loop import AgentError, AgentResult, AgentRunner, ToolCallRecord, Usage
from agentfleet.agents.metrics import AgentMetrics, default_metrics
from agentfleet.agents.settings import AgentSettings
from agentfleet.agents.tools import Tool, ToolError, WorkspaceTools, submit_tool
from agentfleet.agents.untrusted import UNTRUSTED_INPUT_RULES, untrusted
from agentfleet.agents.workspace import PathEscapeError, Workspace
from agentfleet.redaction import REDACTED, RedactingLogger, Redactor

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
