"""The base every custom-resource model derives from.

Python attributes are snake_case; the Kubernetes wire form (and the generated CRD
schema) is camelCase through the alias generator. Unknown fields are rejected so a typo in
a spec is an error, not silently ignored.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

API_GROUP = "agentfleet.dev"
API_VERSION = "v1alpha1"

LABEL_POOL = f"{API_GROUP}/pool"
"""On every worker Pod and child object: the WorkerPool it belongs to."""

LABEL_STAGE = f"{API_GROUP}/stage"
"""On every worker Pod and child object: the stage its pool serves."""


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The camelCase dict Kubernetes stores (defaults included, None left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Stage(StrEnum):
    """Pipeline stages; review is where failed or low-quality work goes."""

    GENESIS = "genesis"
    DEVELOPMENT = "development"
    CONTENT = "content"
    REVIEW = "review"


DEFAULT_PIPELINE: tuple[Stage, ...] = (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT)
