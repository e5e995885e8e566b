"""A local Anthropic Messages API (`POST /v1/messages`) for tests, benchmarks and the demo.

The real `anthropic` client talks to it unchanged through `base_url`. Replies come from
scripts: a script is a function from the conversation so far to the next assistant turn,
so it is stateless across requests (the turn number is the count of assistant messages
already in the request) and a retried request gets the same answer. Requests are checked
the way the API checks them (authentication, version header, alternating roles, every
`tool_use` answered by a `tool_result`), and can be answered with 429/529 errors carrying
`retry-after` on demand. An optional fixed latency per turn stands in for model time.

`stream: true` is answered with server-sent events as the API sends them
(`message_start`, `ping`, `content_block_start`, `content_block_delta` with `text_delta` and
`input_json_delta` split across events, `content_block_stop`, `message_delta` with the stop
reason and usage, `message_stop`), which is what Claude Code (`claude-agent-sdk`) asks
for at `POST /v1/messages?beta=true`; its `HEAD /api/hello` probe gets 404.

Scripts name agentfleet's tools (`write_file`, `submit_plan`, ...). A request that offers
them as MCP tools (`mcp__agentfleet__write_file`: how the claude-code runtime serves them)
gets its calls under those names, and a `submit_*` call becomes `StructuredOutput` when
the request offers that tool (Claude Code's structured output), so one script drives
either runtime.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentfleet.dev.testing._http import FakeHTTPServer, Request, Response


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """One assistant reply: optional text, then tool calls (which make it a `tool_use` stop)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int | None = None
    """Reported usage; estimated from the request size (4 characters a token) when None."""
    output_tokens: int | None = None


def say(text: str) -> Turn:
    return Turn(text=text)


def call(name: str, text: str = "", **tool_input: Any) -> Turn:
    return Turn(text=text, tool_calls=(ToolCall(name, tool_input),))


def calls(*tool_calls: ToolCall, text: str = "") -> Turn:
    return Turn(text=text, tool_calls=tool_calls)


@dataclass(frozen=True)
class Conversation:
    """What a script sees of one request."""

    model: str
    system: str
    messages: list[dict[str, Any]]
    tool_names: list[str]

    @property
    def turn(self) -> int:
        return sum(1 for message in self.messages if message["role"] == "assistant")

    @property
    def first_user_text(self) -> str:
        return _text_of(self.messages[0]["content"]) if self.messages else ""

    def tool_results(self) -> list[dict[str, Any]]:
        """The `tool_result` blocks of the last user message, in order."""
        content = self.messages[-1]["content"] if self.messages else []
        if isinstance(content, str):
            return []
        return [block for block in content if block.get("type") == "tool_result"]

    def last_tool_output(self) -> str:
        results = self.tool_results()
        return _text_of(results[-1].get("content", "")) if results else ""


Script = Callable[[Conversation], Turn]


def scripted(*turns: Turn, final: str = "Done.") -> Script:
    """The n-th assistant turn of every matching conversation is `turns[n]`; then `final`."""

    def script(conversation: Conversation) -> Turn:
        index = conversation.turn
        return turns[index] if index < len(turns) else say(final)

    return script


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content", "")))
    return "\n".join(parts)


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    return _text_of(system)


@dataclass
class _Fault:
    status: int
    error_type: str
    retry_after: float | None


@dataclass
class RecordedCall:
    request: dict[str, Any]
    headers: dict[str, str]
    status: int
    received_at: float
    """time.monotonic() when the request arrived."""
    response: dict[str, Any] = field(default_factory=dict)


