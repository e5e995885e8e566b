"""Hidden markers in issue, comment and pull-request bodies: the idempotency keys on GitHub.

Every object agentfleet creates carries `<!-- agentfleet:<kind> key=value ... -->`, so a
redelivered work item finds what an earlier attempt created instead of creating it again.
Only objects authored by agentfleet's own GitHub identity are trusted to carry them: a
user pasting a marker into an issue cannot make agentfleet skip work.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

_MARKER = re.compile(r"<!--\s*agentfleet:([a-z][a-z0-9-]*)((?:\s+[a-z][a-z0-9_-]*=[^\s>]+)*)\s*-->")
_FIELD = re.compile(r"([a-z][a-z0-9_-]*)=([^\s>]+)")
_VALUE = re.compile(r"^[^\s>]+$")


@dataclass(frozen=True)
class Marker:
    kind: str
    fields: dict[str, str]

    def matches(self, kind: str, **fields: object) -> bool:
        return self.kind == kind and all(self.fields.get(k) == str(v) for k, v in fields.items())


def marker(kind: str, **fields: object) -> str:
    """The marker text for `kind` with `fields` (values must be free of spaces and '>')."""
    parts = [f"agentfleet:{kind}"]
    for key, value in fields.items():
        text = str(value)
        if not _VALUE.match(text):
            raise ValueError(f"marker value {text!r} must be non-empty without spaces or '>'")
        parts.append(f"{key}={text}")
    return f"<!-- {' '.join(parts)} -->"


def find_markers(body: str | None) -> list[Marker]:
    return [
        Marker(kind=match.group(1), fields=dict(_FIELD.findall(match.group(2))))
        for match in _MARKER.finditer(body or "")
    ]


def has_marker(body: str | None, kind: str, **fields: object) -> bool:
    return any(found.matches(kind, **fields) for found in find_markers(body))


def marker_field(body: str | None, kind: str, key: str) -> str | None:
    """The value of `key` in the first `kind` marker of `body`."""
    for found in find_markers(body):
        if found.kind == kind and key in found.fields:
            return found.fields[key]
    return None


_STATE = re.compile(r"<!--\s*agentfleet-state:([A-Za-z0-9+/=]+)\s*-->")


def embed_state(data: Any) -> str:
    """JSON state hidden in a comment body (base64, so no content can end the comment)."""
    encoded = base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    return f"<!-- agentfleet-state:{encoded} -->"


def extract_state(body: str | None) -> Any:
    """The state `embed_state` hid in `body`, or None."""
    match = _STATE.search(body or "")
    if match is None:
        return None
    try:
        return json.loads(base64.b64decode(match.group(1), validate=True))
    except (binascii.Error, ValueError):
        return None
