"""The Lua scripts that make every queue transition atomic, and the key layout they share.

Each script is `lua/common.lua` followed by `lua/<name>.lua`. Scripts run by EVALSHA;
redis-py reloads them transparently after a Redis restart (NOSCRIPT).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "accept",
    "heartbeat",
    "finish",
    "retry",
    "release",
    "boost",
    "snapshot",
    "fan_out",
    "family",
    "holders",
    "in_flight",
    "requeue",
    "spend",
    "day_spend",
    "feedback",
)


@cache
def script_source(name: str) -> str:
    lua = resources.files("agentfleet.core.queue") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def namespace_base(prefix: str, namespace: str) -> str:
    """Key base of a namespace; the `{}` hash tag keeps its keys in one cluster slot."""
    return f"{prefix}:{{{namespace}}}"


def arrivals_pattern(prefix: str) -> str:
    """The pub/sub channels on which every namespace announces items becoming deliverable
    (`<base>:arrivals`, published by the queue scripts)."""
    return f"{prefix}:{{*}}:arrivals"


def dead_letters_key(prefix: str, namespace: str, project: str) -> str:
    """A project's dead letters: item id -> the item as it last ran (`finish.lua`)."""
    return f"{namespace_base(prefix, namespace)}:dead:{project}"


def namespaces_key(prefix: str) -> str:
    return f"{prefix}:namespaces"
