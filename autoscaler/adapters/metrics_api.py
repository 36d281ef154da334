"""The ``external.metrics.k8s.io/v1beta1`` server the HorizontalPodAutoscaler reads our decisions from.

Paths (all ``GET``; everything else is 404/405 with a ``Status`` body):

- ``/apis/external.metrics.k8s.io/v1beta1`` - discovery (``APIResourceList``), what the aggregator polls.
- ``/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...`` - the values.
- ``/apis``, ``/apis/external.metrics.k8s.io`` - group discovery.
- ``/openapi/v3`` and ``/openapi/v3/apis/external.metrics.k8s.io/v1beta1`` - an OpenAPI 3.1 document.
- ``/healthz``, ``/readyz``, ``/livez`` - probes, unauthenticated.

Each InferenceAutoscaler on the :class:`~autoscaler.ports.DecisionBoard` offers one series per role, labelled
with its own labels plus ``inferenceautoscaler=<name>``, ``pool=<pool>`` and ``role=<role>`` (these synthetic
labels win over the resource's own labels of the same key), so an HPA per role selects exactly one series with
``matchLabels: {inferenceautoscaler: <name>, role: <role>}``. A selector that matches nothing is 404, a
matched series without a value (or a decision older than ``stale_after_s``) is 503: the HPA reports both as
``FailedGetExternalMetric`` and keeps the current replica count, instead of acting on an empty list.

TLS always (see :mod:`autoscaler.adapters.tls`); who may call is decided by
:mod:`autoscaler.adapters.apiserver_auth`. Request heads must arrive within ``header_timeout_s`` and are
bounded in size; the query string is bounded separately.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from autoscaler.adapters.apiserver_auth import (
    AuthenticationConfig,
    Authorizer,
    CertificateIdentity,
    RequestAttributes,
    TokenAuthenticator,
    UserInfo,
    identify_client_certificate,
)
from autoscaler.adapters.metric_catalog import METRICS, MetricDefinition, series_labels
from autoscaler.adapters.tls import ServingTLS
from autoscaler.api.external_metrics import (
    GROUP,
    GROUP_VERSION,
    VERSION,
    APIResource,
    APIResourceList,
    ExternalMetricValue,
    ExternalMetricValueList,
    Status,
    StatusDetails,
    rfc3339,
)
from autoscaler.api.quantity import format_quantity
from autoscaler.api.selector import Operator, Selector, SelectorError, parse_selector
from autoscaler.core.types import Role
from autoscaler.errors import AutoscalerError, TemporaryError
from autoscaler.log import get_logger
from autoscaler.ports import DecisionBoard, DecisionRecord

__all__ = [
    "METRICS",
    "MetricDefinition",
    "MetricsAPIServer",
    "SeriesResult",
    "build_app",
    "compute_series",
    "openapi_document",
    "series_labels",
]

log = get_logger(__name__)

BASE = f"/apis/{GROUP}/{VERSION}"
_NS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PROBES = frozenset({"/healthz", "/readyz", "/livez"})


# --- what is served: autoscaler.adapters.metric_catalog -------------------------------------------------

_ROLE_ORDER = {r: i for i, r in enumerate(Role)}


def _roles_of(rec: DecisionRecord) -> list[Role]:
    roles = set(rec.decision.desired) | set(rec.observation.roles)
    return sorted(roles, key=_ROLE_ORDER.__getitem__)


def _may_match(selector: Selector, rec: DecisionRecord) -> bool:
    """Cheap pre-filter on the synthetic ``inferenceautoscaler`` label (what every HPA selects on)."""
    for req in selector.requirements:
        if req.key == "inferenceautoscaler" and req.operator in (Operator.EQUALS, Operator.IN):
            return rec.name in req.values
    return True


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """Outcome of a metric read: either items (200) or an error ``Status``."""

    items: tuple[ExternalMetricValue, ...] = ()
    error: Status | None = None


def _status(code: int, reason: str, message: str, **details: Any) -> Status:
    return Status(
        code=code, reason=reason, message=message, details=StatusDetails(**details) if details else None
    )


def compute_series(
    records: Sequence[DecisionRecord],
    metric: MetricDefinition,
    namespace: str,
    selector: Selector,
    *,
    now: float,
    window_s: int,
    stale_after_s: float,
) -> SeriesResult:
    """The values of ``metric`` in ``namespace`` for series matching ``selector``, or why there are none.

    All-or-nothing: if any matching series has no value, or its decision is older than ``stale_after_s``
    seconds, the answer is a 503 ``Status`` naming it, because the HPA sums the items it gets and a partial
    sum would scale the workload down.
    """
    items: list[ExternalMetricValue] = []
    missing: list[str] = []
    for rec in records:
        if rec.namespace != namespace or not _may_match(selector, rec):
            continue
        for role in _roles_of(rec):
            labels = series_labels(rec, role)
            if not selector.matches(labels):
                continue
            age = now - rec.time
            value = metric.value(rec, role)
            if age > stale_after_s:
                missing.append(
                    f"{rec.name}/{role.value}: last decision {age:.0f}s old (limit {stale_after_s:.0f}s)"
                )
                continue
            if value is None or not math.isfinite(value):
                missing.append(f"{rec.name}/{role.value}: no value yet")
                continue
            items.append(
                ExternalMetricValue(
                    metric_name=metric.name,
                    metric_labels=labels,
                    timestamp=rfc3339(rec.time),
                    window_seconds=window_s,
                    value=format_quantity(value),
                )
            )
    if missing:
        return SeriesResult(
            error=_status(
                503,
                "ServiceUnavailable",
                f"metric {metric.name} in namespace {namespace} has no current value for "
                + "; ".join(missing[:5])
                + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""),
                name=metric.name,
                group=GROUP,
                kind="ExternalMetricValueList",
                retry_after_seconds=10,
            )
        )
    if not items:
        return SeriesResult(
            error=_status(
                404,
                "NotFound",
                f"no InferenceAutoscaler series in namespace {namespace} matches label selector "
                f"{str(selector)!r} for metric {metric.name} (series carry the resource's labels plus "
                "inferenceautoscaler, pool and role)",
                name=metric.name,
                group=GROUP,
                kind="ExternalMetricValueList",
            )
        )
    return SeriesResult(items=tuple(items))


# --- OpenAPI ----------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of the served paths, with the wire types' JSON schemas as components."""
    schemas: dict[str, Any] = {}
    for model in (APIResourceList, ExternalMetricValueList, Status):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema

    def ref(name: str) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    errors = {
        str(code): {"description": desc, **ref("Status")}
        for code, desc in (
            (400, "bad label selector or namespace"),
            (401, "not authenticated"),
            (403, "not authorized"),
            (404, "unknown metric, or no series matches"),
            (503, "matched series have no current value"),
        )
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "inference-autoscaler external metrics", "version": VERSION},
        "paths": {
            BASE: {
                "get": {
                    "operationId": "getAPIResources",
                    "responses": {
                        "200": {"description": "discovery", **ref("APIResourceList")},
                        "401": errors["401"],
                        "403": errors["403"],
                    },
                }
            },
            BASE + "/namespaces/{namespace}/{metric}": {
                "get": {
                    "operationId": "getExternalMetric",
                    "parameters": [
                        {
                            "name": "namespace",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": _NS_RE.pattern, "maxLength": 63},
                        },
                        {
                            "name": "metric",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": sorted(METRICS)},
                        },
                        {
                            "name": "labelSelector",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 4096},
                            "description": "Kubernetes label selector, equality- and set-based",
                        },
                    ],
                    "responses": {
                        "200": {"description": "values", **ref("ExternalMetricValueList")},
                        **errors,
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"operationId": "readyz", "responses": {"200": {"description": "ready"}}}},
        },
        "components": {"schemas": schemas},
    }


