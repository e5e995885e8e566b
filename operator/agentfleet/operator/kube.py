"""The thin Kubernetes adapter of the operator process: one asyncio client (lightkube)
for the reconciler, the autoscaler and intake.

Objects go in and come out as plain dicts in their wire form: every kind is a lightkube
*generic* resource, a `dict` subclass, so nothing is decoded into model classes (the
builders in `children` produce dicts, and the pure core reads dicts).

Writes: children by server-side apply as `FIELD_MANAGER`; status by server-side apply
of the status subresource, one field manager per writer (`RECONCILER`, `AUTOSCALER`,
`INTAKE`), each owning its own status fields (docs/operator.md, "Who writes what"), so
writers never overwrite each other and need no read-modify-write retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_global_resource,
    create_namespaced_resource,
)
from lightkube.types import PatchType

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.operator.children import FIELD_MANAGER, Manifest
from agentfleet.operator.logic import SecretLookup

RECONCILER = "agentfleet-reconciler"
AUTOSCALER = "agentfleet-autoscaler"
INTAKE = "agentfleet-intake"
"""The status field managers, one per writer (children are applied as FIELD_MANAGER)."""

NOT_FOUND = 404

KubeError = ApiError
"""What the API server answered with an error status (`.status.code`, `.status.message`)."""
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx2.TransportError, OSError)
"""No answer at all: connection refused or reset, timeouts."""


def _namespaced(
    group: str, version: str, kind: str, plural: str
) -> type[GenericNamespacedResource]:
    return create_namespaced_resource(group, version, kind, plural)


# Every kind the operator reads or writes, keyed by (apiVersion, kind).
_KINDS: dict[tuple[str, str], type[GenericNamespacedResource]] = {
    ("v1", "ServiceAccount"): _namespaced("", "v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "Service"): _namespaced("", "v1", "Service", "services"),
    ("v1", "Secret"): _namespaced("", "v1", "Secret", "secrets"),
    ("v1", "Pod"): _namespaced("", "v1", "Pod", "pods"),
    ("v1", "Event"): _namespaced("", "v1", "Event", "events"),
    ("policy/v1", "PodDisruptionBudget"): _namespaced(
        "policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"
    ),
    ("apps/v1", "Deployment"): _namespaced("apps", "v1", "Deployment", "deployments"),
    ("networking.k8s.io/v1", "NetworkPolicy"): _namespaced(
        "networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"
    ),
    ("kopf.dev/v1", "KopfPeering"): _namespaced("kopf.dev", "v1", "KopfPeering", "kopfpeerings"),
}
_CUSTOM_KINDS = {"workerpools": "WorkerPool", "projects": "Project"}
_CUSTOM: dict[str, type[GenericNamespacedResource]] = {
    plural: _namespaced(API_GROUP, API_VERSION, kind, plural)
    for plural, kind in _CUSTOM_KINDS.items()
}
_CLUSTER_PEERING: type[GenericGlobalResource] = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)
_TOKEN_REVIEW: type[GenericGlobalResource] = create_global_resource(
    "authentication.k8s.io", "v1", "TokenReview", "tokenreviews"
)
_ACCESS_REVIEW: type[GenericGlobalResource] = create_global_resource(
    "authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews"
)


def api_message(error: ApiError) -> str:
    """The API server's own explanation (its Status message), not the HTTP envelope."""
    return str(error.status.message or error.status.reason or error)


def status_code(error: ApiError) -> int:
    return int(error.status.code or 0)


def _plain(obj: Any) -> Manifest:
    return cast(Manifest, dict(obj))


def load_config(kubeconfig: str | None) -> KubeConfig:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    if kubeconfig is not None:
        return KubeConfig.from_file(kubeconfig)
    return KubeConfig.from_env()


