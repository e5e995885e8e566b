"""Custom resources of agentfleet (group agentfleet.dev, version v1alpha1)."""

from agentfleet.core.api.base import API_GROUP, API_VERSION, DEFAULT_PIPELINE, ApiModel, Stage

__all__ = ["API_GROUP", "API_VERSION", "DEFAULT_PIPELINE", "ApiModel", "Stage"]
