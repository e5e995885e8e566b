"""The grammars of the strings a Project or WorkerPool carries into a Pod, a Redis key or a
Prometheus query: one home for every pattern the models, the generated CRDs and the
operator check.

Each pattern is written in the subset of regular expressions that the three engines
which evaluate it agree on: Go's RE2 (the API server checks `pattern` and CEL
`matches()`), Rust's `regex` (pydantic-core) and Python's `re` (tests). So: no `\\w`
(Unicode in two of them, ASCII in Go), no `\\x{...}` (not in Python), no lookaround (not
in RE2), and `$` only at the end (RE2 and Rust treat it as the end of the text).
`tests/unit/api/test_grammar.py` checks each one in every engine it can run here and the
e2e suite checks them in the API server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import promql_parser
from pydantic.config import JsonDict

# ---------------------------------------------------------------- Kubernetes names

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Secret, Project or other object name (RFC 1123 subdomain)."""

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
"""A label key or any other qualified name (`prefix/name`): also resource names such as
`cpu`, `ephemeral-storage` or `nvidia.com/gpu`."""
LABEL_KEY_MAX_LENGTH = 317
"""253 for the prefix, 1 for the slash, 63 for the name."""

LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
LABEL_VALUE_MAX_LENGTH = 63

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A C identifier: what every shell and `os.environ` consumer can read."""

QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""The grammar of `resource.Quantity` without a minus sign: requests and limits are never
negative."""

_QUANTITY_PARTS = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_SUFFIX_FACTORS = {
    **{f"{p}i": Decimal(1024) ** n for n, p in enumerate("KMGTPE", start=1)},
    **{p: Decimal(1000) ** n for n, p in enumerate("kMGTPE", start=1)},
    "m": Decimal("1e-3"),
    "u": Decimal("1e-6"),
    "n": Decimal("1e-9"),
}


def quantity_value(quantity: str | int) -> Decimal:
    """The exact value of a quantity of QUANTITY_PATTERN (`2Gi`, `500m`, `1e3`, `3`), to
    compare requests with limits. Kept here rather than importing the `kubernetes`
    client's parser, which loads the whole client (about 34 MB) into every process that
    reads a WorkerPool; tests/unit/api prove it agrees with that parser."""
    match = _QUANTITY_PARTS.fullmatch(str(quantity))
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    number = Decimal(match["number"])
    if match["exponent"] is not None:
        return number.scaleb(int(match["exponent"]))
    return number * _SUFFIX_FACTORS[match["suffix"]] if match["suffix"] else number


# ------------------------------------------------------------------------------ URLs

REPOSITORY_PATTERN = (
    r"^([A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}"
    r"|https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._-]+)*/[A-Za-z0-9][A-Za-z0-9-]{0,38}"
    r"/[A-Za-z0-9._-]{1,100}?(\.git)?/?)$"
)
"""`owner/name` on github.com, or the HTTPS URL of a repository (GitHub Enterprise too)."""

GITHUB_API_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+)*/?$"
"""An http(s) URL without credentials, query or fragment."""

GITHUB_LOGIN_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,38})(\[bot\])?$"
"""A GitHub user or bot login (`octocat`, `dependabot[bot]`): letters, digits and hyphens,
at most 39, not starting with a hyphen; apps act as `<slug>[bot]`."""

# ------------------------------------------------------------------- image references
# github.com/distribution/reference (regexp.go), the grammar the kubelet and containerd
# parse image references with, spelled with explicit classes: `\w` is [0-9A-Za-z_] in Go.

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"

IMAGE_REFERENCE_PATTERN = rf"^{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$"
"""`[registry[:port]/]path[:tag][@digest]`: lowercase path components, no spaces, no
scheme."""

# ------------------------------------------------------------------------ free text

SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""Free text on one line: no control character at all (C0, DEL, C1), so no NUL, no
newline, no escape sequence."""

TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""Free text that may span lines (an env value holding a script or a PEM key): tab,
newline and carriage return are allowed, every other control character (NUL first of
all, which no process environment can carry) is not."""