class Kube:
    """The operator's one API client, shared by every handler and extension."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls, kubeconfig: str | None, request_timeout: float, connect_timeout: float
    ) -> Kube:
        timeout = httpx2.Timeout(request_timeout, connect=connect_timeout)
        # HTTP/2, as client-go speaks it: every request multiplexed over one connection.
        # Over HTTP/1.1 a start-up burst (a thousand pools reconciled at once) opened and
        # closed connections beyond the keep-alive pool, a TLS handshake each.
        return cls(AsyncClient(load_config(kubeconfig), timeout=timeout, http2=True))

    async def close(self) -> None:
        await self.client.close()

    # ---------------------------------------------------------------- children
    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        try:
            found = await self.client.get(_KINDS[(api_version, kind)], name, namespace=namespace)
        except ApiError as error:
            if status_code(error) == NOT_FOUND:
                return None
            raise
        return _plain(found)

    async def service_body(self, namespace: str, name: str) -> Manifest | None:
        """A Service as a plain dict, or None when it does not exist or may not be read."""
        try:
            return await self.get("v1", "Service", namespace, name)
        except ApiError:
            return None

    async def apply(self, manifest: Manifest, dry_run: bool = False) -> Manifest:
        """Server-side apply as the operator's field manager, taking over fields someone
        else changed by hand (that is how drift is undone). `dry_run`: validated and
        admitted by the API server, but not stored."""
        meta = manifest["metadata"]
        applied = await self.client.patch(
            _KINDS[(manifest["apiVersion"], manifest["kind"])],
            meta["name"],
            dict(manifest),
            namespace=meta["namespace"],
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
            dry_run=dry_run,
        )
        return _plain(applied)

    async def secret(self, namespace: str, name: str) -> SecretLookup:
        return (await self.read_secret(namespace, name))[0]

    async def read_secret(self, namespace: str, name: str) -> tuple[SecretLookup, Manifest | None]:
        """The lookup outcome, and the Secret itself (values base64, as stored) when it
        could be read."""
        try:
            secret = await self.get("v1", "Secret", namespace, name)
        except ApiError as error:
            if status_code(error) in (401, 403):
                return SecretLookup(error=f"{status_code(error)} {api_message(error)}"), None
            raise
        if secret is None:
            return SecretLookup(missing=True), None
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        return SecretLookup(keys=frozenset(keys)), secret

    # ------------------------------------------------------------ custom objects
    async def get_custom(self, namespace: str, plural: str, name: str) -> Manifest | None:
        try:
            found = await self.client.get(_CUSTOM[plural], name, namespace=namespace)
        except ApiError as error:
            if status_code(error) == NOT_FOUND:
                return None
            raise
        return _plain(found)

    async def apply_status(
        self,
        namespace: str,
        plural: str,
        name: str,
        status: Mapping[str, Any],
        manager: str,
    ) -> Manifest | None:
        """Server-side apply of the fields of `status` that `manager` owns: exactly those
        it sends (a field it sent before and leaves out now is removed). No precondition
        and no retry: no other writer owns these fields. None when the object is gone."""
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": _CUSTOM_KINDS[plural],
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        try:
            written = await self.client.patch(
                _CUSTOM[plural].Status,
                name,
                body,
                namespace=namespace,
                patch_type=PatchType.APPLY,
                field_manager=manager,
                force=True,
            )
        except ApiError as error:
            if status_code(error) == NOT_FOUND:
                return None
            raise
        return _plain(written)

    async def patch_custom(
        self, namespace: str, plural: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        await self.client.patch(
            _CUSTOM[plural], name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
        )

    async def scale(self, namespace: str, plural: str, name: str, replicas: int) -> str:
        """Set spec.replicas through the scale subresource (what `kubectl scale` writes);
        the object's new resourceVersion."""
        scaled = await self.client.patch(
            _CUSTOM[plural].Scale,
            name,
            {"spec": {"replicas": replicas}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        version = scaled.metadata.resourceVersion if scaled.metadata else None
        return str(version or "")

    # -------------------------------------------------------------------- pods
    async def pod_annotations(
        self, namespace: str, selector: Mapping[str, str], key: str
    ) -> dict[str, str | None]:
        """Live Pods matching `selector` (not being deleted) -> their annotation `key`."""
        found: dict[str, str | None] = {}
        labels: dict[str, Any] = dict(selector)
        pods = self.client.list(_KINDS[("v1", "Pod")], namespace=namespace, labels=labels)
        async for pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") is None:
                found[meta["name"]] = (meta.get("annotations") or {}).get(key)
        return found

    async def annotate_pod(self, namespace: str, pod: str, key: str, value: str) -> bool:
        """False when the Pod is gone."""
        try:
            await self.client.patch(
                _KINDS[("v1", "Pod")],
                pod,
                {"metadata": {"annotations": {key: value}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as error:
            if status_code(error) == NOT_FOUND:
                return False
            raise
        return True

    # ------------------------------------------------------------------ events
    async def create_event(self, namespace: str, body: Manifest) -> None:
        event = _KINDS[("v1", "Event")].from_dict({**body, "metadata": {**body["metadata"]}})
        event["metadata"]["namespace"] = namespace
        await self.client.create(event)

    # ------------------------------------------------- who calls the read API
    async def review_token(self, token: str) -> Manifest:
        """The API server's TokenReview of a caller's bearer token: its `status`
        (`authenticated`, `user` with username, uid, groups and extra, or `error`)."""
        review = _TOKEN_REVIEW.from_dict(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "metadata": {},
                "spec": {"token": token},
            }
        )
        created = await self.client.create(review)
        return cast(Manifest, dict(created.get("status") or {}))

    async def review_access(self, user: Mapping[str, Any], attributes: Manifest) -> Manifest:
        """The API server's SubjectAccessReview: may `user` (a TokenReview's user) do
        what `attributes` (resourceAttributes) say? Its `status` (`allowed`, `reason`)."""
        spec: dict[str, Any] = {
            "user": user.get("username", ""),
            "groups": list(user.get("groups") or []),
            "resourceAttributes": dict(attributes),
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = dict(user["extra"])
        review = _ACCESS_REVIEW.from_dict(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "metadata": {},
                "spec": spec,
            }
        )
        created = await self.client.create(review)
        return cast(Manifest, dict(created.get("status") or {}))

    # ------------------------------------------------------------------ peering
    async def ensure_peering(self, name: str, namespace: str | None) -> bool:
        """Create the kopf peering object replicas coordinate through; False if it was
        already there."""
        try:
            if namespace:
                peering = _KINDS[("kopf.dev/v1", "KopfPeering")].from_dict(
                    {
                        "apiVersion": "kopf.dev/v1",
                        "kind": "KopfPeering",
                        "metadata": {"name": name, "namespace": namespace},
                    }
                )
                await self.client.create(peering)
            else:
                cluster_peering = _CLUSTER_PEERING.from_dict(
                    {
                        "apiVersion": "kopf.dev/v1",
                        "kind": "ClusterKopfPeering",
                        "metadata": {"name": name},
                    }
                )
                await self.client.create(cluster_peering)
        except ApiError as error:
            if status_code(error) == 409:
                return False
            raise
        return True