# --- HTTP -------------------------------------------------------------------------------------------------


def _json(model: APIResourceList | ExternalMetricValueList | Status, status: int = 200) -> web.Response:
    headers = {}
    if isinstance(model, Status) and model.details is not None and model.details.retry_after_seconds:
        headers["Retry-After"] = str(model.details.retry_after_seconds)
    return web.Response(
        status=status,
        text=model.model_dump_json(by_alias=True, exclude_none=True),
        content_type="application/json",
        headers=headers,
    )


def _error(code: int, reason: str, message: str, **details: Any) -> web.Response:
    return _json(_status(code, reason, message, **details), code)


@dataclass
class _Settings:
    board: DecisionBoard
    auth_config: AuthenticationConfig
    authorizer: Authorizer
    token_authenticator: TokenAuthenticator | None
    window_s: int
    stale_after_s: float
    max_query_bytes: int
    clock: Callable[[], float]


SETTINGS_KEY = web.AppKey("settings", _Settings)
GUARD_KEY = web.AppKey("guard", object)


def _identity_from_headers(request: web.Request, cfg: AuthenticationConfig) -> UserInfo | None:
    user = ""
    for header in cfg.requestheader_username_headers:
        user = request.headers.get(header, "").strip()
        if user:
            break
    if not user:
        return None
    groups: list[str] = []
    for header in cfg.requestheader_group_headers:
        groups.extend(v.strip() for v in request.headers.getall(header, []) if v.strip())
    extra: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        for prefix in cfg.requestheader_extra_headers_prefix:
            if name.lower().startswith(prefix.lower()) and len(name) > len(prefix):
                extra.setdefault(name[len(prefix) :].lower(), []).append(value)
    return UserInfo(user, tuple(groups), extra={k: tuple(v) for k, v in extra.items()}, via="front-proxy")