MODEL_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._:@/-]*[A-Za-z0-9])?$"
"""Anthropic model names and the forms cloud providers give them:
`claude-sonnet-4-6`, `anthropic.claude-3-5-sonnet-20241022-v2:0`,
`claude-3-5-sonnet-v2@20241022`, or an inference profile ARN."""

PROMQL_MAX_LENGTH = 4096

# ------------------------------------------------------------------------ PromQL


def promql_error(query: str) -> str | None:
    """Why `query` cannot serve as an autoscaling signal, or None.

    Parsed (and type-checked: function arguments, operand types) by promql-parser, the
    Prometheus grammar in Rust; the expression must evaluate to an instant vector or a
    scalar, which is what an instant query can turn into one number.
    """
    try:
        expression = promql_parser.parse(query)
    except ValueError as error:
        return f"not valid PromQL: {error}"
    kind = _value_type(expression)
    if kind not in ("vector", "scalar"):
        return f"PromQL of type {kind}: it must return an instant vector or a scalar"
    return None


def _value_type(expression: Any) -> str:
    """The type an expression evaluates to: vector, scalar, matrix or string."""
    if isinstance(expression, promql_parser.ParenExpr):
        return _value_type(expression.expr)
    if isinstance(expression, promql_parser.UnaryExpr):
        return _value_type(expression.expr)
    if isinstance(expression, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(expression, promql_parser.StringLiteral):
        return "string"
    if isinstance(expression, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expression, promql_parser.Call):
        return str(expression.func.return_type).rsplit(".", 1)[-1].lower()
    if isinstance(expression, promql_parser.BinaryExpr):
        sides = {_value_type(expression.lhs), _value_type(expression.rhs)}
        return "scalar" if sides == {"scalar"} else "vector"
    return "vector"  # selectors and aggregations


# ------------------------------------------------------------------------ CEL helpers


def cel_string(value: str) -> str:
    """A CEL string literal for `value` (a raw single-quoted string: no escapes needed
    for these patterns, which contain no quote)."""
    if "'" in value:
        raise ValueError(f"a CEL raw string cannot hold a quote: {value!r}")
    return f"r'{value}'"


def matches_rule(pattern: str, message: str) -> Callable[[JsonDict], None]:
    """`json_schema_extra` for a string field whose pattern is too long to read in an
    error: the generated schema checks it with a CEL rule that says what is expected in
    words (an error of the same, non-blocking kind as a pattern's); pydantic keeps
    checking the pattern itself."""

    def rewrite(schema: JsonDict) -> None:
        # An optional field's pattern sits in the string member of its anyOf.
        members = schema.get("anyOf")
        holders = [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []
        holder = next((m for m in [schema, *holders] if "pattern" in m), None)
        if holder is None or holder.pop("pattern") != pattern:
            raise ValueError(f"the schema has no pattern {pattern!r} to turn into a rule")
        schema["x-kubernetes-validations"] = [
            {
                "rule": f"self.matches({cel_string(pattern)})",
                "message": message,
                "reason": "FieldValueInvalid",
            }
        ]

    return rewrite


def matches_rule_pattern(rule: str) -> str | None:
    """The pattern of a rule `matches_rule` wrote, or None for any other rule."""
    prefix, suffix = "self.matches(r'", "')"
    if rule.startswith(prefix) and rule.endswith(suffix):
        return rule[len(prefix) : -len(suffix)]
    return None


def keys_match_rule(pattern: str, max_length: int, what: str, example: str) -> JsonDict:
    """A CEL rule for a map whose keys must match `pattern` (a structural schema cannot
    constrain map keys). The message is static: a `messageExpression` listing the
    offending keys is refused by the API server's cost estimate."""
    return {
        "rule": f"self.all(k, k.size() <= {max_length} && k.matches({cel_string(pattern)}))",
        "message": f"{what} must be {example} of at most {max_length} characters",
        "reason": "FieldValueInvalid",
    }
