"""Pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

The API server accepts only structural schemas in a CustomResourceDefinition: no `$ref`,
a `type` on every node, `anyOf` only for int-or-string, and a handful of JSON Schema
keywords it does not support (titles are noise, `additionalProperties: false` and
`uniqueItems` are refused, `exclusiveMinimum` is a boolean in OpenAPI v3.0). This module
rewrites what pydantic emits into that dialect; `structural_violations` double-checks the
result so a model change that cannot be expressed fails the generator, not `kubectl apply`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "examples", "propertyNames", "$schema"})
_WORD_SEPARATORS = str.maketrans({"\n": " ", "\t": " "})


class UnsupportedSchemaError(ValueError):
    """The model uses a construct a structural schema cannot express."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's validation schema, with camelCase names, in the structural dialect."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, Schema] = raw.pop("$defs", {})
    return _expand_object_defaults(_convert(raw, definitions, path=model.__name__))


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Structural defaulting as the API server does it: top-down, into defaulted objects."""
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _expand_object_defaults(node: Schema) -> Schema:
    """`default: {}` becomes the object with its fields' defaults filled in.

    The API server checks a default against the CEL rules of its object as written,
    without defaulting inside it, so a rule such as `self.scaleDown.x < self.scaleUp.y`
    fails on a bare `{}` even though the stored object would pass.
    """
    for child in node.get("properties", {}).values():
        _expand_object_defaults(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _expand_object_defaults(node[key])
    if isinstance(node.get("default"), dict) and "properties" in node:
        node["default"] = apply_defaults(node, copy.deepcopy(node["default"]))
    return node


def normalise_description(text: str) -> str:
    """Docstrings are wrapped at 100 columns; Kubernetes clients wrap text themselves."""
    return " ".join(text.translate(_WORD_SEPARATORS).split())


def _resolve(reference: str, definitions: Mapping[str, Schema], path: str) -> Schema:
    prefix = "#/$defs/"
    if not reference.startswith(prefix) or reference[len(prefix) :] not in definitions:
        raise UnsupportedSchemaError(f"{path}: unresolvable $ref {reference}")
    return definitions[reference[len(prefix) :]]


def _convert(node: Schema, definitions: Mapping[str, Schema], path: str) -> Schema:
    node = dict(node)
    if "$ref" in node:
        target = _convert(_resolve(node.pop("$ref"), definitions, path), definitions, path)
        # Keys next to the reference (the field's description, default) win over the
        # referenced model's own.
        return {**target, **_convert(node, definitions, path)} if node else target
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise UnsupportedSchemaError(f"{path}: allOf with {len(parts)} members")
        return {**_convert(parts[0], definitions, path), **_convert(node, definitions, path)}
    if "anyOf" in node:
        node = _collapse_any_of(node, definitions, path)

    converted: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "additionalProperties" and value is False:
            continue  # Unknown fields are pruned by the API server instead.
        if key == "uniqueItems":
            raise UnsupportedSchemaError(
                f"{path}: uniqueItems is refused by the API server; use a list with "
                "x-kubernetes-list-type: set"
            )
        if key == "const":
            converted["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            converted[bound] = value
            converted[key] = True
        elif key == "description":
            converted[key] = normalise_description(value)
        elif key == "properties":
            converted[key] = {
                name: _convert(child, definitions, f"{path}.{name}")
                for name, child in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            converted[key] = _convert(value, definitions, f"{path}[]")
        elif key == "default" and value is None:
            continue
        else:
            converted[key] = value
    if "enum" in converted and "type" not in converted:
        converted["type"] = _enum_type(converted["enum"], path)
    return converted


def _collapse_any_of(node: Schema, definitions: Mapping[str, Schema], path: str) -> Schema:
    """Optional fields become `nullable: true`; int-or-string stays as the API server
    expects it; every other union is refused."""
    members = node.pop("anyOf")
    if node.get("x-kubernetes-int-or-string"):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return node
    non_null = [m for m in members if m != {"type": "null"}]
    if len(non_null) == len(members) or len(non_null) != 1:
        raise UnsupportedSchemaError(f"{path}: union {members} has no structural form")
    inner = _convert(non_null[0], definitions, path)
    merged = {**inner, **node, "nullable": True}
    if merged.get("default") is None:
        merged.pop("default", None)
    return merged


def _enum_type(values: list[Any], path: str) -> str:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {int}:
        return "integer"
    if kinds == {bool}:
        return "boolean"
    raise UnsupportedSchemaError(f"{path}: enum {values} mixes types")


def structural_violations(schema: Schema, path: str = "") -> Iterator[str]:
    """Rules of structural schemas this project relies on; empty when the schema is valid.

    Every node names its type (int-or-string and preserved objects excepted), every field
    has a description (except the root's `metadata`, whose schema the API server owns),
    and no keyword the API server refuses remains.
    """
    exempt = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if "type" not in schema and not exempt:
        yield f"{path or '<root>'}: no type"
    for key in ("$ref", "allOf", "oneOf", "not", "title", "uniqueItems", "propertyNames"):
        if key in schema:
            yield f"{path or '<root>'}: {key} is not allowed"
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        yield f"{path or '<root>'}: anyOf outside int-or-string"
    if schema.get("additionalProperties") is False:
        yield f"{path or '<root>'}: additionalProperties: false"
    if "properties" in schema and "additionalProperties" in schema:
        yield f"{path or '<root>'}: both properties and additionalProperties"
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        if not child.get("description") and child_path != "metadata":
            yield f"{child_path}: no description"
        yield from structural_violations(child, child_path)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from structural_violations(schema[key], f"{path}[]")