_IDENTITY_CACHE: dict[tuple[int, bytes], CertificateIdentity | None] = {}


def _identify_cached(der: bytes, config: AuthenticationConfig) -> CertificateIdentity | None:
    """Certificate classification, cached per (config, certificate): a signature check costs ~0.1 ms and the
    aggregator presents the same certificate on every request. Keyed by the config's identity, so a rotated
    CA bundle re-checks everything."""
    key = (id(config), der)
    try:
        return _IDENTITY_CACHE[key]
    except KeyError:
        pass
    if len(_IDENTITY_CACHE) >= 1024:
        _IDENTITY_CACHE.clear()
    ident = _IDENTITY_CACHE[key] = identify_client_certificate(der, config)
    return ident


async def _authenticate(request: web.Request, s: _Settings) -> tuple[UserInfo | None, str]:
    """``(user, why not)``: front proxy, then x509, then bearer token (the order k8s.io/apiserver uses)."""
    why = "no client certificate or bearer token"
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der:
        ident = _identify_cached(der, s.auth_config)
        if ident is None:
            why = "client certificate is not issued by a trusted client CA"
        elif ident.kind == "front-proxy":
            allowed = s.auth_config.requestheader_allowed_names
            if allowed and ident.common_name not in allowed:
                why = f"front-proxy certificate common name {ident.common_name!r} is not an allowed name"
            else:
                user = _identity_from_headers(request, s.auth_config)
                if user is not None:
                    return user, ""
                why = "front-proxy request without a user header"
        else:
            return UserInfo(ident.common_name, ident.organizations, via="x509"), ""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        if s.token_authenticator is None:
            return None, "bearer tokens are not accepted (no TokenReview configured)"
        if token:
            user = await s.token_authenticator.authenticate_token(token)
            if user is not None:
                return user, ""
        why = "bearer token rejected by TokenReview"
    return None, why


def _attributes(request: web.Request) -> RequestAttributes:
    parts = request.path.split("/")
    # ['', 'apis', group, version, 'namespaces', ns, metric]
    if len(parts) == 7 and request.path.startswith(BASE + "/namespaces/"):
        return RequestAttributes(
            verb="get", path=request.path, group=GROUP, version=VERSION, resource=parts[6], namespace=parts[5]
        )
    return RequestAttributes(verb="get", path=request.path)


@web.middleware
async def _auth_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    guard = request.app.get(GUARD_KEY)
    if isinstance(guard, _ConnectionGuard):
        guard.request_started(request.transport)
    try:
        s = request.app[SETTINGS_KEY]
        if len(request.query_string.encode("utf-8", "surrogateescape")) > s.max_query_bytes:
            return _error(414, "RequestURITooLong", f"query string longer than {s.max_query_bytes} bytes")
        if request.path in _PROBES:
            return await handler(request)  # type: ignore[no-any-return]
        try:
            user, why = await _authenticate(request, s)
            if user is None:
                return _error(401, "Unauthorized", f"Unauthorized: {why}")
            attrs = _attributes(request)
            allowed, reason = await s.authorizer.authorize(user, attrs)
        except TemporaryError as exc:
            log.warning("authentication/authorization backend unavailable", error=str(exc))
            return _error(
                503,
                "ServiceUnavailable",
                "authentication or authorization backend unavailable",
                retry_after_seconds=max(1, int(exc.delay)),
            )
        except AutoscalerError as exc:
            log.warning("authentication/authorization failed", error=str(exc))
            return _error(
                503, "ServiceUnavailable", "authentication or authorization backend refused the review"
            )
        if not allowed:
            what = (
                f"get resource {attrs.resource!r} in API group {GROUP!r} in the namespace {attrs.namespace!r}"
                if attrs.is_resource
                else f"get path {attrs.path!r}"
            )
            return _error(
                403, "Forbidden", f"user {user.name!r} cannot {what}" + (f": {reason}" if reason else "")
            )
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        if isinstance(guard, _ConnectionGuard):
            guard.request_finished(request.transport)


