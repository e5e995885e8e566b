"""The string grammars of `agentfleet.core.api.grammar`, checked in the engines that evaluate
them here (Python's `re` and pydantic-core's Rust `regex`); the API server's Go RE2 is
exercised by tests/e2e/operator/test_malformed_input.py."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from agentfleet.core.api import grammar
from agentfleet.core.api.workerpool import WorkerPoolSpec

pytestmark = pytest.mark.unit


def matches(pattern: str, text: str) -> bool:
    """As the API server and pydantic read an anchored pattern: the whole text (Python's
    `re.search` would let `$` match before a trailing newline)."""
    return re.fullmatch(pattern, text) is not None


PATTERNS = {
    name: value
    for name, value in vars(grammar).items()
    if name.endswith("_PATTERN") and isinstance(value, str)
}
DIGEST = "sha256:" + "f" * 64


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_patterns_use_only_what_every_engine_reads_the_same_way(name: str) -> None:
    pattern = PATTERNS[name]
    re.compile(pattern)
    assert pattern.startswith("^") and pattern.endswith("$")
    assert "$" not in pattern[:-1].replace("\\$", ""), "$ only at the end"
    for construct in ("\\w", "\\d", "\\s", "\\x{", "(?=", "(?!", "(?<", "\\Z", "\\z"):
        assert construct not in pattern, f"{construct} reads differently in RE2, Rust or Python"
    assert "'" not in pattern, "CEL rules quote patterns in raw single-quoted strings"


TEXT = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(["\x00", "\n", "\t", "\r", "\x1b", "\x7f", "\x85", " ", ":", "/", "@"]),
    max_size=24,
)


@pytest.mark.parametrize("name", sorted(PATTERNS))
@given(text=TEXT)
def test_python_and_pydantic_agree_on_every_pattern(name: str, text: str) -> None:
    pattern = PATTERNS[name]
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[str, Field(pattern=pattern)])
    try:
        adapter.validate_python(text)
        rust = True
    except ValidationError:
        rust = False
    assert rust == matches(pattern, text), repr(text)


# Cases from github.com/distribution/reference's reference_test.go (the grammar's own).
VALID_IMAGES = [
    "test_com",
    "test.com:tag",
    "test.com:5000",
    "test.com/repo:tag",
    "test:5000/repo",
    "test:5000/repo:tag",
    f"test:5000/repo@{DIGEST}",
    f"test:5000/repo:tag@{DIGEST}",
    "lowercase:Uppercase",
    "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    "b.gcr.io/test.example.com/my-app:test.example.com",
    "xn--n3h.com/myimage:xn--n3h.com",
    "foo_bar.com:8080",
    "192.168.1.1:5000/repo:5050",
    "[2001:db8::1]:5000/repo:tag",
    "[::1]:5000/repo",
    "ghcr.io/agentfleet/agentfleet-worker:0.1.0",
]
INVALID_IMAGES = [
    "",
    ":justtag",
    f"@{DIGEST}",
    "Uppercase:tag",
    "test:5000/Uppercase/lowercase:tag",
    "aa/asdf$$^/aa",
    "[2001:db8::1]",
    "[fe80::1%eth0]:5000/repo",
    # What the issue saw stored and built into a Deployment.
    "ghcr.io/acme/worker image:1",
    " ghcr.io/acme/worker:1",
    "ghcr.io/acme/worker:1\n",
    "https://ghcr.io/acme/worker:1",
]


@pytest.mark.parametrize("image", VALID_IMAGES)
def test_image_references_the_runtimes_accept(image: str) -> None:
    assert matches(grammar.IMAGE_REFERENCE_PATTERN, image)
    WorkerPoolSpec.model_validate({"stage": "review", "image": image})


@pytest.mark.parametrize("image", INVALID_IMAGES)
def test_image_references_the_runtimes_refuse(image: str) -> None:
    assert not matches(grammar.IMAGE_REFERENCE_PATTERN, image)
    with pytest.raises(ValidationError, match="image"):
        WorkerPoolSpec.model_validate({"stage": "review", "image": image})


@pytest.mark.parametrize(
    ("value", "single_line", "text"),
    [
        ("plain words, punctuation: fine!", True, True),
        ("ünïcödé ✓ 日本語", True, True),
        ("two\nlines", False, True),
        ("tab\tseparated\r\n", False, True),
        ("nul\x00", False, False),
        ("escape \x1b[31m", False, False),
        ("delete \x7f", False, False),
        ("next line \x85", False, False),
        ("vertical \x0b tab", False, False),
        ("trailing newline\n", False, True),
    ],
)
def test_free_text_control_characters(value: str, single_line: bool, text: bool) -> None:
    assert matches(grammar.SINGLE_LINE_PATTERN, value) is single_line
    assert matches(grammar.TEXT_PATTERN, value) is text


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        ("claude-sonnet-4-6", True),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", True),
        ("claude-3-5-sonnet-v2@20241022", True),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude", True),
        ("claude sonnet", False),
        ("claude\x00", False),
        ("claude\u2013sonnet", False),
        ("-leading-dash", False),
        ("", False),
    ],
)
def test_model_names(model: str, valid: bool) -> None:
    assert matches(grammar.MODEL_NAME_PATTERN, model) is valid


@pytest.mark.parametrize(
    ("login", "valid"),
    [
        ("octocat", True),
        ("dependabot[bot]", True),
        ("renovate-bot", True),
        ("a" * 39, True),
        ("a" * 40, False),
        ("-dash", False),
        ("two words", False),
        ("bot[bot][bot]", False),
        ("@octocat", False),
        ("", False),
    ],
)
def test_github_logins(login: str, valid: bool) -> None:
    assert matches(grammar.GITHUB_LOGIN_PATTERN, login) is valid


@pytest.mark.parametrize(
    ("quantity", "valid"),
    [
        *[(good, True) for good in ("500m", "2Gi", "1", "+1.5", "1e3", 4)],
        *[(bad, False) for bad in ("-1", "1Gb", "lots", -1, "1" * 65)],
    ],
)
def test_quantities_are_non_negative(quantity: int | str, valid: bool) -> None:
    spec = {"stage": "review", "resources": {"requests": {"cpu": quantity}, "limits": {}}}
    if valid:
        WorkerPoolSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError, match="quantity"):
            WorkerPoolSpec.model_validate(spec)


def test_requests_above_limits_are_refused_by_quantity_not_text() -> None:
    within = {
        "requests": {"cpu": "1500m", "memory": "1Gi"},
        "limits": {"cpu": 2, "memory": "1024Mi"},
    }
    WorkerPoolSpec.model_validate({"stage": "review", "resources": within})
    over = {"requests": {"cpu": 2}, "limits": {"cpu": "1500m"}}
    with pytest.raises(ValidationError, match=r"cpu \(request 2 > limit 1500m\)"):
        WorkerPoolSpec.model_validate({"stage": "review", "resources": over})


@pytest.mark.parametrize(
    ("field", "mapping"),
    [
        ("nodeSelector", {"disk type": "ssd"}),
        ("nodeSelector", {"k" * 318: "v"}),
        ("nodeSelector", {"disk": "fast ssd"}),
        ("projectSelector", {"matchLabels": {"-team": "a"}}),
    ],
)
def test_label_maps_check_keys_and_values(field: str, mapping: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerPoolSpec.model_validate({"stage": "review", field: mapping})


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sum(agentfleet_queue_depth)", None),
        ("max(agentfleet_queue_oldest_wait_seconds{stage='review'})\n", None),
        ("scalar(sum(agentfleet_worker_busy)) / 4", None),
        ("42", None),
        ("(agentfleet_queue_depth)", None),
        ("-agentfleet_queue_depth", None),
        ("the queue depth please", "not valid PromQL"),
        ("sum(agentfleet_queue_depth", "not valid PromQL: unclosed left parenthesis"),
        ("busyness(agentfleet_worker_busy)", "not valid PromQL: unknown function"),
        ("abs(agentfleet_queue_depth[5m])", "not valid PromQL"),
        ("agentfleet_queue_depth[5m]", "PromQL of type matrix"),
        ("rate(agentfleet_queue_depth[5m])[10m:1m]", "PromQL of type matrix"),
        ('"ten"', "PromQL of type string"),
    ],
)
def test_promql_overrides_are_parsed(query: str, problem: str | None) -> None:
    found = grammar.promql_error(query)
    if problem is None:
        assert found is None
        WorkerPoolSpec.model_validate(
            {"stage": "review", "autoscaling": {"queries": {"queueDepth": query}}}
        )
    else:
        assert found is not None and found.startswith(problem), found
        with pytest.raises(ValidationError, match="queueDepth"):
            WorkerPoolSpec.model_validate(
                {"stage": "review", "autoscaling": {"queries": {"queueDepth": query}}}
            )


# ------------------------------------------------------------------------ quantities

_DIGITS = st.text("0123456789", min_size=1, max_size=6)
QUANTITIES = st.builds(
    lambda sign, whole, frac, suffix: f"{sign}{whole}{frac}{suffix}",
    st.sampled_from(["", "+"]),
    _DIGITS,
    st.one_of(st.just(""), st.just("."), _DIGITS.map(lambda d: f".{d}")),
    st.one_of(
        st.sampled_from(["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k"]),
        st.sampled_from(["M", "G", "T", "P", "E"]),
        st.builds(
            lambda e, sign, n: f"{e}{sign}{n}",
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.integers(0, 12).map(str),
        ),
    ),
)


@given(QUANTITIES)
def test_quantity_values_agree_with_the_kubernetes_client(quantity: str) -> None:
    from kubernetes.utils.quantity import parse_quantity

    assert matches(grammar.QUANTITY_PATTERN, quantity)
    assert grammar.quantity_value(quantity) == parse_quantity(quantity)


@pytest.mark.parametrize(
    ("smaller", "larger"), [("500m", "1"), ("1Gi", "1.1G"), ("1e3", "1Ki"), ("999n", "1u")]
)
def test_quantities_compare_by_value(smaller: str, larger: str) -> None:
    assert grammar.quantity_value(smaller) < grammar.quantity_value(larger)


@pytest.mark.parametrize("text", ["", "-1", "1x", "Gi", "1.2.3"])
def test_a_malformed_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        grammar.quantity_value(text)
