"""A small stand-in for the Deployment/ReplicaSet/StatefulSet/LWS controllers and the kubelet.

When enabled, it keeps the pods of every workload at ``spec.replicas`` and marks new pods Ready after a
configurable cold-start delay, then writes the workload's status (replicas, readyReplicas, ...), so a
controller under test sees scale-ups take effect the way they would on a cluster.

Simplifications: Deployments get one ReplicaSet per pod-template hash and a template change swaps
ReplicaSets at once (no surge/unavailable pacing); pods are deleted at once (no graceful termination);
LeaderWorkerSet pods are owned by the LWS directly (no per-group StatefulSets); no scheduling, no nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from typing import Any

from . import errors
from .api import Api
from .clock import now_rfc3339
from .jsonutil import clone
from .store import Event

log = logging.getLogger(__name__)

DEPLOY = ("apps", "deployments")
RS = ("apps", "replicasets")
STS = ("apps", "statefulsets")
LWS = ("leaderworkerset.x-k8s.io", "leaderworkersets")
POD = ("", "pods")
MANAGED = (DEPLOY, RS, STS, LWS)
_KIND_KEY = {"Deployment": DEPLOY, "ReplicaSet": RS, "StatefulSet": STS, "LeaderWorkerSet": LWS}
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP = "leaderworkerset.sigs.k8s.io/group-index"
LWS_WORKER = "leaderworkerset.sigs.k8s.io/worker-index"

Key = tuple[tuple[str, str], str, str]  # (storage key, namespace, name)


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _template_hash(template: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(h[i : i + 2], 16) % 27] for i in range(0, 20, 2))


class WorkloadSimulator:
    def __init__(self, api: Api, *, enabled: bool = False, ready_delay: float = 0.0) -> None:
        self.api = api
        self.enabled = enabled
        self.paused = False
        self.ready_delay = ready_delay
        self._delays: dict[tuple[str | None, str | None], float] = {}
        self._ready_at: dict[tuple[str, str], float] = {}  # pod (ns, name) → loop time it becomes Ready
        self._dirty: set[Key] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        api.store.listeners.append(self._on_event)

    # ---- public controls ----------------------------------------------------------------------------

    def enable(self) -> None:
        self.enabled = True
        self._resync()

    def disable(self) -> None:
        self.enabled = False

    def pause(self) -> None:
        """Freeze: no pods created, deleted or readied until :meth:`resume`."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._resync()

    def set_ready_delay(
        self, seconds: float, *, namespace: str | None = None, name: str | None = None
    ) -> None:
        """Cold start for pods created from now on (for one workload when namespace/name are given)."""
        if namespace is None and name is None:
            self.ready_delay = seconds
        else:
            self._delays[(namespace, name)] = seconds

    async def wait_ready(
        self, kind: str, namespace: str, name: str, replicas: int | None = None, within: float = 10.0
    ) -> dict[str, Any]:
        """Wait until the workload reports readyReplicas == spec.replicas (or ``replicas``)."""
        key = _KIND_KEY[kind]
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while True:
            obj = self.api.store.get(key, namespace, name)
            if obj is not None:
                want = replicas if replicas is not None else int(obj.get("spec", {}).get("replicas", 1))
                st = obj.get("status") or {}
                if st.get("readyReplicas", 0) == want and st.get("replicas", 0) == want:
                    return obj
            if loop.time() > end:
                raise TimeoutError(f"{kind} {namespace}/{name} not ready: {obj and obj.get('status')}")
            await asyncio.sleep(0.02)

    # ---- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kubeemu-workloads")
        self._resync()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- event plumbing -----------------------------------------------------------------------------

    def _resync(self) -> None:
        for key in MANAGED:
            for obj in self.api.store.iter(key):
                self._dirty.add((key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        self._wake.set()

    def _on_event(self, ev: Event) -> None:
        if not self.enabled:
            return
        meta = ev.obj["metadata"]
        if ev.key in MANAGED and ev.type != "DELETED":
            self._dirty.add((ev.key, meta.get("namespace", ""), meta["name"]))
        for ref in meta.get("ownerReferences") or []:
            okey = _KIND_KEY.get(ref.get("kind", ""))
            if okey is not None:
                self._dirty.add((okey, meta.get("namespace", ""), ref["name"]))
        if ev.key == POD and ev.type == "DELETED":
            self._ready_at.pop((meta.get("namespace", ""), meta["name"]), None)
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.enabled or self.paused:
                continue
            # settle: reconciling writes objects, which marks more keys dirty
            for _ in range(50):
                if not self._dirty:
                    break
                batch, self._dirty = self._dirty, set()
                for key in sorted(batch):
                    try:
                        self._reconcile(key)
                    except errors.ApiError as e:
                        log.debug("kubeemu workload reconcile %s: %s", key, e.message)
            self._ready_pods(loop.time())
            if self._ready_at:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(min(self._ready_at.values()), self._wake.set)

    # ---- reconcilers --------------------------------------------------------------------------------

    def _reconcile(self, key: Key) -> None:
        skey, ns, name = key
        obj = self.api.store.get(skey, ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        if skey == DEPLOY:
            self._deployment(obj)
        elif skey in (RS, STS) or skey == LWS:
            self._pods_for(obj, skey)

    def _owned(self, key: tuple[str, str], ns: str, uid: str) -> list[dict[str, Any]]:
        return [
            clone(o)
            for o in self.api.store.iter(key, ns)
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    def _type(self, key: tuple[str, str]) -> Any:
        group, plural = key
        for (g, _v), kinds in self.api.types.items():
            if g == group and plural in kinds:
                return kinds[plural]
        raise errors.not_found(plural, group, "")

    def _deployment(self, d: dict[str, Any]) -> None:
        ns = d["metadata"]["namespace"]
        spec = d.get("spec") or {}
        template = spec.get("template") or {}
        h = _template_hash(template)
        rss = self._owned(RS, ns, d["metadata"]["uid"])
        rs_rt = self._type(RS)
        current = next(
            (r for r in rss if r["metadata"].get("labels", {}).get("pod-template-hash") == h), None
        )
        want = int(spec.get("replicas", 1))
        if current is None:
            labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": h}
            tmpl = clone(template)
            tmpl.setdefault("metadata", {})["labels"] = labels
            sel = clone(spec.get("selector") or {})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            current = self.api.create(
                rs_rt,
                ns,
                {
                    "metadata": {
                        "name": f"{d['metadata']['name']}-{h}",
                        "labels": labels,
                        "ownerReferences": [_owner_ref(d)],
                    },
                    "spec": {"replicas": want, "selector": sel, "template": tmpl},
                },
            )
        elif current["spec"].get("replicas") != want:
            current["spec"]["replicas"] = want
            current = self.api.update(rs_rt, ns, current["metadata"]["name"], current)
        for r in rss:
            if r["metadata"]["name"] != current["metadata"]["name"] and r["spec"].get("replicas", 0) != 0:
                r["spec"]["replicas"] = 0
                self.api.update(rs_rt, ns, r["metadata"]["name"], r)
        rss = self._owned(RS, ns, d["metadata"]["uid"])
        tot = {
            k: sum(int((r.get("status") or {}).get(k, 0)) for r in rss)
            for k in ("replicas", "readyReplicas", "availableReplicas")
        }
        cur_status = next(
            (r.get("status") or {} for r in rss if r["metadata"]["name"] == current["metadata"]["name"]), {}
        )
        status = {
            "observedGeneration": d["metadata"]["generation"],
            **tot,
            "updatedReplicas": int(cur_status.get("replicas", 0)),
            "unavailableReplicas": max(0, want - tot["availableReplicas"]),
        }
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        status["conditions"] = [
            {
                "type": "Available",
                "status": "True" if tot["availableReplicas"] >= want else "False",
                "reason": "MinimumReplicasAvailable"
                if tot["availableReplicas"] >= want
                else "MinimumReplicasUnavailable",
            }
        ]
        self._write_status(DEPLOY, d, status)

    def _delay_for(self, ns: str, name: str) -> float:
        for k in ((ns, name), (None, name), (ns, None)):
            if k in self._delays:
                return self._delays[k]
        return self.ready_delay

    def _pods_for(self, w: dict[str, Any], key: tuple[str, str]) -> None:
        ns, name, uid = w["metadata"]["namespace"], w["metadata"]["name"], w["metadata"]["uid"]
        spec = w.get("spec") or {}
        want = int(spec.get("replicas", 1))
        pods = self._owned(POD, ns, uid)
        # desired pod names → template + extra labels
        desired: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
        if key == STS:
            for i in range(want):
                desired[f"{name}-{i}"] = (
                    spec.get("template") or {},
                    {
                        "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                        "apps.kubernetes.io/pod-index": str(i),
                    },
                )
        elif key == LWS:
            lwt = spec.get("leaderWorkerTemplate") or {}
            size = int(lwt.get("size", 1))
            worker_t = lwt.get("workerTemplate") or {}
            leader_t = lwt.get("leaderTemplate") or worker_t
            for i in range(want):
                base = {LWS_NAME: name, LWS_GROUP: str(i)}
                desired[f"{name}-{i}"] = (leader_t, {**base, LWS_WORKER: "0"})
                for j in range(1, size):
                    desired[f"{name}-{i}-{j}"] = (worker_t, {**base, LWS_WORKER: str(j)})
        else:  # ReplicaSet: random suffixes, keep the oldest
            existing = sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
            for p in existing[:want]:
                desired[p["metadata"]["name"]] = (spec.get("template") or {}, {})
            for _ in range(want - len(desired)):
                suffix = "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                desired[f"{name}-{suffix}"] = (spec.get("template") or {}, {})
        pod_rt = self._type(POD)
        have = {p["metadata"]["name"]: p for p in pods}
        for pname in sorted(set(have) - set(desired), reverse=True):
            self.api.delete(pod_rt, ns, pname)
            self._ready_at.pop((ns, pname), None)
        loop = asyncio.get_running_loop()
        for pname, (tmpl, extra) in desired.items():
            if pname in have:
                continue
            tmeta = tmpl.get("metadata") or {}
            pod = {
                "metadata": {
                    "name": pname,
                    "labels": {**(tmeta.get("labels") or {}), **extra},
                    "annotations": dict(tmeta.get("annotations") or {}),
                    "ownerReferences": [_owner_ref(w)],
                },
                "spec": {**clone(tmpl.get("spec") or {}), "nodeName": "kubeemu-node"},
            }
            pod["spec"].setdefault("containers", [{"name": "main", "image": "kubeemu/placeholder"}])
            created = self.api.create(pod_rt, ns, pod)
            created["status"] = {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()},
                    {
                        "type": "Ready",
                        "status": "False",
                        "lastTransitionTime": now_rfc3339(),
                        "reason": "ContainersNotReady",
                    },
                ],
            }
            self.api.update(pod_rt, ns, pname, created, subresource="status")
            self._ready_at[(ns, pname)] = loop.time() + self._delay_for(ns, name)
        pods = self._owned(POD, ns, uid)
        ready = [p for p in pods if _is_ready(p)]
        if key == LWS:
            groups_ready = sum(
                1
                for i in range(want)
                if all(_is_ready(p) for p in pods if p["metadata"]["labels"].get(LWS_GROUP) == str(i))
                and any(p["metadata"]["labels"].get(LWS_GROUP) == str(i) for p in pods)
            )
            status: dict[str, Any] = {
                "replicas": len({p["metadata"]["labels"].get(LWS_GROUP) for p in pods}),
                "readyReplicas": groups_ready,
                "updatedReplicas": len({p["metadata"]["labels"].get(LWS_GROUP) for p in pods}),
                "hpaPodSelector": f"{LWS_NAME}={name},{LWS_WORKER}=0",
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True" if groups_ready >= want else "False",
                        "reason": "AllGroupsReady" if groups_ready >= want else "GroupsProgressing",
                        "message": "",
                        "lastTransitionTime": now_rfc3339(),
                    }
                ],
            }
        else:
            status = {
                "observedGeneration": w["metadata"]["generation"],
                "replicas": len(pods),
                "readyReplicas": len(ready),
                "availableReplicas": len(ready),
            }
            if key == STS:
                status.update(currentReplicas=len(pods), updatedReplicas=len(pods))
            else:
                status["fullyLabeledReplicas"] = len(pods)
        self._write_status(key, w, status)

    def _write_status(self, key: tuple[str, str], obj: dict[str, Any], status: dict[str, Any]) -> None:
        old = obj.get("status") or {}
        # keep lastTransitionTime stable when the condition did not change, so no-op writes stay no-ops
        for c in status.get("conditions", []):
            prev = next((p for p in old.get("conditions", []) if p.get("type") == c["type"]), None)
            if prev and prev.get("status") == c["status"]:
                c["lastTransitionTime"] = prev.get("lastTransitionTime", c.get("lastTransitionTime"))
        if status == old:
            return
        rt = self._type(key)
        obj["status"] = status
        self.api.update(rt, obj["metadata"]["namespace"], obj["metadata"]["name"], obj, subresource="status")

    def _ready_pods(self, now: float) -> None:
        pod_rt = self._type(POD)
        for (ns, pname), at in list(self._ready_at.items()):
            if at > now:
                continue
            del self._ready_at[(ns, pname)]
            pod = self.api.store.get(POD, ns, pname)
            if pod is None:
                continue
            ts = now_rfc3339()
            containers = (pod.get("spec") or {}).get("containers") or []
            pod["status"] = {
                "phase": "Running",
                "podIP": f"10.0.{hash(pname) % 250}.{hash(ns + pname) % 250 + 1}",
                "hostIP": "10.255.0.1",
                "startTime": ts,
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": ts}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": c.get("name", "main"),
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "image": c.get("image", ""),
                        "imageID": "",
                        "state": {"running": {"startedAt": ts}},
                    }
                    for c in containers
                ],
            }
            self.api.update(pod_rt, ns, pname, pod, subresource="status")


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