async def _dispatch(request: web.Request) -> web.Response:
    s = request.app[SETTINGS_KEY]
    if request.method not in ("GET", "HEAD"):
        return _error(
            405, "MethodNotAllowed", f"method {request.method} is not supported; only GET is served"
        )
    path = request.path.rstrip("/") or "/"
    if path in _PROBES:
        return web.Response(text="ok")
    if path == BASE:
        return _json(APIResourceList(resources=[APIResource(name=n) for n in sorted(METRICS)]))
    if path == "/apis":
        return web.json_response(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_api_group()],
            }
        )
    if path == f"/apis/{GROUP}":
        return web.json_response(_api_group())
    if path in ("/openapi/v3", "/openapi/v3/"):
        return web.json_response(
            {"paths": {f"apis/{GROUP}/{VERSION}": {"serverRelativeURL": f"/openapi/v3{BASE}"}}}
        )
    if path == f"/openapi/v3{BASE}":
        return web.json_response(openapi_document())
    if path.startswith(BASE + "/namespaces/"):
        rest = path[len(BASE + "/namespaces/") :].split("/")
        if len(rest) == 2:
            return _metric(request, s, rest[0], rest[1])
    return _error(404, "NotFound", f"the server could not find the requested resource {path[:200]!r}")


def _api_group() -> dict[str, Any]:
    gv = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv}


def _metric(request: web.Request, s: _Settings, namespace: str, metric_name: str) -> web.Response:
    if len(namespace) > 63 or not _NS_RE.match(namespace):
        return _error(
            400,
            "BadRequest",
            f"namespace {namespace[:80]!r} is not a valid namespace name "
            "(DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters)",
        )
    metric = METRICS.get(metric_name)
    if metric is None:
        return _error(
            404,
            "NotFound",
            f"unknown external metric {metric_name[:100]!r}; served metrics: " + ", ".join(sorted(METRICS)),
            name=metric_name[:100],
            group=GROUP,
            kind="ExternalMetricValueList",
        )
    raw = request.query.getone("labelSelector", "") if "labelSelector" in request.query else ""
    try:
        selector = parse_selector(raw)
    except SelectorError as exc:
        return _error(400, "BadRequest", f"invalid labelSelector: {exc}")
    result = compute_series(
        s.board.records(namespace),
        metric,
        namespace,
        selector,
        now=s.clock(),
        window_s=s.window_s,
        stale_after_s=s.stale_after_s,
    )
    if result.error is not None:
        return _json(result.error, result.error.code)
    return _json(ExternalMetricValueList(items=list(result.items)))


