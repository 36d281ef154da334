"""Kubernetes API access behind the ports, over kubernetes_asyncio's authenticated HTTP client.

Layout, borrowed from lightkube: every request is built as plain data (:class:`Request`) by a pure function
in this module, and :class:`KubeTransport` only sends requests and maps failures to the project's error tree:

==========================================  =============================================================
what the API server / network did           what callers see
==========================================  =============================================================
409 Conflict                                :class:`ConflictError` (a ``TemporaryError``; re-read, retry)
404 Not Found                               :class:`NotFoundError` (a ``PermanentError`` about one object)
410 Gone (watch / list continue)            :class:`GoneError` (re-list)
429, 5xx, timeouts, connection failures     ``TemporaryError(delay)`` with exponential backoff + jitter
other 4xx (400, 403, 415, 422, ...)         ``PermanentError`` naming the request and the server's message
==========================================  =============================================================

On top of the transport:

- :class:`Informer` — list + watch of one resource type into an in-memory cache (resume from the last
  resourceVersion; re-list on 410; bookmarks honoured), so a tick over thousands of autoscalers reads
  workloads and pods from memory instead of issuing requests.
- :class:`KubeFleet` — :class:`~autoscaler.ports.ScaleClient` and :class:`~autoscaler.ports.FleetReader`
  over the caches, plus InferencePool (v1 and v1alpha2) reading and role-target resolution.
- :class:`StatusWriter` — merge patch of the ``status`` subresource, only when it changed.
- :class:`EventRecorder` — ``events.k8s.io/v1`` Events, aggregated into a series like client-go's recorder.
- :class:`LeaseLock` — the ``coordination.k8s.io/v1`` Lease protocol with optimistic concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.adapters.ownwrites import PendingScales
from autoscaler.adapters.ownwrites import resource_version as _rv
from autoscaler.api.times import parse_rfc3339, rfc3339, rfc3339_micro
from autoscaler.core.types import Role
from autoscaler.errors import (
    ConflictError,
    GoneError,
    NotFoundError,
    PermanentError,
    ResolutionError,
    TemporaryError,
)
from autoscaler.ports import LeaseRecord, RoleTarget, ScaleState
from autoscaler.retry import Backoff, RetryCallState, equal_jitter, retrying, stop_after_attempt

__all__ = ["MERGE_PATCH", "Backoff", "ConflictError", "GoneError", "Informer",
    "KubeFleet", "KubeTransport", "LeaseLock", "LeaseRecord", "NotFoundError", "Request",
    "ResolutionError", "ResourceType", "StatusWriter", "collection_path", "label_selector_string",
    "matches_selector", "merge_patch_diff", "new_api_client", "object_path", "parse_rfc3339", "rfc3339",
    "rfc3339_micro"]

log = structlog.get_logger("autoscaler.kube")

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"


# ------------------------------------------------------------------------------------------------ errors


# ConflictError, NotFoundError, GoneError and ResolutionError are part of the project's error tree
# (autoscaler.errors): the controller handles them through the ports without importing this module.


# --------------------------------------------------------------------------------------- request building


@dataclass(frozen=True, slots=True)
class ResourceType:
    """An API resource: ``apiVersion`` (``v1``, ``apps/v1``) and plural name (``deployments``)."""

    api_version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """API group; empty for the core group."""
        return self.api_version.rpartition("/")[0]


PODS = ResourceType("v1", "pods", "Pod")
DEPLOYMENTS = ResourceType("apps/v1", "deployments", "Deployment")
STATEFULSETS = ResourceType("apps/v1", "statefulsets", "StatefulSet")
LEADERWORKERSETS = ResourceType("leaderworkerset.x-k8s.io/v1", "leaderworkersets", "LeaderWorkerSet")
POOLS_V1 = ResourceType("inference.networking.k8s.io/v1", "inferencepools", "InferencePool")
POOLS_V1ALPHA2 = ResourceType("inference.networking.x-k8s.io/v1alpha2", "inferencepools", "InferencePool")
LEASES = ResourceType("coordination.k8s.io/v1", "leases", "Lease")
EVENTS = ResourceType("events.k8s.io/v1", "events", "Event")
WORKLOADS = (DEPLOYMENTS, STATEFULSETS, LEADERWORKERSETS)
_KNOWN_KINDS = {
    (t.api_version, t.kind): t for t in (*WORKLOADS, PODS, POOLS_V1, POOLS_V1ALPHA2, LEASES, EVENTS)
}
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the API server, as plain data (no client involved)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    content_type: str = JSON

    def describe(self) -> str:
        """``METHOD path`` for error messages."""
        return f"{self.method} {self.path}"


def _prefix(api_version: str) -> str:
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def collection_path(rtype: ResourceType, namespace: str | None) -> str:
    """``/apis/apps/v1/namespaces/ns/deployments`` (or the cluster-wide path when ``namespace`` is None)."""
    if namespace is None or not rtype.namespaced:
        return f"{_prefix(rtype.api_version)}/{rtype.plural}"
    return f"{_prefix(rtype.api_version)}/namespaces/{quote(namespace, safe='')}/{rtype.plural}"


def object_path(rtype: ResourceType, namespace: str, name: str, subresource: str | None = None) -> str:
    """Path of one object, optionally of its ``status`` or ``scale`` subresource."""
    path = f"{collection_path(rtype, namespace)}/{quote(name, safe='')}"
    return f"{path}/{subresource}" if subresource else path


def label_selector_string(selector: Mapping[str, str]) -> str:
    """``a=b,c=d`` for a ``matchLabels`` mapping (sorted, so the string is stable)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """True when every ``selector`` label is present with the same value (``matchLabels`` semantics)."""
    return all(labels.get(k) == v for k, v in selector.items())


