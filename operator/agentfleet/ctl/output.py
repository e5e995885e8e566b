"""Tables for people (rich), JSON and YAML for scripts.

Machine output is stable: `{"kind": "<Kind>List", "items": [...]}` with the row models'
field names in camelCase, or the `Summary` object for `status`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def machine(value: BaseModel | Sequence[BaseModel], kind: str) -> dict[str, Any]:
    """What -o json and -o yaml print: the `views` models by their camelCase names
    (`FleetStatus`, or a `Listing` of rows), which read the output back strictly."""
    if isinstance(value, BaseModel):
        return {"kind": kind, **value.model_dump(mode="json", by_alias=True)}
    return {
        "kind": f"{kind}List",
        "items": [v.model_dump(mode="json", by_alias=True) for v in value],
    }


def emit(console: Console, fmt: Format, payload: dict[str, Any], table: Callable[[], None]) -> None:
    if fmt is Format.JSON:
        console.out(json.dumps(payload, indent=2, sort_keys=True), highlight=False)
    elif fmt is Format.YAML:
        console.out(yaml.safe_dump(payload, sort_keys=True).rstrip(), highlight=False)
    else:
        table()


def make_table(title: str | None, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> float:
    """`90s`, `30m`, `1h`, `2d` (or plain seconds) in seconds; ValueError otherwise."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number_part = text[:-1] if unit else text
    try:
        seconds = float(number_part) * (unit or 1)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{value!r} is not a positive duration (e.g. 90s, 30m, 1h, 2d)")
    return seconds