class FakeAnthropic(FakeHTTPServer):
    def __init__(self, api_key: str = "sk-ant-test-key", latency: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.latency = latency
        """Seconds every successful turn takes, like model generation time."""
        self.calls: list[RecordedCall] = []
        self._scripts: list[tuple[str, Script]] = []
        self._faults: list[_Fault] = []
        self._rate_limits: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.route("POST", r"/v1/messages", self._messages)
        self.route("HEAD", r"/api/hello", lambda request: Response(404))

    @property
    def base_url(self) -> str:
        return self.origin

    def add_script(self, match: str, script: Script) -> None:
        """Answer conversations whose system prompt or first user message contains `match`.

        Scripts are tried in the order they were added; the first match wins.
        """
        with self._lock:
            self._scripts.append((match, script))

    def fail_next(self, count: int = 1, status: int = 529, retry_after: float | None = 1) -> None:
        """Answer the next `count` requests with an overloaded (529) or rate-limit (429) error."""
        error_type = "rate_limit_error" if status == 429 else "overloaded_error"
        with self._lock:
            self._faults.extend(_Fault(status, error_type, retry_after) for _ in range(count))

    def clear_faults(self) -> None:
        """Answer normally again: the errors `fail_next` queued and not yet sent are dropped."""
        with self._lock:
            self._faults.clear()

    def report_rate_limit(self, budget: str, limit: int, remaining: int) -> None:
        """Send `anthropic-ratelimit-<budget>-{limit,remaining,reset}` on every response from
        now on, as the API does (budget: requests, tokens, input-tokens, output-tokens; the
        window resets a minute after each response)."""
        with self._lock:
            self._rate_limits[budget] = (limit, remaining)

    def _rate_limit_headers(self) -> dict[str, str]:
        with self._lock:
            budgets = dict(self._rate_limits)
        reset = datetime.fromtimestamp(time.time() + 60, UTC).isoformat().replace("+00:00", "Z")
        headers = {}
        for budget, (limit, remaining) in budgets.items():
            prefix = f"anthropic-ratelimit-{budget}"
            headers[f"{prefix}-limit"] = str(limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = reset
        return headers

    def requests_matching(self, text: str) -> list[dict[str, Any]]:
        """Bodies of the accepted requests whose system prompt or messages contain `text`."""
        return [
            call.request
            for call in self.calls
            if call.status == 200 and text in json.dumps(call.request)
        ]

    def usage_totals(self) -> dict[str, int]:
        totals = {"input_tokens": 0, "output_tokens": 0}
        for recorded in self.calls:
            usage = recorded.response.get("usage", {})
            for key in totals:
                totals[key] += usage.get(key, 0)
        return totals

    @staticmethod
    def _error(
        status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return Response(status, body, {"request-id": _request_id(), **(headers or {})})

    def _rate_limited_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**self._rate_limit_headers(), **headers}

    def _messages(self, request: Request) -> Response:
        received_at = time.monotonic()
        body: Any = None
        try:
            body = request.json()
            response = self._answer(request, body)
        except ValueError:
            response = self._error(400, "invalid_request_error", "body is not JSON")
        with self._lock:
            self.calls.append(
                RecordedCall(
                    request=body if isinstance(body, dict) else {},
                    headers=request.headers,
                    status=response.status,
                    received_at=received_at,
                    response=response.body if isinstance(response.body, dict) else {},
                )
            )
        return response

    def _answer(self, request: Request, body: Any) -> Response:
        # SDK versions differ: older ones send x-api-key, newer ones a Bearer token.
        presented = {
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        }
        if self.api_key not in presented:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        problem = _validate(body)
        if problem:
            return self._error(400, "invalid_request_error", problem)
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return self._fault_response(fault)
        conversation = Conversation(
            model=body["model"],
            system=_system_text(body.get("system")),
            messages=body["messages"],
            tool_names=[tool["name"] for tool in body.get("tools", [])],
        )
        script = self._script_for(conversation)
        if script is None:
            return self._error(500, "api_error", "fake: no script matches this conversation")
        turn = script(conversation)
        if self.latency:
            time.sleep(self.latency)
        message = self._message(body, turn, conversation.tool_names)
        headers = {"request-id": _request_id(), **self._rate_limit_headers()}
        if body.get("stream") is True:
            headers["Content-Type"] = "text/event-stream; charset=utf-8"
            headers["Cache-Control"] = "no-cache"
            return Response(200, message, headers, stream=_events(message))
        return Response(200, message, headers)

    def _fault_response(self, fault: _Fault) -> Response:
        headers = {"x-should-retry": "true"}
        if fault.retry_after is not None:
            seconds = fault.retry_after
            headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        message = (
            "Overloaded"
            if fault.status == 529
            else "Number of request tokens has exceeded your per-minute rate limit"
        )
        return self._error(
            fault.status, fault.error_type, message, self._rate_limited_headers(headers)
        )

    def _script_for(self, conversation: Conversation) -> Script | None:
        haystack = conversation.system + "\n" + conversation.first_user_text
        with self._lock:
            scripts = list(self._scripts)
        return next((script for match, script in scripts if match in haystack), None)

    def _message(self, request: dict[str, Any], turn: Turn, offered: list[str]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if turn.text:
            content.append({"type": "text", "text": turn.text})
        for tool_call in turn.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(self._ids):06d}{uuid.uuid4().hex[:18]}",
                    "name": offered_name(tool_call.name, offered),
                    "input": tool_call.input,
                }
            )
        input_tokens = turn.input_tokens
        if input_tokens is None:
            input_tokens = math.ceil(len(json.dumps(request)) / 4)
        output_tokens = turn.output_tokens
        if output_tokens is None:
            output_tokens = max(1, math.ceil(len(json.dumps(content)) / 4))
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": "tool_use" if turn.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }


MCP_PREFIX = "mcp__agentfleet__"
"""How the claude-code runtime offers agentfleet's tools (an in-process MCP server)."""
STRUCTURED_OUTPUT = "StructuredOutput"


def offered_name(name: str, offered: list[str]) -> str:
    """A script's tool name as this request offers the tool."""
    if name in offered:
        return name
    if MCP_PREFIX + name in offered:
        return MCP_PREFIX + name
    if name.startswith("submit_") and STRUCTURED_OUTPUT in offered:
        return STRUCTURED_OUTPUT
    return name


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _events(message: dict[str, Any]) -> list[bytes]:
    """`message` as the API streams it."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [
        _sse("message_start", {"type": "message_start", "message": start}),
        _sse("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        opened: dict[str, Any]
        if block["type"] == "text":
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _pieces(block["text"])]
        else:
            opened = {**block, "input": {}}
            encoded = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in _pieces(encoded, max(1, len(encoded) // 3 + 1))
            ]
        events.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
        )
        for delta in deltas:
            events.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _validate(body: Any) -> str | None:
    """The first problem the Messages API would report for this request body, if any."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: first message must use the 'user' role"
    for index, message in enumerate(messages):
        if message.get("role") not in {"user", "assistant"}:
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        if index and message["role"] == messages[index - 1]["role"]:
            return f"messages.{index}: roles must alternate between 'user' and 'assistant'"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages.{index}.content: Field required"
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or isinstance(message["content"], str):
            continue
        wanted = {b["id"] for b in message["content"] if b.get("type") == "tool_use"}
        if not wanted:
            continue
        following = messages[index + 1]["content"] if index + 1 < len(messages) else []
        answered = (
            {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
            if isinstance(following, list)
            else set()
        )
        missing = wanted - answered
        if missing:
            return (
                f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(missing))}"
            )
    return None
