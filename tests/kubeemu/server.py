"""The emulated Kubernetes API server: aiohttp in front of :mod:`tests.kubeemu.api`.

Speaks the REST paths, verbs, content types, status codes and streaming watch protocol of a real
kube-apiserver closely enough that kubernetes_asyncio and a real ``kubectl`` work against it unchanged.
See docs/testing-apiserver.md for what is emulated and what is simplified.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import errors, table
from .api import Api, AuthTable, parse_rv
from .errors import ApiError
from .faults import Faults
from .jsonutil import clone
from .resources import ResourceType
from .selectors import parse_label_selector
from .store import Watcher
from .workloads import WorkloadSimulator

log = logging.getLogger(__name__)

CRD_DIR = Path(__file__).parent / "crds"
# Preloaded unless the caller passes its own list: the kinds the controller reads or scales.
DEFAULT_CRDS = (
    CRD_DIR / "inference.networking.k8s.io_inferencepools.yaml",
    CRD_DIR / "inference.networking.x-k8s.io_inferencepools.yaml",
    CRD_DIR / "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
)
PROJECT_CRD = (
    Path(__file__).resolve().parents[2] / "crds" / "autoscaler.inference.dev_inferenceautoscalers.yaml"
)
TEST_CRD = CRD_DIR / "testdata" / "autoscaler.inference.dev_inferenceautoscalers.yaml"

GIT_VERSION = "v1.32.0-kubeemu"


def default_crd_files() -> list[Path]:
    """Upstream CRDs plus the project's InferenceAutoscaler CRD (the test copy until the real one exists)."""
    own = PROJECT_CRD if PROJECT_CRD.exists() else TEST_CRD
    return [*DEFAULT_CRDS, own]


_CRD_CACHE: dict[tuple[str, float], list[dict[str, Any]]] = {}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crds(paths: Iterable[str | Path | dict[str, Any]]) -> list[dict[str, Any]]:
    """CRD documents from files (parsed once per process and file version) or dicts."""
    out: list[dict[str, Any]] = []
    for p in paths:
        if isinstance(p, dict):
            out.append(clone(p))
            continue
        path = Path(p)
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in _CRD_CACHE:
            _CRD_CACHE[key] = [
                d
                for d in yaml.load_all(path.read_text(), Loader=_Loader)
                if d and d.get("kind") == "CustomResourceDefinition"
            ]
        out.extend(clone(_CRD_CACHE[key]))
    return out


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int | None = None  # None while a watch is still streaming
    watch: bool = False
    started: float = field(default_factory=time.monotonic)


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def _status_response(e: ApiError) -> web.Response:
    return _json(e.status(), e.code, e.headers or None)


