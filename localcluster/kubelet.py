"""A kubelet stand-in: Pods get a Node, a cold start and readiness; terminating Pods go away.

There is no kubelet and no container runtime here, so this plays the two parts of them that the controllers
above it see, the way KWOK's default pod stages do:
- a Pod with no ``spec.nodeName`` is bound to the stand-in Node (``pods/binding``, as the scheduler would);
- a bound Pod becomes Running and Ready ``ready_after`` seconds after it was first seen (its cold start), through
  ``pods/status``: phase, the four conditions, one ready container status, a Pod IP;
- a Pod with a ``deletionTimestamp`` is deleted with grace period 0 (the kubelet's confirmation).

The cold start is, in order of precedence: the Pod annotation ``localcluster.dev/ready-after`` (seconds), a
rule set with :meth:`KubeletStandIn.set_ready_after` for a namespace and Pod-name prefix, the default. A
:meth:`KubeletStandIn.pause`\\ d stand-in binds nothing and readies nothing until :meth:`KubeletStandIn.resume`.

A cold start of ``math.inf`` leaves readiness to the caller: such a Pod becomes Ready only through
:meth:`KubeletStandIn.make_ready` (the e2e fleet does that when its simulated model server starts serving), and
:meth:`KubeletStandIn.watch` tells the caller about every Pod the stand-in sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
READY_AFTER_ANNOTATION = "localcluster.dev/ready-after"
NODE = "standin-node"


@dataclass
class _Rule:
    namespace: str | None
    prefix: str
    seconds: float


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeletStandIn:
    """Watches every Pod on the cluster and moves it along as a kubelet would (see the module docstring).

    Args:
        url, token, ca_file: the apiserver and an identity allowed to bind Pods and write ``pods/status``.
        ready_after: default cold start (seconds).
        node: the stand-in Node's name (created if missing).
    """

    def __init__(self, url: str, token: str, ca_file: str, *, ready_after: float = 0.0, node: str = NODE) -> None:
        self.url = url
        self.node = node
        self.default_ready_after = ready_after
        self._rules: list[_Rule] = []
        self._headers = {"Authorization": f"Bearer {token}"}
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._seen: dict[str, float] = {}  # pod uid → loop time first seen
        self._pods: dict[str, dict[str, Any]] = {}  # pod uid → latest object
        self._paused = False
        self._ips = (f"10.244.{i // 250}.{i % 250 + 2}" for i in itertools.count())
        self._inflight: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[dict[str, Any], bool], None]] = []
        self.readied = 0

    # ------------------------------------------------------------------------------------------ controls

    def set_ready_after(self, seconds: float, *, namespace: str | None = None, prefix: str = "") -> None:
        """Pods in ``namespace`` (None: any) whose names start with ``prefix`` become Ready after ``seconds``.

        With neither given, this sets the default. Applies to Pods not yet Ready.
        """
        if namespace is None and not prefix:
            self.default_ready_after = seconds
        else:
            self._rules.insert(0, _Rule(namespace, prefix, seconds))
        for pod in list(self._pods.values()):
            self._schedule(pod)

    def watch(self, callback: Callable[[dict[str, Any], bool], None]) -> None:
        """Call ``callback(pod, gone)`` on the event loop for every Pod the stand-in handles: with the latest
        object each time it is seen (``gone`` False; also on every relist), and once when it is gone (True)."""
        self._listeners.append(callback)

    def make_ready(self, uid: str) -> bool:
        """Make the Pod with ``uid`` Running and Ready now, whatever its cold start; False (nothing done) when it
        is unknown, not bound yet, terminating, or the stand-in is paused."""
        pod = self._pods.get(uid)
        if pod is None or self._paused or not pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return False
        handle = self._timers.pop(uid, None)
        if handle is not None:
            handle.cancel()
        self._spawn(self._make_ready(pod))
        return True

    def pause(self) -> None:
        """Stop binding and readying Pods (terminating ones are still removed)."""
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`: everything that waited is handled now."""
        self._paused = False
        for pod in list(self._pods.values()):
            self._handle(pod)

    async def start(self) -> None:
        """Create the Node and start watching Pods."""
        self._http = aiohttp.ClientSession(headers=self._headers, timeout=aiohttp.ClientTimeout(total=None))
        await self._ensure_node()
        self._task = asyncio.create_task(self._run(), name="kubelet-standin")

    async def stop(self) -> None:
        """Stop watching; pending timers and writes are cancelled."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            try:
                rv = await self._list()
                await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.debug("kubelet stand-in: %r; relisting", err)
                await asyncio.sleep(0.5)

    async def _list(self) -> str:
        body = await self._call("GET", "/api/v1/pods")
        live = set()
        for pod in body["items"]:
            live.add(pod["metadata"]["uid"])
            self._handle(pod)
        for uid in set(self._pods) - live:
            self._forget(uid)
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> None:
        assert self._http is not None
        params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        async with self._http.get(f"{self.url}/api/v1/pods", params=params, ssl=self._ssl) as r:
            if r.status != 200:
                raise RuntimeError(f"watch pods: {r.status}")
            async for line in r.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    return  # 410 Gone and friends: relist
                pod = ev["object"]
                if ev["type"] == "DELETED":
                    self._forget(pod["metadata"]["uid"])
                elif ev["type"] in ("ADDED", "MODIFIED"):
                    self._handle(pod)

    # ------------------------------------------------------------------------------------------ per pod

    def _handle(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self._pods[uid] = pod
        loop = asyncio.get_running_loop()
        self._seen.setdefault(uid, loop.time())
        self._notify(pod, False)
        if pod["metadata"].get("deletionTimestamp"):
            self._spawn(self._delete(pod))
        elif self._paused:
            return
        elif not pod["spec"].get("nodeName"):
            self._spawn(self._bind(pod))
        elif not _ready(pod):
            self._schedule(pod)

    def _schedule(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._timers or _ready(pod) or not pod["spec"].get("nodeName") or self._paused:
            return
        delay = self._ready_after(pod)
        if math.isinf(delay):
            return  # readiness is the caller's (make_ready)
        loop = asyncio.get_running_loop()
        self._timers[uid] = loop.call_at(self._seen.get(uid, loop.time()) + delay, self._fire, uid)

    def _fire(self, uid: str) -> None:
        self._timers.pop(uid, None)
        pod = self._pods.get(uid)
        if pod is not None and not self._paused and not pod["metadata"].get("deletionTimestamp"):
            self._spawn(self._make_ready(pod))

    def _forget(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        self._seen.pop(uid, None)
        handle = self._timers.pop(uid, None)
        if handle is not None:
            handle.cancel()
        if pod is not None:
            self._notify(pod, True)

    def _notify(self, pod: dict[str, Any], gone: bool) -> None:
        for callback in self._listeners:
            try:
                callback(pod, gone)
            except Exception:  # a listener's bug must not stop the stand-in's watch
                log.exception("kubelet stand-in: pod listener failed")

    def _ready_after(self, pod: dict[str, Any]) -> float:
        md = pod["metadata"]
        note = (md.get("annotations") or {}).get(READY_AFTER_ANNOTATION)
        if note is not None:
            with contextlib.suppress(ValueError):
                return float(note)
        for rule in self._rules:
            if rule.namespace in (None, md.get("namespace")) and md["name"].startswith(rule.prefix):
                return rule.seconds
        return self.default_ready_after

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(self._logged(coro))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        # A task cancelled before its first step never awaits ``coro``: close it then, so it is not reported
        # as "never awaited".
        task.add_done_callback(lambda t: coro.close() if t.cancelled() else None)

    @staticmethod
    async def _logged(coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.debug("kubelet stand-in: %r", err)

    # ------------------------------------------------------------------------------------------ writes

    async def _bind(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": md["name"], "uid": md["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}}
        await self._call("POST", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/binding", body,
                         ok=(409, 404))

    async def _make_ready(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        now = _now()
        conds = [{"type": t, "status": "True", "lastTransitionTime": now}
                 for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        containers = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True,
                       "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}}}
                      for c in pod["spec"].get("containers", [])]
        status = {"phase": "Running", "conditions": conds, "containerStatuses": containers, "hostIP": "127.0.0.1",
                  "podIP": next(self._ips), "startTime": now}
        patch = {"metadata": {"uid": md["uid"]}, "status": status}
        path = f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/status"
        if await self._call("PATCH", path, patch, ctype="application/merge-patch+json", ok=(404, 409)):
            self.readied += 1

    async def _delete(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": md["uid"]}}
        await self._call("DELETE", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}", body,
                         ok=(404, 409))

    async def _ensure_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node, "labels": {
            "kubernetes.io/hostname": self.node, "type": "standin"}}}
        await self._call("POST", "/api/v1/nodes", node, ok=(409,))
        status = {"status": {
            "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "100000", "nvidia.com/gpu": "10000"},
            "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "100000", "nvidia.com/gpu": "10000"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet stand-in", "lastHeartbeatTime": _now(),
                            "lastTransitionTime": _now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }}
        await self._call("PATCH", f"/api/v1/nodes/{self.node}/status", status, ctype="application/merge-patch+json")

    async def _call(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
                    ok: tuple[int, ...] = ()) -> Any:
        """One request; the decoded answer (None for a status listed in ``ok``), RuntimeError otherwise."""
        assert self._http is not None
        data = None if body is None else json.dumps(body)
        async with self._http.request(method, self.url + path, data=data, ssl=self._ssl,
                                      headers={"Content-Type": ctype},
                                      timeout=aiohttp.ClientTimeout(total=30)) as r:
            if r.status in ok:
                return None
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {(await r.text())[:300]}")
            return await r.json()


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions", []))