def list_request(
    rtype: ResourceType,
    namespace: str | None,
    label_selector: str = "",
    limit: int = 0,
    continue_token: str = "",
) -> Request:
    """A list request, paginated when ``limit`` > 0."""
    query: list[tuple[str, str]] = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if limit:
        query.append(("limit", str(limit)))
    if continue_token:
        query.append(("continue", continue_token))
    return Request("GET", collection_path(rtype, namespace), tuple(query))


def watch_request(
    rtype: ResourceType,
    namespace: str | None,
    resource_version: str,
    label_selector: str = "",
    timeout_s: int = 300,
) -> Request:
    """A watch from ``resource_version`` with bookmarks, ended by the server after ``timeout_s`` seconds."""
    query = [
        ("watch", "true"),
        ("resourceVersion", resource_version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(timeout_s)),
    ]
    if label_selector:
        query.append(("labelSelector", label_selector))
    return Request("GET", collection_path(rtype, namespace), tuple(query))


def get_request(rtype: ResourceType, namespace: str, name: str, subresource: str | None = None) -> Request:
    """GET one object or subresource."""
    return Request("GET", object_path(rtype, namespace, name, subresource))


def scale_patch_request(rtype: ResourceType, namespace: str, name: str, replicas: int) -> Request:
    """Merge patch of ``spec.replicas`` on the ``/scale`` subresource (valid for apps/v1 and custom resources)."""
    return Request(
        "PATCH",
        object_path(rtype, namespace, name, "scale"),
        body={"spec": {"replicas": replicas}},
        content_type=MERGE_PATCH,
    )


def status_patch_request(
    rtype: ResourceType, namespace: str, name: str, status_patch: Mapping[str, Any]
) -> Request:
    """Merge patch of the ``status`` subresource."""
    return Request(
        "PATCH",
        object_path(rtype, namespace, name, "status"),
        body={"status": dict(status_patch)},
        content_type=MERGE_PATCH,
    )