class KubeEmulator:
    """An emulated kube-apiserver on a free loopback port.

    Args:
        crds: CRD files (YAML, may hold several documents) or dicts to preload; default: InferencePool
            v1 + v1alpha2, LeaderWorkerSet and the InferenceAutoscaler CRD.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them (real server: ~60 s;
            short here so tests see them quickly).
        history_limit: events kept for watch resumption; older resourceVersions get 410 (the compaction
            window). ``compact()`` forces it.
        require_namespaces: writes into a namespace that does not exist fail with 404, as for real.
        simulate_workloads: run the Deployment/StatefulSet/LWS → Pod simulator (see ``.workloads``).
    """

    def __init__(
        self,
        crds: Iterable[str | Path | dict[str, Any]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 1.0,
        history_limit: int = 10_000,
        require_namespaces: bool = True,
        simulate_workloads: bool = False,
        ready_delay: float = 0.0,
    ) -> None:
        self.api = Api(require_namespaces=require_namespaces, history_limit=history_limit)
        for crd in load_crds(default_crd_files() if crds is None else crds):
            self.api.install_crd(crd)
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.faults = Faults(self._drop_watches)
        self.requests: list[RequestRecord] = []
        self.workloads = WorkloadSimulator(self.api, enabled=simulate_workloads, ready_delay=ready_delay)
        self._runner: web.AppRunner | None = None
        self._watch_tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # ---- life cycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth(self) -> AuthTable:
        return self.api.auth

    async def start(self) -> KubeEmulator:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # port 0 → the kernel picked a free port; read it back from the listening socket
        sockets = getattr(site._server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])
        self.workloads.start()
        return self

    async def stop(self) -> None:
        self._stopping = True
        await self.workloads.stop()
        self.api.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubeEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubeemu", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeemu", "user": {"token": "kubeemu-admin"}}],
            "contexts": [
                {
                    "name": "kubeemu",
                    "context": {"cluster": "kubeemu", "user": "kubeemu", "namespace": namespace},
                }
            ],
            "current-context": "kubeemu",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace)))
        return path

    # ---- test conveniences (in-process, no HTTP, no faults) -----------------------------------------

    def type_for(self, api_version: str, kind_or_plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        kinds = self.api.types.get((group, version), {})
        for rt in kinds.values():
            if kind_or_plural in (rt.kind, rt.plural):
                return rt
        raise KeyError(f"{api_version} {kind_or_plural} is not served")

    def create(self, obj: dict[str, Any], *, keep_status: bool = True) -> dict[str, Any]:
        """Create ``obj`` as a client would; with keep_status its .status is then written via /status."""
        rt = self.type_for(obj["apiVersion"], obj["kind"])
        created = self.api.create(rt, obj.get("metadata", {}).get("namespace"), obj)
        if keep_status and rt.status_subresource and obj.get("status") is not None:
            created["status"] = obj["status"]
            created = self.api.update(
                rt,
                created["metadata"].get("namespace"),
                created["metadata"]["name"],
                created,
                subresource="status",
            )
        return created

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        rt = self.type_for(api_version, kind)
        return self.api.get(rt, namespace, name)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        rt = self.type_for(api_version, kind)
        items = self.api.list_objects(rt, namespace, label_selector=label_selector)["items"]
        return [self.api._render(rt, it) for it in items]

    def set_status(
        self, api_version: str, kind: str, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        rt = self.type_for(api_version, kind)
        obj = self.api.get(rt, namespace, name)
        obj["status"] = status
        return self.api.update(
            rt, namespace, name, obj, subresource="status" if rt.status_subresource else None
        )

    def ensure_namespace(self, name: str) -> None:
        rt = self.type_for("v1", "Namespace")
        if self.api.store.get(rt.storage_key, "", name) is None:
            self.api.create(rt, None, {"metadata": {"name": name}})

    def compact(self) -> None:
        """Forget all watch history: any watch or Exact list from an older resourceVersion gets 410."""
        self.api.store.compact()

    @property
    def resource_version(self) -> int:
        return self.api.store.rv

    def request_count(
        self, method: str | None = None, path: str | None = None, *, watch: bool | None = None
    ) -> int:
        import re

        pat = re.compile(path) if path else None
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (pat is None or pat.search(r.path))
            and (watch is None or r.watch == watch)
        )

    def clear_requests(self) -> None:
        self.requests.clear()

    def _drop_watches(self) -> int:
        return self.api.store.close_watchers()

    # ---- HTTP -----------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rec = RequestRecord(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Content-Type", ""),
            watch=_truthy(request.query.get("watch")) or "/watch/" in request.path,
        )
        self.requests.append(rec)
        try:
            delay = self.faults.latency_for(request.method, request.path)
            if delay:
                await asyncio.sleep(delay)
            code = self.faults.error_for(request.method, request.path)
            if code is not None:
                reasons = {
                    500: "InternalError",
                    503: "ServiceUnavailable",
                    504: "Timeout",
                    429: "TooManyRequests",
                }
                resp: web.StreamResponse = _status_response(
                    ApiError(
                        code, reasons.get(code, "InternalError"), f"kubeemu injected fault: HTTP {code}", {}
                    )
                )
            elif self.faults.conflict_for(request.method, request.path):
                name = request.path.rstrip("/").split("/")[-1]
                resp = _status_response(errors.conflict("objects", "", name))
            else:
                resp = await handler(request)
        except ApiError as e:
            resp = _status_response(e)
        rec.status = resp.status
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz", "/readyz", "/livez"]})
        if parts[0] in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if parts == ["version"]:
            return _json(
                {
                    "major": "1",
                    "minor": "32",
                    "gitVersion": GIT_VERSION,
                    "gitCommit": "kubeemu",
                    "gitTreeState": "clean",
                    "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "go1.23",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if parts[0] == "api":
            if len(parts) == 1:
                return _json(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                        ],
                    }
                )
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return _json(self._group_list())
            if len(parts) == 2:
                return _json(self._group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:2] == ["openapi", "v3"]:
            return _json(self._openapi_v3(parts[2:]))
        else:
            # /openapi/v2 included: kubectl falls back to it only when /openapi/v3 fails.
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if (group, version) not in self.api.types or not self.api.types[(group, version)]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed()
            return _json(self._resource_list(group, version))
        return await self._resource(request, group, version, rest)

    # ---- discovery ----------------------------------------------------------------------------------

    def _group(self, name: str) -> dict[str, Any]:
        versions = self.api.groups().get(name)
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": vs,
            "preferredVersion": vs[0],
        }

    def _group_list(self) -> dict[str, Any]:
        groups = []
        for name in self.api.groups():
            if name:
                g = self._group(name)
                g.pop("kind")
                g.pop("apiVersion")
                groups.append(g)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for rt in self.api.types[(group, version)].values():
            resources.extend(rt.discovery())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}".lstrip("/"),
            "resources": resources,
        }

    def _openapi_v3(self, rest: list[str]) -> dict[str, Any]:
        """Just enough OpenAPI v3 for kubectl's field-validation probe (QueryParamVerifierV3).

        kubectl create/apply look for a PATCH operation tagged with the object's
        ``x-kubernetes-group-version-kind`` that takes a ``fieldValidation`` query parameter; finding it,
        they leave validation to the server (which prunes/rejects unknown fields like the real one).
        No schemas are published, so ``kubectl explain`` and client-side validation are not supported.
        """
        if not rest:
            paths = {}
            for (g, v), kinds in self.api.types.items():
                if kinds:
                    gv = f"apis/{g}/{v}" if g else f"api/{v}"
                    paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash=kubeemu{self.api.store.rv}"}
            return {"paths": paths}
        if rest[0] == "api" and len(rest) == 2:
            g, v = "", rest[1]
        elif rest[0] == "apis" and len(rest) == 3:
            g, v = rest[1], rest[2]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        served = self.api.types.get((g, v))
        if not served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        prefix = f"/apis/{g}/{v}" if g else f"/api/{v}"
        params = [
            {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for n in ("dryRun", "fieldManager", "fieldValidation", "force")
        ]
        doc_paths: dict[str, Any] = {}
        for rt in served.values():
            item = (
                f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
                if rt.namespaced
                else f"{prefix}/{rt.plural}/{{name}}"
            )
            gvk = {"group": g, "version": v, "kind": rt.kind}
            doc_paths[item] = {
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "x-kubernetes-action": "patch",
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (kubeemu)", "version": GIT_VERSION},
            "paths": doc_paths,
            "components": {"schemas": {}},
        }

    # ---- resources ----------------------------------------------------------------------------------

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        q = request.query
        watch = _truthy(q.get("watch"))
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt_ns = self.api.find_type(group, version, rest[2])
            if rt_ns is not None and rt_ns.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        rt = self.api.type(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in ("status", "scale")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if (sub == "scale" and rt.scale is None) or (sub == "status" and not rt.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if rt.namespaced and ns is None and (name is not None or request.method != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

        m = request.method
        dry_run = q.get("dryRun") == "All"
        fv = q.get("fieldValidation", "Warn")
        self.api.warnings = []
        if name is None:
            if m == "GET" and watch:
                return await self._watch(request, rt, ns)
            if m == "GET":
                listed = self.api.list_objects(
                    rt,
                    ns,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                    limit=int(q["limit"]) if q.get("limit") else None,
                    continue_token=q.get("continue"),
                    resource_version=q.get("resourceVersion"),
                    resource_version_match=q.get("resourceVersionMatch"),
                )
                if table.wants_table(request.headers.get("Accept", "")):
                    return _json(
                        table.render(
                            rt,
                            [self.api._render(rt, it) for it in listed["items"]],
                            resource_version=listed["metadata"]["resourceVersion"],
                            include_object=q.get("includeObject", "Metadata"),
                            continue_token=listed["metadata"].get("continue"),
                        )
                    )
                return _json(listed)
            if m == "POST":
                body = await self._body(request)
                created = self.api.create(rt, ns, body, dry_run=dry_run, field_validation=fv)
                return self._reply(created, 201)
            if m == "DELETE":
                return _json(
                    self.api.delete_collection(
                        rt, ns, label_selector=q.get("labelSelector"), field_selector=q.get("fieldSelector")
                    )
                )
            raise errors.method_not_allowed()

        if m == "GET":
            if sub == "scale":
                return _json(self.api.get_scale(rt, ns, name))
            obj = self.api.get(rt, ns, name)
            if table.wants_table(request.headers.get("Accept", "")):
                return _json(
                    table.render(
                        rt, [obj], resource_version=None, include_object=q.get("includeObject", "Metadata")
                    )
                )
            return _json(obj)
        if m == "PUT":
            body = await self._body(request)
            if sub == "scale":
                return _json(self.api.update_scale(rt, ns, name, body, dry_run=dry_run))
            return self._reply(
                self.api.update(rt, ns, name, body, subresource=sub, dry_run=dry_run, field_validation=fv)
            )
        if m == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            raw = await request.read()
            return self._reply(
                self.api.patch(
                    rt,
                    ns,
                    name,
                    raw,
                    ctype,
                    subresource=sub,
                    dry_run=dry_run,
                    field_validation=fv,
                    field_manager=q.get("fieldManager"),
                )
            )
        if m == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed()
            raw = await request.read()
            options: dict[str, Any] = json.loads(raw) if raw.strip() else {}
            if q.get("propagationPolicy"):
                options["propagationPolicy"] = q["propagationPolicy"]
            code, body = self.api.delete(rt, ns, name, options, dry_run=dry_run)
            return _json(body, code)
        raise errors.method_not_allowed()

    def _reply(self, body: dict[str, Any], status: int = 200) -> web.Response:
        headers = {}
        if self.api.warnings:
            # RFC 7234 warning headers, as the server sends for unknown fields under fieldValidation=Warn
            headers["Warning"] = ", ".join(
                f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in self.api.warnings
            )
        return _json(body, status, headers)

    async def _body(self, request: web.Request) -> Any:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        raw = await request.read()
        if ctype in ("application/yaml",):
            try:
                return yaml.safe_load(raw.decode())
            except yaml.YAMLError as e:
                raise errors.bad_request(f"error decoding YAML: {e}") from e
        if ctype not in ("application/json", "", "*/*"):
            raise errors.unsupported_media_type(ctype, ["application/json", "application/yaml"])
        try:
            return json.loads(raw.decode() or "null")
        except ValueError as e:
            raise errors.bad_request(f"error decoding JSON body: {e}") from e

    # ---- watch --------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.StreamResponse:
        q = request.query
        # Selector syntax errors are plain 400 responses, before the stream starts.
        labels = parse_label_selector(q.get("labelSelector"))
        fields = self.api.parse_fields(rt, q.get("fieldSelector"))
        rv_param = q.get("resourceVersion", "")
        since = None if rv_param in ("", "0") else parse_rv(rv_param)
        if _truthy(q.get("sendInitialEvents")):
            since = None
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800.0
        as_table = table.wants_table(request.headers.get("Accept", ""))
        include_object = q.get("includeObject", "Metadata")

        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(ev_type: str, obj: dict[str, Any]) -> None:
            await resp.write(
                json.dumps({"type": ev_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
            )

        if self.faults.take_expired_watch() or (since is not None and self.api.store.too_old(since)):
            # The real server accepts the watch, then reports the compaction as an ERROR event.
            err = errors.expired(
                f"too old resource version: {since if since is not None else 0} "
                f"({max(self.api.store.compacted_rv, (since or 0) + 1)})"
            )
            with contextlib.suppress(ConnectionError):
                await send("ERROR", err.status())
                await resp.write_eof()
            return resp

        watcher = Watcher(rt.storage_key, ns if rt.namespaced else None, labels, fields)
        self.api.store.subscribe(watcher, since)
        initial_done = since is not None or not _truthy(q.get("sendInitialEvents"))
        headers_sent = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self.bookmark_interval
        try:
            while not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
                if not initial_done and watcher.queue.empty():
                    initial_done = True
                    if bookmarks:
                        await send("BOOKMARK", self._bookmark(rt, initial_end=True))
                    continue
                try:
                    # wake at least once a second to notice clients that went away
                    item = await asyncio.wait_for(watcher.queue.get(), min(wait, 1.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    if bookmarks and loop.time() < deadline and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        # Empty queue ⇒ every event up to the current revision was delivered.
                        await send("BOOKMARK", self._bookmark(rt))
                    continue
                if item is None:
                    break
                ev_type, obj = item
                obj = self.api.render(rt, obj)
                if as_table:
                    out = table.render(
                        rt,
                        [obj],
                        resource_version=obj["metadata"]["resourceVersion"],
                        include_object=include_object,
                        with_headers=not headers_sent,
                    )
                    headers_sent = True
                    await send(ev_type, out)
                else:
                    await send(ev_type, obj)
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.api.store.unsubscribe(watcher)
        return resp

    def _bookmark(self, rt: ResourceType, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.api.store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
