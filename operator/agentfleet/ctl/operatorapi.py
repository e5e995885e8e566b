"""The CLI's client of the operator's read API (`agentfleet.core.fleetapi`), with nothing
but the kubeconfig: through the API server's service proxy
(`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/v1/...`, RBAC verb `get` on
`services/proxy` to read, `create` to send an action), or straight to a URL a
`kubectl port-forward` opened (`--operator-url`).

Every failure is one line (`CliError`): the operator's Service missing or without a
running operator behind it, a missing RBAC verb, or the operator's own refusal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from agentfleet.core.fleetapi import IDENTITY_HEADER
from agentfleet.ctl.kube import CliError, Target

DEFAULT_SERVICE = "agentfleet-system/agentfleet-api:api"
"""Where the chart's read API Service is with the release `agentfleet` in
`agentfleet-system` (`--operator-service`, `AGENTFLEET_OPERATOR_SERVICE`)."""
TIMEOUT_SECONDS = 30.0

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class ServiceRef:
    namespace: str
    name: str
    port: str

    @classmethod
    def parse(cls, value: str) -> ServiceRef:
        """`[namespace/]name[:port]`; the namespace defaults to agentfleet-system and the
        port to `api`."""
        namespace, _, rest = value.rpartition("/")
        name, _, port = rest.partition(":")
        if not name or any(c in value for c in " ?#"):
            raise CliError(
                f"--operator-service {value!r}: expected [namespace/]name[:port], e.g. "
                f"{DEFAULT_SERVICE}"
            )
        return cls(namespace or "agentfleet-system", name, port or "api")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


@dataclass(frozen=True)
class OperatorApi:
    target: Target
    service: ServiceRef
    url: str | None = None
    """A port-forward's URL: requests go there directly instead of through the proxy."""

    @classmethod
    def connect(cls, target: Target, service: str | None, url: str | None) -> OperatorApi:
        return cls(target, ServiceRef.parse(service or DEFAULT_SERVICE), url or None)

    @property
    def where(self) -> str:
        if self.url:
            return f"the operator's read API at {self.url}"
        return f"the operator's read API (service {self.service})"

    def get(self, path: str, model: type[ModelT], **query: str) -> ModelT:
        return self._call("GET", path, model, query, None, {})

    def post(self, path: str, model: type[ModelT], body: BaseModel) -> ModelT:
        """An action: the caller's bearer token goes along for the operator to check."""
        token = self.bearer_token()
        if token is None:
            raise CliError(
                "this action is authorised by the operator from your identity, which needs "
                "a kubeconfig user with a bearer token (OIDC, a cloud exec plugin, a "
                "ServiceAccount token); a client certificate proves who you are to the API "
                "server only"
            )
        payload = body.model_dump(mode="json", by_alias=True)
        return self._call("POST", path, model, {}, payload, {IDENTITY_HEADER: token})

    def bearer_token(self) -> str | None:
        configuration = self.target.api.configuration
        value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if not value:
            return None
        return str(value).removeprefix("Bearer ").strip() or None

    def _call(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        query: dict[str, str],
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> ModelT:
        status, data = (
            self._direct(method, path, query, body, headers)
            if self.url
            else self._proxied(method, path, query, body, headers)
        )
        if status >= 400:
            raise CliError(self._failure(method, status, data))
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise CliError(
                f"{self.where} answered {path} with something else than expected (a different "
                f"agentfleet version?): {exc.errors()[0]['msg']}"
            ) from None

    def _proxied(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        svc = self.service
        resource = (
            f"/api/v1/namespaces/{quote(svc.namespace)}/services/"
            f"{quote(svc.name)}:{quote(svc.port)}/proxy{path}"
        )
        api = self.target.api
        content = {"Content-Type": "application/json"} if body is not None else {}
        try:
            request = api.param_serialize(
                method=method,
                resource_path=resource,
                query_params=list(query.items()),
                header_params={"Accept": "application/json", **content, **headers},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(*request, _request_timeout=TIMEOUT_SECONDS)
            data = response.read()
        except ApiException as exc:
            if not exc.status:
                raise CliError(f"cannot reach the API server: {exc.reason}") from None
            raw = exc.body or b""
            return int(exc.status), raw if isinstance(raw, bytes) else str(raw).encode()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CliError(f"cannot reach the API server: {exc}") from None
        return int(response.status), bytes(data or b"")

    def _direct(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[int, bytes]:
        url = f"{(self.url or '').rstrip('/')}{path}"
        if query:
            url += "?" + urlencode(query)
        try:
            response = httpx.request(
                method, url, json=body, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise CliError(f"{self.where} is unreachable: {exc}") from None
        return response.status_code, response.content

    def _failure(self, method: str, status: int, data: bytes) -> str:
        """One line for an error answer: the operator's own (`{"error": ...}`) or the API
        server's (a Status: the Service is missing, nothing runs behind it, RBAC)."""
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if "error" in body and body.get("kind") != "Status":
            return "operator: " + " ".join(str(body["error"]).split())
        raw = body.get("message") or body.get("detail") or data[:200].decode(errors="replace")
        message = " ".join(str(raw).split())
        verb = "create" if method == "POST" else "get"
        if status == 403:
            return (
                f"forbidden: cannot {verb} services/proxy {self.service.name!r} in namespace "
                f"{self.service.namespace!r} (the operator's read API): {message}"
            )
        if status == 401:
            return f"unauthorized: the kubeconfig's credentials were refused ({message})"
        if status == 404 and body.get("kind") == "Status":
            return (
                f"{self.where} is not installed: {message} (give --operator-service "
                "NAMESPACE/NAME:PORT or set AGENTFLEET_OPERATOR_SERVICE)"
            )
        if status in (502, 503) or "no endpoints" in message:
            return (
                f"{self.where} is unreachable: {message} (is the operator running with "
                "--api-port, chart value operator.apiPort?)"
            )
        return f"{self.where} answered {status}: {message}"