def merge_patch_diff(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (``{}`` when they are equal).

    Keys missing from ``new`` become ``null``; lists are replaced whole (merge-patch semantics).
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                patch[key] = merge_patch_diff(old[key], value)
            else:
                patch[key] = value
    return patch


# ------------------------------------------------------------------------------------------------ transport


async def new_api_client(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An authenticated kubernetes_asyncio ApiClient: from ``kubeconfig`` when given, else in-cluster config,
    else the default kubeconfig location.

    Raises:
        PermanentError: when no configuration can be loaded.
    """
    from kubernetes_asyncio import config as kconfig

    try:
        if kubeconfig:
            return await kconfig.new_client_from_config(config_file=kubeconfig, context=context)
        try:
            cfg = Configuration()
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # sync by design
            return ApiClient(configuration=cfg)
        except kconfig.ConfigException:
            return await kconfig.new_client_from_config(context=context)
    except (kconfig.ConfigException, OSError, ValueError) as err:
        raise PermanentError(f"cannot load Kubernetes client configuration: {err}") from None


_SEND_BACKOFF = equal_jitter(base=0.1, cap=2.0)
# a 409 on a status merge patch (admission webhooks, injected faults) passes within a few hundred ms
_CONFLICT_WAIT = equal_jitter(base=0.075, cap=0.3)


def _transient(err: BaseException) -> bool:
    """Worth another attempt of the same request: a temporary failure other than 409 and 410 (which need a
    re-read or a re-list first)."""
    return isinstance(err, TemporaryError) and not isinstance(err, (ConflictError, GoneError))


def _conflict(err: BaseException) -> bool:
    return isinstance(err, ConflictError)


def _send_wait(state: RetryCallState) -> float:
    """The backoff, or the server's ``Retry-After`` (the error's delay) when that is shorter (seconds)."""
    err = state.outcome.exception() if state.outcome is not None else None
    delay = _SEND_BACKOFF(state)
    return min(err.delay, delay) if isinstance(err, TemporaryError) else delay


def _status_message(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return text.strip()[:300]


def map_status(
    request: Request, status: int, body: bytes | str, retry_after: float | None = None
) -> Exception:
    """The project error for an HTTP failure ``status`` of ``request``."""
    what = f"{request.describe()}: HTTP {status}: {_status_message(body)}"
    if status == 409:
        return ConflictError(what, delay=0.05)
    if status == 404:
        return NotFoundError(what)
    if status == 410:
        return GoneError(what, delay=0.0)
    if status == 429 or status >= 500:
        return TemporaryError(what, delay=retry_after if retry_after is not None else 1.0)
    return PermanentError(what)


class KubeTransport:
    """Sends :class:`Request`s with kubernetes_asyncio's ApiClient (auth, TLS, token refresh) and maps errors.

    Args:
        api_client: an authenticated client (see :func:`new_api_client`); closed by :meth:`close`.
        timeout_s: total timeout of one non-watch request, seconds. Default 10.
        retries: attempts for 429/5xx/timeouts before the ``TemporaryError`` is raised. Default 3.
        on_request: called with ``(method, path)`` before each request (request counting for metrics/benches).
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.api_client = api_client
        self.timeout_s = timeout_s
        self.retries = retries
        self.on_request = on_request
        self.requests = 0

    async def close(self) -> None:
        """Close the underlying HTTP session."""
        await self.api_client.close()

    async def _open(self, request: Request, client_timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        self.requests += 1
        if self.on_request is not None:
            self.on_request(request.method, request.path)
        headers = {"Accept": JSON}
        if request.body is not None:
            headers["Content-Type"] = request.content_type
        resp: aiohttp.ClientResponse = await self.api_client.call_api(
            request.path,
            request.method,
            query_params=list(request.query),
            header_params=headers,
            body=request.body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=client_timeout,
        )
        return resp

    async def send_once(self, request: Request) -> Any:
        """Send once; the decoded JSON reply, or a project error."""
        try:
            resp = await self._open(request, aiohttp.ClientTimeout(total=self.timeout_s))
            async with resp:
                body = await resp.read()
                if not 200 <= resp.status <= 299:
                    retry_after = resp.headers.get("Retry-After")
                    raise map_status(
                        request,
                        resp.status,
                        body,
                        float(retry_after) if retry_after and retry_after.isdigit() else None,
                    )
        except ApiException as err:  # raised by the client for some transport-level failures
            raise map_status(request, err.status or 503, err.body or err.reason or "") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise TemporaryError(f"{request.describe()}: {type(err).__name__}: {err}", delay=1.0) from None
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise PermanentError(f"{request.describe()}: reply is not JSON") from None

    async def send(self, request: Request) -> Any:
        """Send, retrying 429/5xx/timeouts with backoff and jitter (409/404/410/4xx are raised at once)."""
        async for attempt in retrying(stop=stop_after_attempt(self.retries), wait=_send_wait, retry_on=_transient):
            with attempt:
                return await self.send_once(request)
        raise AssertionError("unreachable")

    async def stream(self, request: Request, read_timeout_s: float) -> AsyncIterator[dict[str, Any]]:
        """Yield the JSON lines of a watch. Ends when the server closes the stream.

        Raises:
            GoneError: on HTTP 410 or an ``ERROR`` event with code 410.
            TemporaryError / PermanentError: as for :meth:`send_once`.
        """
        try:
            resp = await self._open(
                request,
                aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s, sock_read=read_timeout_s),
            )
        except ApiException as err:
            raise map_status(request, err.status or 503, err.body or "") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise TemporaryError(f"{request.describe()}: {type(err).__name__}: {err}") from None
        async with resp:
            if not 200 <= resp.status <= 299:
                raise map_status(request, resp.status, await resp.read())
            try:
                while True:
                    line = await resp.content.readline()
                    if not line:
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object") or {}
                        raise map_status(request, int(obj.get("code") or 500), json.dumps(obj))
                    yield event
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                raise TemporaryError(f"watch {request.path}: {type(err).__name__}: {err}") from None
            except ValueError:
                raise TemporaryError(f"watch {request.path}: malformed event line") from None


# ------------------------------------------------------------------------------------------------ informer


def _object_labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


Projector = Callable[[dict[str, Any]], dict[str, Any]]
Handler = Callable[[str, dict[str, Any]], None]


def project_pod(obj: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the controller reads from a pod: name, labels, ready, phase, terminating."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return {
        "metadata": {
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "labels": meta.get("labels") or {},
            "resourceVersion": meta.get("resourceVersion", ""),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "status": {"phase": status.get("phase", ""), "ready": ready},
    }


class Informer:
    """A list + watch cache of one resource type, in all namespaces or in a list of namespaces.

    The cache holds objects by ``(namespace, name)``. The watch resumes from the last seen resourceVersion
    (bookmarks advance it without traffic); a 410 re-lists; failures back off with jitter. ``handler`` is
    called with ``(event type, object)`` for every change (``ADDED``, ``MODIFIED``, ``DELETED``).

    Args:
        transport: the HTTP seam.
        rtype: resource type to cache.
        namespaces: namespaces to watch; ``None`` for all namespaces (one cluster-wide watch).
        label_selector: server-side label selector (``a=b,c``), for sharding.
        project: shrinks each stored object (keeps memory flat with thousands of pods).
        optional: when True, a 404 on list (API not installed, e.g. no LeaderWorkerSet CRD) counts as an empty,
            synced cache that is retried every ``watch_timeout_s``.
        watch_timeout_s: server-side watch timeout, seconds; the watch is re-opened from the last version.
        index_labels: the labels :meth:`select` matches and the index is keyed by; default the object's own
            ``metadata.labels`` (workload caches pass their pod template's labels, which role resolution
            selects on).
    """

    def __init__(
        self,
        transport: KubeTransport,
        rtype: ResourceType,
        *,
        namespaces: Sequence[str] | None = None,
        label_selector: str = "",
        project: Projector | None = None,
        handler: Handler | None = None,
        optional: bool = False,
        watch_timeout_s: int = 290,
        page_size: int = 500,
        index_labels: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None,
    ) -> None:
        self.transport = transport
        self._labels = index_labels or _object_labels
        self.rtype = rtype
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.label_selector = label_selector
        self.project = project
        self.handlers: list[Handler] = [handler] if handler else []
        self.optional = optional
        self.watch_timeout_s = watch_timeout_s
        self.page_size = page_size
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.by_namespace: dict[str, dict[str, dict[str, Any]]] = {}
        # (namespace, label, value) → names: selector lookups touch only candidate objects, so a tick over N
        # resources does not scan every pod of the namespace N times.
        self.by_label: dict[tuple[str, str, str], set[str]] = {}
        self.relists = 0
        # Lists started so far, and per scope the count at the start of its last complete list: whether a cached
        # scope was listed after a given moment, without ordering resourceVersions (they are opaque).
        self._lists_started = 0
        self._listed_at: dict[str | None, int] = {}
        self.available = True
        self._synced = asyncio.Event()
        self._synced_scopes: set[str | None] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- cache access

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached object, or None."""
        return self.store.get((namespace, name))

    def in_namespace(self, namespace: str) -> Iterable[dict[str, Any]]:
        """Cached objects of ``namespace``."""
        return self.by_namespace.get(namespace, {}).values()

    def items(self) -> Iterable[dict[str, Any]]:
        """Every cached object."""
        return self.store.values()

    def select(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Cached objects of ``namespace`` whose index labels (see ``index_labels``) match ``selector``
        (``matchLabels`` semantics)."""
        if not selector:
            return list(self.in_namespace(namespace))
        sets = [self.by_label.get((namespace, k, v), set()) for k, v in selector.items()]
        smallest = min(sets, key=len)
        objects = self.by_namespace.get(namespace, {})
        return [objects[n] for n in smallest if n in objects and all(n in s for s in sets)]

    def _set(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        old = self.store.get(key)
        if old is not None:
            self._unindex(key, old)
        self.store[key] = obj
        self.by_namespace.setdefault(key[0], {})[key[1]] = obj
        for k, v in self._labels(obj).items():
            self.by_label.setdefault((key[0], k, v), set()).add(key[1])

    def _unindex(self, key: tuple[str, str], obj: Mapping[str, Any]) -> None:
        for k, v in self._labels(obj).items():
            names = self.by_label.get((key[0], k, v))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self.by_label[(key[0], k, v)]

    def _delete(self, key: tuple[str, str]) -> None:
        old = self.store.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        self.by_namespace.get(key[0], {}).pop(key[1], None)

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        for handler in self.handlers:
            handler(kind, obj)

    # -- life cycle

    def start(self) -> None:
        """Start one list+watch task per namespace scope."""
        for ns in self.namespaces:
            self._tasks.append(
                asyncio.create_task(self._run(ns), name=f"informer {self.rtype.plural} {ns or '*'}")
            )

    async def wait_synced(self, timeout_s: float | None = None) -> None:
        """Wait for the first complete list of every scope."""
        await asyncio.wait_for(self._synced.wait(), timeout_s)

    @property
    def synced(self) -> bool:
        """True once every scope has been listed."""
        return self._synced.is_set()

    async def stop(self) -> None:
        """Cancel the watches and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def list_epoch(self) -> int:
        """A mark of now for :meth:`relisted_since`."""
        return self._lists_started

    def relisted_since(self, namespace: str, epoch: int) -> bool:
        """True when the scope holding ``namespace`` was listed completely by a list started after ``epoch``."""
        scope = namespace if namespace in self.namespaces else None
        return self._listed_at.get(scope, -1) > epoch

    async def _list(self, ns: str | None) -> str:
        self._lists_started += 1
        started = self._lists_started
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            reply = await self.transport.send(
                list_request(self.rtype, ns, self.label_selector, self.page_size, token)
            )
            items.extend(reply.get("items") or [])
            meta = reply.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                rv = str(meta.get("resourceVersion") or "")
                break
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            item.setdefault("apiVersion", self.rtype.api_version)
            item.setdefault("kind", self.rtype.kind)
            obj = self.project(item) if self.project else item
            meta = obj.get("metadata") or {}
            fresh[(meta.get("namespace", ""), meta.get("name", ""))] = obj
        # Replace this scope's part of the cache; tell handlers about objects that vanished while not watching.
        stale = [k for k in self.store if (ns is None or k[0] == ns) and k not in fresh]
        for key in stale:
            gone = self.store[key]
            self._delete(key)
            self._emit("DELETED", gone)
        for key, obj in fresh.items():
            existed = key in self.store
            self._set(key, obj)
            self._emit("MODIFIED" if existed else "ADDED", obj)
        self.relists += 1
        self._listed_at[ns] = started
        return rv

    def _mark_synced(self, ns: str | None) -> None:
        self._synced_scopes.add(ns)
        if len(self._synced_scopes) == len(self.namespaces):
            self._synced.set()

    async def _run(self, ns: str | None) -> None:
        backoff = Backoff(base=0.2, cap=30.0)
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._list(ns)
                    self.available = True
                    self._mark_synced(ns)
                request = watch_request(self.rtype, ns, rv, self.label_selector, self.watch_timeout_s)
                async for event in self.transport.stream(request, read_timeout_s=self.watch_timeout_s + 30):
                    rv = self._apply(event) or rv
                    backoff.reset()
            except GoneError:
                rv = ""  # too old: re-list at once
            except NotFoundError:
                if not self.optional:
                    rv = ""
                    await asyncio.sleep(backoff.next_delay())
                    continue
                self.available = False
                self._mark_synced(ns)
                rv = ""
                await asyncio.sleep(min(self.watch_timeout_s, 30))
            except (TemporaryError, PermanentError) as err:
                delay = backoff.next_delay()
                if isinstance(err, PermanentError):
                    # A refused list or watch (403 once a permission is gone, 400) does not pass by itself:
                    # say so, or the controller would look healthy while this cache stays empty or stale.
                    log.warning(
                        "list or watch refused",
                        resource=self.rtype.plural,
                        namespace=ns or "*",
                        error=str(err),
                        retry_in=round(delay, 2),
                    )
                await asyncio.sleep(delay)

    def _apply(self, event: dict[str, Any]) -> str:
        kind = str(event.get("type", ""))
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion") or "")
        if kind == "BOOKMARK":
            return rv
        obj.setdefault("apiVersion", self.rtype.api_version)
        obj.setdefault("kind", self.rtype.kind)
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            self._delete(key)
            self._emit(kind, obj)
        elif kind in ("ADDED", "MODIFIED"):
            stored = self.project(obj) if self.project else obj
            self._set(key, stored)
            self._emit(kind, stored)
        return rv


# ------------------------------------------------------------------------------------------- fleet / scale


def _pod_template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        tmpl = lwt.get("leaderTemplate") or lwt.get("workerTemplate") or {}
    else:
        tmpl = spec.get("template") or {}
    return dict((tmpl.get("metadata") or {}).get("labels") or {})


def _workload_pod_selector(obj: Mapping[str, Any]) -> dict[str, str]:
    if obj.get("kind") == "LeaderWorkerSet":
        return {LWS_NAME_LABEL: str((obj.get("metadata") or {}).get("name", ""))}
    selector = (obj.get("spec") or {}).get("selector") or {}
    return dict(selector.get("matchLabels") or {})


def pool_selector(pool: Mapping[str, Any]) -> dict[str, str]:
    """The pod label selector of an InferencePool: v1 ``spec.selector.matchLabels`` or v1alpha2's plain map."""
    selector = (pool.get("spec") or {}).get("selector") or {}
    if "matchLabels" in selector and isinstance(selector["matchLabels"], dict):
        return {str(k): str(v) for k, v in selector["matchLabels"].items()}
    return {str(k): str(v) for k, v in selector.items() if isinstance(v, str)}


@dataclass
class KubeFleet:
    """ScaleClient + FleetReader over informer caches, InferencePool reading and role-target resolution.

    Reads come from the caches (no request per tick); ``set_replicas`` patches ``/scale`` and the count it wrote
    stands in for the cached one until the cache holds that write (:mod:`autoscaler.adapters.ownwrites`), so the
    next read sees our own write even before the watch delivers it. Kinds without
    a cache (any other kind with a scale subresource) are read with ``GET .../scale``.
    """

    transport: KubeTransport
    namespaces: Sequence[str] | None = None
    informers: dict[str, Informer] = field(default_factory=dict)
    _pending: PendingScales = field(default_factory=PendingScales)
    _discovered: dict[tuple[str, str], ResourceType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def inf(rtype: ResourceType, **kw: Any) -> Informer:
            return Informer(self.transport, rtype, namespaces=self.namespaces, **kw)

        self.informers = {
            "Pod": inf(PODS, project=project_pod),
            # Indexed by pod template labels: resolving a role's workload is then a lookup, not a scan of
            # every workload in the namespace per role per tick.
            "Deployment": inf(DEPLOYMENTS, index_labels=_pod_template_labels),
            "StatefulSet": inf(STATEFULSETS, index_labels=_pod_template_labels),
            "LeaderWorkerSet": inf(LEADERWORKERSETS, optional=True, index_labels=_pod_template_labels),
            POOLS_V1.api_version: inf(POOLS_V1, optional=True),
            POOLS_V1ALPHA2.api_version: inf(POOLS_V1ALPHA2, optional=True),
        }
        for rtype in WORKLOADS:
            self.informers[rtype.kind].handlers.append(self._pending.observed)

    def start(self) -> None:
        """Start every cache."""
        for informer in self.informers.values():
            informer.start()

    async def wait_synced(self, timeout_s: float | None = None) -> None:
        """Wait until every cache has listed once."""
        await asyncio.gather(*(i.wait_synced(timeout_s) for i in self.informers.values()))

    async def stop(self) -> None:
        """Stop every cache."""
        await asyncio.gather(*(i.stop() for i in self.informers.values()))

    # -- type lookup

    async def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The resource type of ``kind`` in ``api_version``, via discovery for kinds not known in advance.

        Raises:
            ResolutionError: UnsupportedTarget when the API does not serve the kind or it has no scale subresource.
        """
        known = _KNOWN_KINDS.get((api_version, kind))
        if known is not None:
            return known
        cached = self._discovered.get((api_version, kind))
        if cached is not None:
            return cached
        try:
            reply = await self.transport.send(Request("GET", _prefix(api_version)))
        except NotFoundError:
            raise ResolutionError(
                "UnsupportedTarget", f"API {api_version} is not served by the cluster"
            ) from None
        resources = reply.get("resources") or []
        plural = next(
            (r["name"] for r in resources if r.get("kind") == kind and "/" not in r.get("name", "")), None
        )
        has_scale = plural is not None and any(r.get("name") == f"{plural}/scale" for r in resources)
        if plural is None or not has_scale:
            raise ResolutionError(
                "UnsupportedTarget",
                f"{kind} in {api_version} {'has no scale subresource' if plural else 'is not served'}",
            )
        rtype = ResourceType(api_version, plural, kind)
        self._discovered[(api_version, kind)] = rtype
        return rtype

    # -- pools and targets

    def pool(self, namespace: str, name: str, group: str) -> dict[str, Any]:
        """The InferencePool from the cache.

        Raises:
            ResolutionError: PoolNotFound.
        """
        rtype = POOLS_V1 if group == POOLS_V1.group else POOLS_V1ALPHA2
        obj = self.informers[rtype.api_version].get(namespace, name)
        if obj is None:
            raise ResolutionError(
                "PoolNotFound", f"InferencePool {namespace}/{name} ({rtype.api_version}) not found"
            )
        return obj

    async def resolve(
        self,
        namespace: str,
        role: Role,
        *,
        pool: Mapping[str, Any],
        role_label: str,
        explicit: tuple[str, str, str] | None,
    ) -> RoleTarget:
        """The workload serving ``role``: the explicit ``(apiVersion, kind, name)`` or the one workload whose pod
        template carries the pool's selector labels plus ``role_label=role``.

        Raises:
            ResolutionError: TargetNotFound, AmbiguousTarget or UnsupportedTarget.
        """
        selector = pool_selector(pool)
        if explicit is not None:
            api_version, kind, name = explicit
            rtype = await self.resource_type(api_version, kind)
            informer = self.informers.get(kind) if rtype in WORKLOADS else None
            if informer is not None:
                obj = informer.get(namespace, name)
                if obj is None:
                    raise ResolutionError(
                        "TargetNotFound", f"{role.value}: {kind} {namespace}/{name} not found"
                    )
                pod_selector = _workload_pod_selector(obj)
            else:
                try:
                    await self.transport.send(get_request(rtype, namespace, name, "scale"))
                except NotFoundError:
                    raise ResolutionError(
                        "TargetNotFound", f"{role.value}: {kind} {namespace}/{name} not found"
                    ) from None
                pod_selector = {**selector, role_label: role.value}
            return RoleTarget(role, namespace, api_version, kind, name, pod_selector)
        wanted = {**selector, role_label: role.value}
        matches: list[dict[str, Any]] = []
        for rtype in WORKLOADS:
            informer = self.informers[rtype.kind]
            matches.extend(informer.select(namespace, wanted))
        if not matches:
            raise ResolutionError(
                "TargetNotFound",
                f"{role.value}: no Deployment, StatefulSet or LeaderWorkerSet in {namespace} has pod labels "
                f"{label_selector_string(wanted)}",
            )
        if len(matches) > 1:
            names = ", ".join(sorted(f"{o.get('kind')}/{o['metadata']['name']}" for o in matches))
            raise ResolutionError(
                "AmbiguousTarget",
                f"{role.value}: {len(matches)} workloads match {label_selector_string(wanted)}: {names}; "
                "set spec.roles.<role>.scaleTargetRef",
            )
        obj = matches[0]
        return RoleTarget(
            role,
            namespace,
            str(obj.get("apiVersion")),
            str(obj.get("kind")),
            obj["metadata"]["name"],
            _workload_pod_selector(obj),
        )

    # -- ScaleClient / FleetReader

    async def get_scale(self, target: RoleTarget) -> ScaleState:
        """Scale of ``target`` (from the cache where there is one) with pod readiness.

        Raises:
            NotFoundError: the target disappeared.
        """
        informer = self.informers.get(target.kind)
        if informer is not None and (target.api_version, target.kind) in _KNOWN_KINDS:
            obj = informer.get(target.namespace, target.name)
            if obj is None:
                raise NotFoundError(f"{target.kind} {target.namespace}/{target.name} not found")
            rv = _rv(obj)
            replicas = int(
                (obj.get("spec") or {}).get("replicas", 1)
                if (obj.get("spec") or {}).get("replicas") is not None
                else 1
            )
            status_replicas = int((obj.get("status") or {}).get("replicas") or 0)
            written = self._pending.replicas(
                (target.namespace, target.kind, target.name), rv,
                lambda epoch: informer.relisted_since(target.namespace, epoch),
            )
            replicas = replicas if written is None else written
        else:
            rtype = await self.resource_type(target.api_version, target.kind)
            scale = await self.transport.send(get_request(rtype, target.namespace, target.name, "scale"))
            replicas = int((scale.get("spec") or {}).get("replicas") or 0)
            status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
            rv = str((scale.get("metadata") or {}).get("resourceVersion", ""))
        ready = sum(1 for _, ok in await self.pods(target) if ok)
        return ScaleState(
            replicas=replicas,
            status_replicas=status_replicas,
            ready=ready,
            starting=max(0, replicas - ready),
            resource_version=rv,
        )

    async def pods(self, target: RoleTarget) -> Sequence[tuple[str, bool]]:
        """``(pod, ready)`` for the pods of ``target`` that are not terminating (LeaderWorkerSet: leaders only)."""
        out: list[tuple[str, bool]] = []
        for pod in self.informers["Pod"].select(target.namespace, target.pod_selector):
            meta = pod["metadata"]
            labels = meta.get("labels") or {}
            if meta.get("deletionTimestamp"):
                continue
            if target.kind == "LeaderWorkerSet" and labels.get(LWS_WORKER_INDEX_LABEL, "0") != "0":
                continue
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            out.append((meta.get("name", ""), bool(pod["status"].get("ready"))))
        return out

    async def set_replicas(self, target: RoleTarget, replicas: int) -> None:
        """Merge-patch ``spec.replicas`` on ``/scale`` and write the result through to the cache.

        Raises:
            ConflictError / TemporaryError / PermanentError / NotFoundError: from the API server.
        """
        rtype = await self.resource_type(target.api_version, target.kind)
        reply = await self.transport.send(scale_patch_request(rtype, target.namespace, target.name, replicas))
        informer = self.informers.get(target.kind)
        if informer is None or (target.api_version, target.kind) not in _KNOWN_KINDS:
            return  # read with GET .../scale every time: nothing cached to stand in for
        self._pending.wrote((target.namespace, target.kind, target.name), replicas, _rv(reply), informer.list_epoch())


# ------------------------------------------------------------------------------------------------- status


class StatusWriter:
    """Writes an object's ``status`` through the status subresource, only when it differs from what is known.

    The last written status per object is remembered, so an unchanged status costs no request even when the
    watch has not yet delivered our previous write. With it go the resourceVersions known not to be newer than
    that write (the version it was based on and the versions our own writes made): a read at one of those is
    diffed against the remembered status; a read at any other version — someone else wrote — against itself.
    resourceVersions are compared only for equality, never ordered.
    """

    def __init__(self, transport: KubeTransport, rtype: ResourceType) -> None:
        self.transport = transport
        self.rtype = rtype
        self.writes = 0
        self._last: dict[tuple[str, str], tuple[dict[str, Any], frozenset[str]]] = {}

    def forget(self, namespace: str, name: str) -> None:
        """Drop the memory of an object (deleted)."""
        self._last.pop((namespace, name), None)

    async def write(
        self,
        namespace: str,
        name: str,
        current: Mapping[str, Any] | None,
        desired: Mapping[str, Any],
        *,
        current_rv: str = "",
        gate: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Patch status from ``current`` (as read at ``current_rv``) to ``desired``; True when a request was sent.

        When the object as read is not newer than our own last write, that write is the base of the diff (the
        cache may not have caught up with it yet). A 409 (possible with admission webhooks or injected faults;
        a merge patch without resourceVersion does not conflict otherwise) is retried with jittered pauses.
        """
        key = (namespace, name)
        last = self._last.get(key)
        if last is not None and current_rv in last[1]:
            base, known = last[0], last[1]
        else:
            base, known = json.loads(json.dumps(dict(current or {}))), frozenset({current_rv})
        patch = merge_patch_diff(base, json.loads(json.dumps(dict(desired))))
        if not patch:
            return False
        reply: Any = None
        async for attempt in retrying(stop=stop_after_attempt(5), wait=_CONFLICT_WAIT, retry_on=_conflict):
            with attempt:
                if not gate():
                    return False
                reply = await self.transport.send(status_patch_request(self.rtype, namespace, name, patch))
        self.writes += 1
        if len(known) >= 16:
            known = frozenset({current_rv})  # bounded: a cache this far behind is diffed against itself next
        self._last[key] = (json.loads(json.dumps(dict(desired))), known | {_rv(reply)})
        return True


# -------------------------------------------------------------------------------------------------- lease


def _lease_record(obj: Mapping[str, Any]) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
    )


class LeaseLock:
    """Reads and writes one ``coordination.k8s.io/v1`` Lease with optimistic concurrency (PUT with
    resourceVersion; a concurrent writer gets 409)."""

    def __init__(self, transport: KubeTransport, namespace: str, name: str) -> None:
        self.transport = transport
        self.namespace = namespace
        self.name = name

    async def get(self) -> LeaseRecord | None:
        """The current record, or None when the Lease does not exist."""
        try:
            return _lease_record(
                await self.transport.send_once(get_request(LEASES, self.namespace, self.name))
            )
        except NotFoundError:
            return None

    def _body(self, spec: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": LEASES.api_version, "kind": "Lease", "metadata": meta, "spec": dict(spec)}

    async def create(self, spec: Mapping[str, Any]) -> LeaseRecord:
        """Create the Lease (409 when someone else created it first)."""
        reply = await self.transport.send_once(
            Request("POST", collection_path(LEASES, self.namespace), body=self._body(spec, None))
        )
        return _lease_record(reply)

    async def update(self, spec: Mapping[str, Any], resource_version: str) -> LeaseRecord:
        """Replace the Lease if it is still at ``resource_version`` (else :class:`ConflictError`)."""
        reply = await self.transport.send_once(
            Request(
                "PUT", object_path(LEASES, self.namespace, self.name), body=self._body(spec, resource_version)
            )
        )
        return _lease_record(reply)