def build_app(
    board: DecisionBoard,
    *,
    auth_config: AuthenticationConfig,
    authorizer: Authorizer,
    token_authenticator: TokenAuthenticator | None = None,
    window_s: int = 60,
    stale_after_s: float = 600.0,
    max_query_bytes: int = 4096,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp application (no listener). See :class:`MetricsAPIServer` for the parameters."""
    app = web.Application(middlewares=[_auth_middleware], client_max_size=64 * 1024)
    app[SETTINGS_KEY] = _Settings(
        board=board,
        auth_config=auth_config,
        authorizer=authorizer,
        token_authenticator=token_authenticator,
        window_s=window_s,
        stale_after_s=stale_after_s,
        max_query_bytes=max_query_bytes,
        clock=clock,
    )
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


# --- slow-client protection -------------------------------------------------------------------------------


class _ConnectionGuard:
    """Closes connections whose request head does not arrive in time, and caps open connections.

    aiohttp has no timeout for reading a request head, so a client that trickles bytes (slowloris) would
    hold a connection forever. Each connection gets a deadline when bytes of a new request arrive; the
    middleware clears it when the head is complete. Idle keep-alive connections are aiohttp's own
    ``keepalive_timeout``.
    """

    def __init__(self, header_timeout_s: float, max_connections: int) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self._timers: dict[int, asyncio.TimerHandle | None] = {}
        self._busy: set[int] = set()
        self._pending: set[int] = set()

    @property
    def open_connections(self) -> int:
        """Connections currently open."""
        return len(self._timers)

    def opened(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._timers) >= self.max_connections:
            return False
        self._timers[id(transport)] = None
        self.arm(transport)  # the first request head must arrive in time too
        return True

    def arm(self, transport: asyncio.BaseTransport) -> None:
        key = id(transport)
        if key not in self._timers or self._timers[key] is not None or key in self._busy:
            if key in self._busy:
                self._pending.add(key)
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self.header_timeout_s, self._expire, transport)

    def _disarm(self, key: int) -> None:
        timer = self._timers.get(key)
        if timer is not None:
            timer.cancel()
            self._timers[key] = None

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        key = id(transport)
        if key in self._timers and key not in self._busy:
            log.info("closing a connection whose request head did not arrive in time", limit_s=self.header_timeout_s)
            transport.close()

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is None:
            return
        key = id(transport)
        self._disarm(key)
        self._busy.add(key)

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is None:
            return
        key = id(transport)
        self._busy.discard(key)
        if key in self._pending:
            self._pending.discard(key)
            self.arm(transport)

    def closed(self, transport: asyncio.BaseTransport) -> None:
        key = id(transport)
        self._disarm(key)
        self._timers.pop(key, None)
        self._busy.discard(key)
        self._pending.discard(key)


class _GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's request handler and tells the guard about connection events."""

    def __init__(self, inner: asyncio.Protocol, guard: _ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.opened(transport):
            transport.close()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        self._guard.arm(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()


class MetricsAPIServer:
    """The external metrics API over TLS, started and stopped with the controller.

    Args:
        board: where decisions are read from.
        tls: serving TLS; its client CAs must be ``auth_config.tls_client_ca_pem`` (use :meth:`create`).
        auth_config: client-certificate authentication inputs (see :class:`AuthenticationConfig`).
        authorizer: who may read; :class:`~autoscaler.adapters.apiserver_auth.KubeDelegatedAuth` in a cluster.
        token_authenticator: TokenReview for bearer tokens, or ``None`` to refuse them.
        host, port: where to listen; port 0 picks a free one (see :attr:`port`).
        window_s: ``windowSeconds`` reported with each value (the controller's rate window), seconds.
        stale_after_s: decisions older than this are not served (503), seconds. 10 min: ten missed
            reconciles at the default interval, long enough to ride out a leader change.
        header_timeout_s: a request head must arrive within this, seconds (slowloris bound).
        keepalive_timeout_s: idle keep-alive connections are closed after this, seconds.
        handshake_timeout_s: TLS handshakes must finish within this, seconds.
        max_connections: more simultaneous connections are closed at once.
        max_query_bytes: longer query strings get 414.
    """

    def __init__(
        self,
        board: DecisionBoard,
        tls: ServingTLS,
        *,
        auth_config: AuthenticationConfig,
        authorizer: Authorizer,
        token_authenticator: TokenAuthenticator | None = None,
        host: str = "0.0.0.0",
        port: int = 6443,
        window_s: int = 60,
        stale_after_s: float = 600.0,
        header_timeout_s: float = 10.0,
        keepalive_timeout_s: float = 60.0,
        handshake_timeout_s: float = 10.0,
        max_connections: int = 1024,
        max_query_bytes: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tls = tls
        self.auth_config = auth_config
        self._host = host
        self._port = port
        self._handshake_timeout_s = handshake_timeout_s
        self._keepalive_timeout_s = keepalive_timeout_s
        self.guard = _ConnectionGuard(header_timeout_s, max_connections)
        self.app = build_app(
            board,
            auth_config=auth_config,
            authorizer=authorizer,
            token_authenticator=token_authenticator,
            window_s=window_s,
            stale_after_s=stale_after_s,
            max_query_bytes=max_query_bytes,
            clock=clock,
        )
        self.app[GUARD_KEY] = self.guard
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = port

    @classmethod
    def create(
        cls,
        board: DecisionBoard,
        *,
        cert_file: str | None,
        key_file: str | None,
        auth_config: AuthenticationConfig,
        authorizer: Authorizer,
        self_signed_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
        **kwargs: Any,
    ) -> MetricsAPIServer:
        """Build TLS from files (or a self-signed pair) with the right client CAs, then the server."""
        tls = ServingTLS(
            cert_file,
            key_file,
            client_ca_pem=auth_config.tls_client_ca_pem,
            self_signed_hosts=self_signed_hosts,
        )
        return cls(board, tls, auth_config=auth_config, authorizer=authorizer, **kwargs)

    def update_auth_config(self, config: AuthenticationConfig) -> None:
        """Apply a changed ``extension-apiserver-authentication`` ConfigMap to new connections."""
        self.tls.set_client_cas(config.tls_client_ca_pem)
        self.auth_config = config
        self.app[SETTINGS_KEY].auth_config = config

    async def start(self) -> None:
        """Listen; :attr:`port` holds the bound port afterwards."""
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            keepalive_timeout=self._keepalive_timeout_s,
            max_line_size=8190,
            max_field_size=8190,
            max_headers=64,
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        guard = self.guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _GuardedProtocol(server(), guard),
            self._host,
            self._port,
            ssl=self.tls.listening_context,
            ssl_handshake_timeout=self._handshake_timeout_s,
            backlog=512,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("external metrics API listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop listening, close connections and wait for them; idempotent."""
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.tls.close()

    async def __aenter__(self) -> MetricsAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
