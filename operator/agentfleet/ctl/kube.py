"""The CLI's Kubernetes client: a kubeconfig and kubectl's flags, and errors as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from agentfleet.core.api import API_GROUP, API_VERSION

PLURALS = {"Project": "projects", "WorkerPool": "workerpools"}
FIELD_MANAGER = "agentfleet-cli"
"""The field manager of the CLI's changes (`kubectl get -o yaml --show-managed-fields`)."""


class CliError(Exception):
    """A failure the CLI reports as one line (`error: ...`) and exit code 1."""


@dataclass(frozen=True)
class Target:
    """Where the commands act: the kubeconfig's cluster and a namespace (or all)."""

    api: client.ApiClient
    namespace: str | None
    """None: every namespace (-A)."""

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
        all_namespaces: bool,
    ) -> Target:
        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (ConfigException, OSError, TypeError) as exc:
            raise CliError(f"cannot load the kubeconfig: {exc}") from None
        if all_namespaces:
            return cls(api, None)
        if namespace is None:
            chosen = (
                next((c for c in contexts if c["name"] == context), active) if context else active
            )
            namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        return cls(api, namespace)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        custom = client.CustomObjectsApi(self.api)
        with api_errors(f"list {PLURALS[kind]}", self.namespace):
            if self.namespace is None:
                found = custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURALS[kind])
            else:
                found = custom.list_namespaced_custom_object(
                    API_GROUP, API_VERSION, self.namespace, PLURALS[kind]
                )
        items: list[dict[str, Any]] = found.get("items", [])
        return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        custom = client.CustomObjectsApi(self.api)
        namespace = self.require_namespace()
        with api_errors(f"get {kind.lower()} {name!r}", namespace):
            found: dict[str, Any] = custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURALS[kind], name
            )
        return found

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the resource's spec (RBAC verb `patch`)."""
        custom = client.CustomObjectsApi(self.api)
        namespace = self.require_namespace()
        with api_errors(f"patch {kind.lower()} {name!r}", namespace):
            patched: dict[str, Any] = custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURALS[kind],
                name,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
            )
        return patched

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        core = client.CoreV1Api(self.api)
        with api_errors("list pods", namespace):
            found = core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False
            )
        items: list[dict[str, Any]] = json.loads(found.data)["items"]
        return sorted(items, key=lambda pod: pod["metadata"]["name"])

    def pod(self, name: str) -> dict[str, Any]:
        core = client.CoreV1Api(self.api)
        namespace = self.require_namespace()
        with api_errors(f"get pod {name!r}", namespace):
            found = core.read_namespaced_pod(name, namespace, _preload_content=False)
        pod: dict[str, Any] = json.loads(found.data)
        return pod

    def delete_pod(self, name: str) -> None:
        core = client.CoreV1Api(self.api)
        namespace = self.require_namespace()
        with api_errors(f"delete pod {name!r}", namespace):
            core.delete_namespaced_pod(name, namespace, _preload_content=False)

    def require_namespace(self) -> str:
        if self.namespace is None:
            raise CliError("naming one object acts in one namespace: give -n NAMESPACE, not -A")
        return self.namespace


@contextmanager
def api_errors(action: str, namespace: str | None) -> Iterator[None]:
    """The API server's refusals as one readable line."""
    where = f"in namespace {namespace!r}" if namespace else "in any namespace"
    try:
        yield
    except ApiException as exc:
        reason = _message(exc)
        if exc.status == 403:
            raise CliError(f"forbidden: cannot {action} {where}: {reason}") from None
        if exc.status == 404:
            raise CliError(f"not found: cannot {action} {where}: {reason}") from None
        if exc.status == 401:
            raise CliError(
                f"unauthorized: the kubeconfig's credentials were refused ({reason})"
            ) from None
        raise CliError(f"cannot {action} {where}: {exc.status} {reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CliError(f"cannot reach the API server: {exc}") from None


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or "no message")
