"""The thin Kubernetes adapter: get, server-side apply, status patches, Secret lookups.

Blocking calls on the official client; the async handlers run them in threads. Objects go
in and come out as plain dicts in their wire form (`_preload_content=False` skips the
client's model classes, which the operator does not need).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.operator.children import FIELD_MANAGER, Manifest
from agentfleet.operator.logic import SecretLookup

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

# (apiVersion, kind) -> (API class, snake_case resource name) of the children.
_BUILTIN: dict[tuple[str, str], tuple[Callable[[client.ApiClient], Any], str]] = {
    ("v1", "ServiceAccount"): (client.CoreV1Api, "service_account"),
    ("v1", "Service"): (client.CoreV1Api, "service"),
    ("policy/v1", "PodDisruptionBudget"): (client.PolicyV1Api, "pod_disruption_budget"),
    ("apps/v1", "Deployment"): (client.AppsV1Api, "deployment"),
    ("networking.k8s.io/v1", "NetworkPolicy"): (client.NetworkingV1Api, "network_policy"),
    ("v1", "Secret"): (client.CoreV1Api, "secret"),
}


class ConflictError(RuntimeError):
    """The object changed between read and write (HTTP 409) too many times in a row."""


def _decode(response: Any) -> Manifest:
    decoded: Manifest = json.loads(response.data)
    return decoded


def api_message(error: ApiException) -> str:
    """The API server's own explanation (its Status message), not the HTTP envelope."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


def new_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    if kubeconfig is None:
        try:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        except config.ConfigException:
            pass
    return config.new_client_from_config(config_file=kubeconfig)


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def _builtin(self, api_version: str, kind: str) -> tuple[Any, str]:
        factory, resource = _BUILTIN[(api_version, kind)]
        return factory(self.api_client), resource

    # ---------------------------------------------------------------- children
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        api, resource = self._builtin(api_version, kind)
        try:
            return _decode(
                getattr(api, f"read_namespaced_{resource}")(name, namespace, _preload_content=False)
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def service_body(self, namespace: str, name: str) -> Manifest | None:
        """A Service as a plain dict, or None when it does not exist or may not be read."""
        try:
            return self.get("v1", "Service", namespace, name)
        except ApiException:
            return None

    def apply(self, manifest: Manifest, dry_run: bool = False) -> Manifest:
        """Server-side apply as the operator's field manager, taking over fields someone
        else changed by hand (that is how drift is undone). `dry_run`: validated and
        admitted by the API server, but not stored."""
        api, resource = self._builtin(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        return _decode(
            getattr(api, f"patch_namespaced_{resource}")(
                meta["name"],
                meta["namespace"],
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                dry_run="All" if dry_run else None,
                _content_type=APPLY_PATCH,
                _preload_content=False,
            )
        )

    def secret(self, namespace: str, name: str) -> SecretLookup:
        return self.read_secret(namespace, name)[0]

    def read_secret(self, namespace: str, name: str) -> tuple[SecretLookup, Manifest | None]:
        """The lookup outcome, and the Secret itself (values base64, as stored) when it
        could be read."""
        try:
            secret = _decode(
                self.core.read_namespaced_secret(name, namespace, _preload_content=False)
            )
        except ApiException as error:
            if error.status == 404:
                return SecretLookup(missing=True), None
            if error.status in (401, 403):
                return SecretLookup(error=f"{error.status} {api_message(error)}"), None
            raise
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        return SecretLookup(keys=frozenset(keys)), secret

    # ------------------------------------------------------------ custom objects
    def get_custom(self, namespace: str, plural: str, name: str) -> Manifest | None:
        try:
            return _decode(
                self.custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, plural, name, _preload_content=False
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def update_status(
        self,
        namespace: str,
        plural: str,
        name: str,
        compute: Callable[[Manifest], Mapping[str, Any] | None],
        attempts: int = 5,
        current: Manifest | None = None,
    ) -> Manifest | None:
        """Read the object, let `compute` derive the new status from it, and write it
        with the read resourceVersion as precondition, retrying on conflicts.

        The status is shared with the autoscaler, so a blind write could undo its latest
        change; the precondition makes the second writer recompute instead. `compute`
        returns None when nothing needs writing. `current`, when the caller has just read
        the object, saves the first read. Returns the object as written (None if it no
        longer exists).
        """
        for _ in range(attempts):
            if current is None:
                current = self.get_custom(namespace, plural, name)
            if current is None:
                return None
            status = compute(current)
            if status is None:
                return current
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": status,
            }
            try:
                return _decode(
                    self.custom.patch_namespaced_custom_object_status(
                        API_GROUP,
                        API_VERSION,
                        namespace,
                        plural,
                        name,
                        patch,
                        _content_type=MERGE_PATCH,
                        _preload_content=False,
                    )
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                if error.status != 409:
                    raise
            current = None
        raise ConflictError(f"{plural}/{name} in {namespace} kept changing during {attempts} tries")

    def patch_custom(
        self, namespace: str, plural: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            name,
            dict(patch),
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )

    # ------------------------------------------------------------------ peering
    def ensure_peering(self, name: str, namespace: str | None) -> bool:
        """Create the kopf peering object replicas coordinate through; False if it was
        already there."""
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering" if namespace else "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        try:
            if namespace:
                self.custom.create_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", body, _preload_content=False
                )
            else:
                self.custom.create_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", body, _preload_content=False
                )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True
