"""kopf's own HTTP session, with a bound on its connections.

kopf talks to the API server through one aiohttp session whose connector has no limit. At
start-up with a thousand new WorkerPools, kopf adds its finalizer and its diff-base
annotation to every one at once: a thousand concurrent PATCHes, each on a new TLS
connection, and asyncio gives every TLS connection a 256 KiB buffer. memray put 263 MB of
the operator's 538 MB peak there (benchmarks/operator_scale.py).

The connector here allows the watch streams kopf keeps open (each holds a connection for
as long as it runs) plus REQUEST_CONNECTIONS for requests, which then queue for a free
connection instead of opening more. With namespace globs the number of watch streams is
not known in advance (a stream per matching namespace), so the session stays unbounded.
"""

from __future__ import annotations

import warnings

import aiohttp
import kopf

from agentfleet.operator.config import OperatorConfig

REQUEST_CONNECTIONS = 64
"""Connections for kopf's requests (patches, listings), beyond those its watches hold."""
STREAMS_PER_NAMESPACE = 4
"""Watch streams kopf runs per served namespace: WorkerPools, Projects, Deployments and
the peering object."""
CLUSTER_STREAMS = 4
"""Cluster-wide watch streams: CRDs, namespaces, cluster peering, and one spare."""


def connection_limit(config: OperatorConfig) -> int | None:
    """kopf's connection bound for this scope; None (unbounded) with namespace globs."""
    if config.has_glob_namespaces:
        return None
    scopes = 1 if config.all_namespaces else len(config.namespaces)
    return REQUEST_CONNECTIONS + STREAMS_PER_NAMESPACE * scopes + CLUSTER_STREAMS


def bounded_session(info: kopf.ConnectionInfo, limit: int | None) -> kopf.AiohttpSession:
    """The session kopf would build from `info` (TLS, headers, proxy), with `limit`
    connections at most. Call from a coroutine: aiohttp binds it to the running loop."""
    with warnings.catch_warnings():
        # kopf's own deprecation of basic auth, which it silences the same way.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="kopf")
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit or 0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )
