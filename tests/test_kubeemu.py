"""Fidelity tests of the emulated API server, through the real kubernetes_asyncio client.

Each test asserts on resulting state and on the exact wire behaviour (codes, Status bodies, content types)
a controller depends on — these tests are the evidence that controller tests against the emulator mean
something.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.kubeemu import KubeEmulator

NS = "default"
IAS = ("autoscaler.inference.dev", "v1alpha1", "inferenceautoscalers")
MERGE = "application/merge-patch+json"


@pytest.fixture
def kube_server(kube_server_test_crds: KubeEmulator) -> KubeEmulator:
    """These fidelity tests pin the emulator's own test CRD, not the project's generated one."""
    return kube_server_test_crds


def deployment(name: str, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    lab = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or lab},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": lab},
            "template": {
                "metadata": {"labels": lab},
                "spec": {"containers": [{"name": "main", "image": "vllm:latest"}]},
            },
        },
    }


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def ias(name: str = "llama", **spec: Any) -> dict[str, Any]:
    body = {
        "poolRef": {"name": "llama-pool"},
        "roles": {
            "prefill": {"minReplicas": 1, "maxReplicas": 4},
            "decode": {"minReplicas": 1, "maxReplicas": 8},
        },
    }
    body.update(spec)
    return {
        "apiVersion": "autoscaler.inference.dev/v1alpha1",
        "kind": "InferenceAutoscaler",
        "metadata": {"name": name},
        "spec": body,
    }


def status_of(e: ApiException) -> dict[str, Any]:
    body = json.loads(e.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == e.status
    return body  # type: ignore[no-any-return]


# ---- CRUD, status codes and Status bodies --------------------------------------------------------------


async def test_crud_codes_and_status_bodies(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    _, code, _ = await apps.create_namespaced_deployment_with_http_info(NS, deployment("web"))
    assert code == 201
    got = await apps.read_namespaced_deployment("web", NS)
    assert got.metadata.uid and got.metadata.creation_timestamp and got.metadata.generation == 1
    assert int(got.metadata.resource_version) > 0

    with pytest.raises(ApiException) as e404:
        await apps.read_namespaced_deployment("nope", NS)
    body = status_of(e404.value)
    assert (body["reason"], body["code"]) == ("NotFound", 404)
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    with pytest.raises(ApiException) as edup:
        await apps.create_namespaced_deployment(NS, deployment("web"))
    body = status_of(edup.value)
    assert (body["reason"], body["code"]) == ("AlreadyExists", 409)
    assert body["message"] == 'deployments.apps "web" already exists'

    stale = got.metadata.resource_version
    got.spec.replicas = 3
    updated = await apps.replace_namespaced_deployment("web", NS, got)
    assert updated.spec.replicas == 3 and updated.metadata.generation == 2
    got.spec.replicas = 4  # still carries the stale resourceVersion
    with pytest.raises(ApiException) as econf:
        await apps.replace_namespaced_deployment("web", NS, got)
    body = status_of(econf.value)
    assert (body["reason"], body["code"]) == ("Conflict", 409)
    assert "the object has been modified" in body["message"] and stale != updated.metadata.resource_version

    await apps.delete_namespaced_deployment("web", NS)
    with pytest.raises(ApiException) as egone:
        await apps.read_namespaced_deployment("web", NS)
    assert egone.value.status == 404


async def test_core_kinds_and_namespaces(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod("missing", pod("p"))
    assert status_of(e.value)["message"] == 'namespaces "missing" not found'
    await core.create_namespace({"metadata": {"name": "serving"}})
    p = await core.create_namespaced_pod("serving", pod("p"))
    assert p.status.phase == "Pending"  # server-set on create, as the pod strategy does
    cm = await core.create_namespaced_config_map("serving", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert cm.data == {"a": "1"}
    ns = await core.read_namespace("serving")
    assert ns.status.phase == "Active" and ns.metadata.labels["kubernetes.io/metadata.name"] == "serving"
    await core.delete_namespace("serving")
    with pytest.raises(ApiException) as e2:
        await core.read_namespaced_pod("p", "serving")
    assert e2.value.status == 404


async def test_invalid_builtin_and_name(kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    bad = deployment("web")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as e:
        await apps.create_namespaced_deployment(NS, bad)
    body = status_of(e.value)
    assert (
        body["reason"] == "Invalid"
        and body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    )
    with pytest.raises(ApiException) as e2:
        await apps.create_namespaced_deployment(NS, deployment("Bad_Name"))
    assert status_of(e2.value)["details"]["causes"][0]["field"] == "metadata.name"


async def test_list_cluster_wide_namespaced_and_pages(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespace({"metadata": {"name": "other"}})
    for i in range(5):
        await core.create_namespaced_pod(NS, pod(f"p{i}"))
    await core.create_namespaced_pod("other", pod("q"))
    assert len((await core.list_namespaced_pod(NS)).items) == 5
    everywhere = await core.list_pod_for_all_namespaces()
    assert {(p.metadata.namespace, p.metadata.name) for p in everywhere.items} >= {("other", "q"), (NS, "p0")}
    # pagination: limit + continue, as client-go's pager and kubectl use it
    page1 = await core.list_namespaced_pod(NS, limit=2)
    assert len(page1.items) == 2 and page1.metadata._continue and page1.metadata.remaining_item_count == 3
    page2 = await core.list_namespaced_pod(NS, limit=10, _continue=page1.metadata._continue)
    assert [p.metadata.name for p in page2.items] == ["p2", "p3", "p4"] and not page2.metadata._continue
    # raw list bodies carry kind (kubectl needs it) and no per-item kind for built-ins, like the real server
    async with aiohttp.ClientSession() as s, s.get(f"{kube_server.url}/api/v1/namespaces/default/pods") as r:
        raw = await r.json()
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1" and "kind" not in raw["items"][0]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("role=prefill", {"a", "b"}),
        ("role==prefill", {"a", "b"}),
        ("role!=prefill", {"c", "d", "e"}),  # != matches objects without the key
        ("role in (prefill,decode)", {"a", "b", "c"}),
        ("role notin (prefill)", {"c", "d", "e"}),
        ("role", {"a", "b", "c", "d"}),
        ("!role", {"e"}),
        ("role=prefill,tier=gpu", {"a"}),
        ("role in (prefill, decode),!tier", {"b", "c"}),
        ("tier,role notin (both)", {"a"}),
        ("gen>1", {"b"}),
        ("", {"a", "b", "c", "d", "e"}),
    ],
)
async def test_label_selector_syntax(
    kube_server: KubeEmulator, kube_client: client.ApiClient, selector: str, expected: set[str]
) -> None:
    labels = {
        "a": {"role": "prefill", "tier": "gpu", "gen": "1"},
        "b": {"role": "prefill", "gen": "2"},
        "c": {"role": "decode"},
        "d": {"role": "both", "tier": "gpu"},
        "e": {},
    }
    for name, lab in labels.items():
        kube_server.create(pod(name, lab) | {"metadata": {"name": name, "namespace": NS, "labels": lab}})
    core = client.CoreV1Api(kube_client)
    got = await core.list_namespaced_pod(NS, label_selector=selector)
    assert {p.metadata.name for p in got.items} == expected


async def test_bad_selectors_are_400(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    for kwargs in (
        {"label_selector": "role in (a"},
        {"label_selector": "a=b=c"},
        {"field_selector": "spec.unknown=1"},
    ):
        with pytest.raises(ApiException) as e:
            await core.list_namespaced_pod(NS, **kwargs)
        assert status_of(e.value)["reason"] == "BadRequest"


async def test_field_selectors(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespace({"metadata": {"name": "other"}})
    for ns in (NS, "other"):
        for n in ("x", "y"):
            await core.create_namespaced_pod(ns, pod(n))
    got = await core.list_pod_for_all_namespaces(field_selector="metadata.name=x,metadata.namespace!=other")
    assert [(p.metadata.namespace, p.metadata.name) for p in got.items] == [(NS, "x")]
    custom = client.CustomObjectsApi(kube_client)
    await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], ias("a"))
    await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], ias("b"))
    lst = await custom.list_namespaced_custom_object(*IAS[:2], NS, IAS[2], field_selector="metadata.name=b")
    assert [o["metadata"]["name"] for o in lst["items"]] == ["b"]
    ev = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "InferenceAutoscaler", "name": "a", "namespace": NS},
        "reason": "Scaled",
        "type": "Normal",
    }
    await core.create_namespaced_event(NS, ev)
    evs = await core.list_namespaced_event(NS, field_selector="involvedObject.name=a,reason=Scaled")
    assert [e.metadata.name for e in evs.items] == ["e1"]


# ---- watch -----------------------------------------------------------------------------------------------


async def _collect(stream: watch.Watch, gen: Any, n: int, within: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def run() -> None:
        async for ev in gen:
            out.append(ev)
            if len(out) >= n:
                stream.stop()
                break

    await asyncio.wait_for(run(), within)
    return out


async def test_watch_resume_from_resource_version(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    listed = await core.list_namespaced_config_map(NS)
    rv = listed.metadata.resource_version
    await core.patch_namespaced_config_map("a", NS, {"data": {"k": "v"}})
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "b"}})
    await core.delete_namespaced_config_map("a", NS)
    w = watch.Watch()
    async with w:
        evs = await _collect(
            w, w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=5), 3
        )
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    rvs = [int(e["object"].metadata.resource_version) for e in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_watch_without_rv_starts_with_synthetic_adds(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "pre"}})
    w = watch.Watch()
    async with w:
        gen = w.stream(core.list_namespaced_config_map, NS, timeout_seconds=5)
        first = await _collect(w, gen, 1)
    assert (first[0]["type"], first[0]["object"].metadata.name) == ("ADDED", "pre")


async def test_watch_bookmarks(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    rv = (await core.list_namespaced_config_map(NS)).metadata.resource_version
    kube_server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "unrelated", "namespace": "kube-system"},
        }
    )
    w = watch.Watch()
    async with w:
        evs = await _collect(
            w,
            w.stream(
                core.list_namespaced_config_map,
                NS,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=5,
            ),
            1,
        )
    assert evs[0]["type"] == "BOOKMARK"
    assert int(evs[0]["raw_object"]["metadata"]["resourceVersion"]) == kube_server.resource_version
    assert w.resource_version == str(kube_server.resource_version)  # the client resumes from the bookmark


async def test_watch_label_selector_transitions(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_pod(NS, pod("p", {"role": "decode"}))
    rv = (await core.list_namespaced_pod(NS)).metadata.resource_version
    await core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"role": "prefill"}}})
    await core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"role": "decode"}}})
    w = watch.Watch()
    async with w:
        evs = await _collect(
            w,
            w.stream(
                core.list_namespaced_pod,
                NS,
                label_selector="role=prefill",
                resource_version=rv,
                timeout_seconds=5,
            ),
            2,
        )
    # entering the selector is ADDED, leaving it is DELETED, as the watch cache reports it
    assert [e["type"] for e in evs] == ["ADDED", "DELETED"]


async def test_watch_410_after_compaction_raises_after_one_retry(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    old_rv = (await core.list_namespaced_config_map(NS)).metadata.resource_version
    await core.patch_namespaced_config_map("a", NS, {"data": {"x": "1"}})
    kube_server.compact()
    kube_server.clear_requests()
    w = watch.Watch()
    with pytest.raises(ApiException) as e:
        async with w:
            # no timeout_seconds: the client's "watch forever" mode, which retries a 410 exactly once
            async for _ in w.stream(core.list_namespaced_config_map, NS, resource_version=old_rv):
                pass
    assert e.value.status == 410 and "Expired" in str(e.value.reason)
    assert kube_server.request_count("GET", "/configmaps", watch=True) == 2
    # raw wire shape: HTTP 200, then one ERROR event carrying a 410 Status
    url = f"{kube_server.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}"
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        lines = [json.loads(x) for x in (await r.text()).splitlines()]
    assert lines[0]["type"] == "ERROR"
    assert {k: lines[0]["object"][k] for k in ("kind", "code", "reason")} == {
        "kind": "Status",
        "code": 410,
        "reason": "Expired",
    }
    # an Exact list at the compacted revision is an HTTP 410
    with pytest.raises(ApiException) as el:
        await core.list_namespaced_config_map(NS, resource_version=old_rv, resource_version_match="Exact")
    assert el.value.status == 410


async def test_watch_expire_once_is_survived_by_the_retry(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    rv = (await core.list_namespaced_config_map(NS)).metadata.resource_version
    kube_server.faults.expire_next_watch(1)

    async def write_later() -> None:
        await asyncio.sleep(0.2)
        await core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})

    task = asyncio.create_task(write_later())
    w = watch.Watch()
    async with w:
        evs = await _collect(w, w.stream(core.list_namespaced_config_map, NS, resource_version=rv), 1)
    await task
    assert (evs[0]["type"], evs[0]["object"].metadata.name) == ("ADDED", "after")


async def test_watch_timeout_seconds_ends_stream(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    w = watch.Watch()
    async with w:
        async for _ in w.stream(core.list_namespaced_config_map, NS, resource_version="1", timeout_seconds=1):
            pass
    assert 0.9 <= loop.time() - t0 < 3


async def test_custom_object_watch_and_cluster_wide_list(kube_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    core = client.CoreV1Api(kube_client)
    await core.create_namespace({"metadata": {"name": "serving"}})
    await custom.create_namespaced_custom_object(*IAS[:2], "serving", IAS[2], ias("x"))
    all_ns = await custom.list_cluster_custom_object(*IAS)
    assert [(o["metadata"]["namespace"], o["kind"]) for o in all_ns["items"]] == [
        ("serving", "InferenceAutoscaler")
    ]
    w = watch.Watch()
    async with w:
        evs = await _collect(w, w.stream(custom.list_cluster_custom_object, *IAS, timeout_seconds=5), 1)
    assert evs[0]["type"] == "ADDED" and evs[0]["object"]["metadata"]["name"] == "x"


# ---- patch content types ---------------------------------------------------------------------------------


async def test_patch_content_types(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    d = deployment("web")
    d["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy"})
    await apps.create_namespaced_deployment(NS, d)
    # strategic merge (the client's default for a dict body on built-ins): containers merge by name
    patched = await apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "vllm:v2"}]}}}}
    )
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"main": "vllm:v2", "sidecar": "envoy"}
    # merge patch replaces lists wholesale
    patched = await apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}},
        _content_type=MERGE,
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]
    # JSON patch (RFC 6902), including a failing test op → 422
    patched = await apps.patch_namespaced_deployment(
        "web",
        NS,
        [{"op": "replace", "path": "/spec/replicas", "value": 5}],
        _content_type="application/json-patch+json",
    )
    assert patched.spec.replicas == 5
    with pytest.raises(ApiException) as e:
        await apps.patch_namespaced_deployment(
            "web",
            NS,
            [{"op": "test", "path": "/spec/replicas", "value": 1}],
            _content_type="application/json-patch+json",
        )
    assert e.value.status == 422
    # stale resourceVersion inside a patch is a precondition
    with pytest.raises(ApiException) as e2:
        await apps.patch_namespaced_deployment(
            "web", NS, {"metadata": {"resourceVersion": "2"}}, _content_type=MERGE
        )
    assert status_of(e2.value)["reason"] == "Conflict"
    # unknown content type → 415
    async with (
        aiohttp.ClientSession() as s,
        s.patch(
            f"{kube_server.url}/apis/apps/v1/namespaces/default/deployments/web",
            data=b"{}",
            headers={"Content-Type": "text/plain"},
        ) as r,
    ):
        assert r.status == 415
        assert (await r.json())["reason"] == "UnsupportedMediaType"


async def test_custom_objects_reject_strategic_merge(kube_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], ias())
    with pytest.raises(ApiException) as e:
        await custom.patch_namespaced_custom_object(
            *IAS[:2],
            NS,
            IAS[2],
            "llama",
            {"spec": {"actuation": "HPA"}},
            _content_type="application/strategic-merge-patch+json",
        )
    body = status_of(e.value)
    assert e.value.status == 415 and "application/merge-patch+json" in body["message"]
    # a merge-style dict sent as the client's default JSON patch is malformed for the server (pitfall)
    with pytest.raises(ApiException) as e2:
        await custom.patch_namespaced_custom_object(
            *IAS[:2], NS, IAS[2], "llama", {"spec": {"actuation": "HPA"}}
        )
    assert e2.value.status in (400, 422)
    got = await custom.patch_namespaced_custom_object(
        *IAS[:2], NS, IAS[2], "llama", {"spec": {"actuation": "HPA"}}, _content_type=MERGE
    )
    assert got["spec"]["actuation"] == "HPA"


# ---- status and scale subresources -----------------------------------------------------------------------


async def test_status_subresource_and_generation(kube_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    body = ias()
    body["status"] = {"observedGeneration": 99}
    created = await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], body)
    assert "status" not in created and created["metadata"]["generation"] == 1  # status dropped on create
    st = await custom.patch_namespaced_custom_object_status(
        *IAS[:2],
        NS,
        IAS[2],
        "llama",
        {
            "status": {"observedGeneration": 1, "roles": {"prefill": {"current": 2}}},
            "spec": {"actuation": "HPA"},
        },
        _content_type=MERGE,
    )
    assert st["status"]["roles"]["prefill"]["current"] == 2
    assert st["spec"]["actuation"] == "Direct"  # /status ignores spec
    assert st["metadata"]["generation"] == 1  # status writes do not bump generation
    # writes to the main resource ignore .status
    st["status"]["roles"]["prefill"]["current"] = 7
    st["spec"]["actuation"] = "DryRun"
    main = await custom.replace_namespaced_custom_object(*IAS[:2], NS, IAS[2], "llama", st)
    assert main["status"]["roles"]["prefill"]["current"] == 2 and main["metadata"]["generation"] == 2
    # metadata-only changes do not bump generation either
    lab = await custom.patch_namespaced_custom_object(
        *IAS[:2], NS, IAS[2], "llama", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE
    )
    assert lab["metadata"]["generation"] == 2
    # no-op writes keep the resourceVersion (and emit no watch event)
    again = await custom.patch_namespaced_custom_object(
        *IAS[:2], NS, IAS[2], "llama", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE
    )
    assert again["metadata"]["resourceVersion"] == lab["metadata"]["resourceVersion"]
    # replace_status with stale rv → 409
    stale = dict(main)
    stale["metadata"] = {**main["metadata"], "resourceVersion": "1"}
    with pytest.raises(ApiException) as e:
        await custom.replace_namespaced_custom_object_status(*IAS[:2], NS, IAS[2], "llama", stale)
    assert e.value.status == 409


async def test_deployment_scale_subresource(kube_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_client)
    await apps.create_namespaced_deployment(NS, deployment("web", replicas=2))
    sc = await apps.read_namespaced_deployment_scale("web", NS)
    assert (sc.kind, sc.api_version, sc.spec.replicas, sc.status.selector) == (
        "Scale",
        "autoscaling/v1",
        2,
        "app=web",
    )
    out = await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert out.spec.replicas == 5
    out = await apps.patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 6}}, _content_type=MERGE
    )
    assert out.spec.replicas == 6
    d = await apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 6 and d.metadata.generation == 3
    sc = await apps.read_namespaced_deployment_scale("web", NS)
    sc.metadata.resource_version = "3"
    sc.spec.replicas = 1
    with pytest.raises(ApiException) as e:
        await apps.replace_namespaced_deployment_scale("web", NS, sc)
    assert e.value.status == 409
    with pytest.raises(ApiException) as e2:
        await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert status_of(e2.value)["details"]["causes"][0]["field"] == "spec.replicas"
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "db"}},
            "serviceName": "db",
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c"}]}},
        },
    }
    await apps.create_namespaced_stateful_set(NS, sts)
    out2 = await apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 3}})
    assert out2.spec.replicas == 3


async def test_custom_scale_subresource_paths(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    g, v, p = "test.kubeemu.dev", "v1", "modelservers"
    await custom.create_namespaced_custom_object(
        g,
        v,
        NS,
        p,
        {"apiVersion": f"{g}/{v}", "kind": "ModelServer", "metadata": {"name": "m"}, "spec": {"size": 2}},
    )
    kube_server.set_status(f"{g}/{v}", "ModelServer", "m", {"running": 2, "selector": "app=m"}, NS)
    sc = await custom.get_namespaced_custom_object_scale(g, v, NS, p, "m")
    assert (sc["spec"]["replicas"], sc["status"]["replicas"], sc["status"]["selector"]) == (2, 2, "app=m")
    out = await custom.patch_namespaced_custom_object_scale(
        g, v, NS, p, "m", {"spec": {"replicas": 4}}, _content_type=MERGE
    )
    assert out["spec"]["replicas"] == 4
    obj = await custom.get_namespaced_custom_object(g, v, NS, p, "m")
    assert obj["spec"]["size"] == 4 and obj["metadata"]["generation"] == 2
    # the CRD schema still applies through /scale (maximum: 64)
    with pytest.raises(ApiException) as e:
        await custom.patch_namespaced_custom_object_scale(
            g, v, NS, p, "m", {"spec": {"replicas": 65}}, _content_type=MERGE
        )
    assert e.value.status == 422 and status_of(e.value)["details"]["causes"][0]["field"] == "spec.size"


async def test_lws_scale_and_upstream_schema(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    g, v, p = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
    lws = {
        "apiVersion": f"{g}/{v}",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "dec"},
        "spec": {
            "replicas": 2,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {
                    "metadata": {"labels": {"llm-d.ai/role": "decode"}},
                    "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
                },
            },
        },
    }
    await custom.create_namespaced_custom_object(g, v, NS, p, lws)
    out = await custom.patch_namespaced_custom_object_scale(
        g, v, NS, p, "dec", {"spec": {"replicas": 3}}, _content_type=MERGE
    )
    assert out["spec"]["replicas"] == 3 and out["kind"] == "Scale"


# ---- CRD validation --------------------------------------------------------------------------------------


async def _create_invalid(kube_client: client.ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    custom = client.CustomObjectsApi(kube_client)
    with pytest.raises(ApiException) as e:
        await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], body)
    assert e.value.status == 422
    st = status_of(e.value)
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "InferenceAutoscaler"
    return st


async def test_crd_cel_rule_names_the_field(kube_client: client.ApiClient) -> None:
    st = await _create_invalid(kube_client, ias(roles={"prefill": {"minReplicas": 5, "maxReplicas": 2}}))
    assert st["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.roles.prefill",
            "message": 'Invalid value: "object": minReplicas must be less than or equal to maxReplicas',
        }
    ]
    assert st["message"].startswith(
        'InferenceAutoscaler.autoscaler.inference.dev "llama" is invalid: spec.roles.prefill: Invalid value'
    )
    # fieldPath on a rule points below the node that declares it
    st2 = await _create_invalid(kube_client, ias(slo={"ttft": {"percentile": 95}}))
    assert st2["details"]["causes"][0]["field"] == "spec.slo.ttft"


@pytest.mark.parametrize(
    ("spec", "field", "reason", "fragment"),
    [
        (
            {"actuation": "Sometimes"},
            "spec.actuation",
            "FieldValueNotSupported",
            'Unsupported value: "Sometimes": supported values: "Direct", "HPA", "DryRun"',
        ),
        ({"poolRef": {"name": "Bad_Name"}}, "spec.poolRef.name", "FieldValueInvalid", "in body should match"),
        ({"poolRef": {}}, "spec.poolRef.name", "FieldValueRequired", "Required value"),
        (
            {"roles": {"decode": {"minReplicas": 1, "maxReplicas": 5000}}},
            "spec.roles.decode.maxReplicas",
            "FieldValueInvalid",
            "should be less than or equal to 1000",
        ),
        (
            {"roles": {"decode": {"minReplicas": "one", "maxReplicas": 5}}},
            "spec.roles.decode.minReplicas",
            "FieldValueTypeInvalid",
            "must be of type integer",
        ),
        (
            {"slo": {"ttft": {"percentile": 100, "target": "1s"}}},
            "spec.slo.ttft.percentile",
            "FieldValueInvalid",
            "should be less than 100",
        ),
    ],
)
async def test_crd_schema_errors(
    kube_client: client.ApiClient, spec: dict[str, Any], field: str, reason: str, fragment: str
) -> None:
    st = await _create_invalid(kube_client, ias(**spec))
    cause = st["details"]["causes"][0]
    assert (cause["field"], cause["reason"]) == (field, reason)
    assert fragment in cause["message"] and field in st["message"]


async def test_crd_pruning_defaults_and_strict(kube_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    body = ias()
    body["spec"]["unknownKnob"] = 1
    body["spec"]["annotationsPassthrough"] = {"free": {"form": True}}
    with pytest.raises(ApiException) as e:
        await custom.create_namespaced_custom_object(*IAS[:2], NS, IAS[2], body, field_validation="Strict")
    assert e.value.status == 400 and 'unknown field "spec.unknownKnob"' in status_of(e.value)["message"]
    created, _, headers = await custom.create_namespaced_custom_object_with_http_info(
        *IAS[:2], NS, IAS[2], body
    )
    assert "unknownKnob" not in created["spec"]  # pruned, like a structural schema does
    assert created["spec"]["annotationsPassthrough"] == {"free": {"form": True}}  # preserve-unknown-fields
    assert created["spec"]["actuation"] == "Direct"  # schema default
    assert 'unknown field \\"spec.unknownKnob\\"' in headers["Warning"]


async def test_upstream_inferencepool_cel_rules(kube_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_client)
    g, v = "inference.networking.k8s.io", "v1"
    pool = {
        "apiVersion": f"{g}/{v}",
        "kind": "InferencePool",
        "metadata": {"name": "pool"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
        },
    }
    ok = await custom.create_namespaced_custom_object(g, v, NS, "inferencepools", pool)
    assert ok["spec"]["targetPorts"] == [{"number": 8000}]
    pool["metadata"]["name"] = "pool2"
    pool["spec"]["endpointPickerRef"] = {"name": "epp"}  # kind defaults to Service → port required (CEL)
    with pytest.raises(ApiException) as e:
        await custom.create_namespaced_custom_object(g, v, NS, "inferencepools", pool)
    st = status_of(e.value)
    assert e.value.status == 422
    assert "port is required when kind is 'Service' or unspecified" in st["message"]
    assert st["details"]["causes"][0]["field"] == "spec.endpointPickerRef"
    old = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferencePool",
        "metadata": {"name": "pool"},
        "spec": {"selector": {"app": "vllm"}, "targetPortNumber": 8000, "extensionRef": {"name": "epp"}},
    }
    created = await custom.create_namespaced_custom_object(
        "inference.networking.x-k8s.io", "v1alpha2", NS, "inferencepools", old
    )
    assert created["spec"]["targetPortNumber"] == 8000


async def test_dynamic_crd_registration(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    created = await ext.create_custom_resource_definition(crd)
    assert {c.type: c.status for c in created.status.conditions}["Established"] == "True"
    custom = client.CustomObjectsApi(kube_client)
    w = await custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        NS,
        "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}},
    )
    assert w["spec"]["size"] == 3
    async with aiohttp.ClientSession() as s, s.get(f"{kube_server.url}/apis/example.com/v1") as r:
        res = (await r.json())["resources"]
    assert res[0]["name"] == "widgets" and res[0]["shortNames"] == ["wd"]
    await ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as e:
        await custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert e.value.status == 404


# ---- discovery -------------------------------------------------------------------------------------------


async def test_discovery(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    groups = await client.ApisApi(kube_client).get_api_versions()
    names = {g.name: g.preferred_version.group_version for g in groups.groups}
    assert (
        names["apps"] == "apps/v1"
        and names["autoscaler.inference.dev"] == "autoscaler.inference.dev/v1alpha1"
    )
    assert "inference.networking.x-k8s.io" in names and "leaderworkerset.x-k8s.io" in names
    apps = await client.AppsV1Api(kube_client).get_api_resources()
    by_name = {r.name: r for r in apps.resources}
    assert (by_name["deployments/scale"].kind, by_name["deployments/scale"].group) == ("Scale", "autoscaling")
    assert "deployments/status" in by_name and by_name["deployments"].short_names == ["deploy"]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{kube_server.url}/apis/autoscaler.inference.dev/v1alpha1") as r:
            res = {x["name"]: x for x in (await r.json())["resources"]}
        async with s.get(f"{kube_server.url}/api") as r:
            assert (await r.json())["versions"] == ["v1"]
        async with s.get(f"{kube_server.url}/version") as r:
            assert (await r.json())["major"] == "1"
        async with s.get(f"{kube_server.url}/apis/nothing.example/v1") as r:
            assert r.status == 404
    ias_res = res["inferenceautoscalers"]
    assert (
        ias_res["shortNames"] == ["ias"]
        and ias_res["categories"] == ["autoscaling"]
        and ias_res["namespaced"]
    )
    assert "inferenceautoscalers/status" in res
    assert set(ias_res["verbs"]) >= {"get", "list", "watch", "create", "update", "patch", "delete"}


async def test_table_output(kube_server: KubeEmulator) -> None:
    kube_server.create(ias() | {"metadata": {"name": "llama", "namespace": NS}})
    kube_server.set_status(
        "autoscaler.inference.dev/v1alpha1",
        "InferenceAutoscaler",
        "llama",
        {
            "roles": {"prefill": {"current": 3}, "decode": {"current": 6}},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
        NS,
    )
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    url = f"{kube_server.url}/apis/autoscaler.inference.dev/v1alpha1/namespaces/default/inferenceautoscalers"
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Accept": accept}) as r:
        tbl = await r.json()
    assert tbl["kind"] == "Table" and tbl["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in tbl["columnDefinitions"]] == [
        "Name",
        "Pool",
        "Prefill",
        "Decode",
        "Actuation",
        "Ready",
        "Age",
    ]
    cells = tbl["rows"][0]["cells"]
    assert cells[:6] == ["llama", "llama-pool", 3, 6, "Direct", "True"]
    assert cells[6].endswith("s")  # Age is rendered server-side as a duration
    assert tbl["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


# ---- fault injection and request log ---------------------------------------------------------------------


async def test_fault_fail_next_and_request_log(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_server.faults.fail_next(2, status=503, method="POST", path=r"/configmaps$")
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            await core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
        assert e.value.status == 503
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})  # third one goes through
    posts = [r for r in kube_server.requests if r.method == "POST"]
    assert [r.status for r in posts] == [503, 503, 201]
    assert posts[0].content_type.startswith("application/json")
    assert kube_server.request_count("POST", "/configmaps") == 3


async def test_fault_conflict_storm_and_latency(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(kube_client)
    await apps.create_namespaced_deployment(NS, deployment("web"))
    kube_server.faults.conflict_storm(3, path="/deployments/web/scale")
    codes = []
    for _ in range(4):
        try:
            await apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
            codes.append(200)
        except ApiException as e:
            codes.append(e.status)
    assert codes == [409, 409, 409, 200]
    kube_server.faults.add_latency(0.3, method="GET", path="/deployments/web$")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await apps.read_namespaced_deployment("web", NS)
    assert loop.time() - t0 >= 0.3
    kube_server.faults.clear()
    t0 = loop.time()
    await apps.read_namespaced_deployment("web", NS)
    assert loop.time() - t0 < 0.3


async def test_fault_fraction_is_seeded(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    kube_server.faults.fail_fraction(0.5, status=500, method="GET", seed=7)
    results = []
    for _ in range(20):
        try:
            await core.list_namespaced_config_map(NS)
            results.append(True)
        except ApiException:
            results.append(False)
    assert 3 <= results.count(False) <= 17


async def test_fault_drop_watches(kube_server: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    w = watch.Watch()
    ended = asyncio.Event()

    async def consume() -> None:
        async with w:
            async for _ in w.stream(
                core.list_namespaced_config_map, NS, resource_version="1", timeout_seconds=30
            ):
                pass
        ended.set()

    task = asyncio.create_task(consume())
    for _ in range(100):
        if kube_server.api.store.watchers:
            break
        await asyncio.sleep(0.01)
    assert kube_server.faults.drop_watches() == 1
    await asyncio.wait_for(ended.wait(), 3)
    await task


# ---- workload simulator ----------------------------------------------------------------------------------


async def test_workload_simulator_deployment(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_server.workloads.set_ready_delay(0.3)
    kube_server.workloads.enable()
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    await apps.create_namespaced_deployment(NS, deployment("dec", replicas=2))
    await asyncio.sleep(0.1)
    pods = (await core.list_namespaced_pod(NS, label_selector="app=dec")).items
    assert len(pods) == 2 and all(p.status.phase == "Pending" for p in pods)  # cold start
    d = await kube_server.workloads.wait_ready("Deployment", NS, "dec", within=5)
    assert d["status"]["readyReplicas"] == 2
    pods = (await core.list_namespaced_pod(NS, label_selector="app=dec")).items
    assert all(p.status.phase == "Running" for p in pods)
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)
    await apps.patch_namespaced_deployment_scale("dec", NS, {"spec": {"replicas": 3}})
    await kube_server.workloads.wait_ready("Deployment", NS, "dec", replicas=3, within=5)
    await apps.patch_namespaced_deployment_scale("dec", NS, {"spec": {"replicas": 1}})
    await kube_server.workloads.wait_ready("Deployment", NS, "dec", replicas=1, within=5)
    assert len((await core.list_namespaced_pod(NS, label_selector="app=dec")).items) == 1
    sc = await apps.read_namespaced_deployment_scale("dec", NS)
    assert sc.status.replicas == 1
    # pause freezes the fleet: a scale-up creates nothing until resume
    kube_server.workloads.pause()
    await apps.patch_namespaced_deployment_scale("dec", NS, {"spec": {"replicas": 2}})
    await asyncio.sleep(0.1)
    assert len((await core.list_namespaced_pod(NS, label_selector="app=dec")).items) == 1
    kube_server.workloads.resume()
    await kube_server.workloads.wait_ready("Deployment", NS, "dec", replicas=2, within=5)
    await apps.delete_namespaced_deployment("dec", NS)
    assert (await core.list_namespaced_pod(NS, label_selector="app=dec")).items == []  # cascading delete


async def test_workload_simulator_statefulset_and_lws(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_server.workloads.enable()
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    custom = client.CustomObjectsApi(kube_client)
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "pre"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "pre"}},
            "serviceName": "pre",
            "template": {"metadata": {"labels": {"app": "pre"}}, "spec": {"containers": [{"name": "c"}]}},
        },
    }
    await apps.create_namespaced_stateful_set(NS, sts)
    await kube_server.workloads.wait_ready("StatefulSet", NS, "pre", within=5)
    names = sorted(
        p.metadata.name for p in (await core.list_namespaced_pod(NS, label_selector="app=pre")).items
    )
    assert names == ["pre-0", "pre-1"]
    g, v = "leaderworkerset.x-k8s.io", "v1"
    lws = {
        "apiVersion": f"{g}/{v}",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "dec"},
        "spec": {
            "replicas": 2,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {
                    "metadata": {"labels": {"llm-d.ai/role": "decode"}},
                    "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
                },
            },
        },
    }
    await custom.create_namespaced_custom_object(g, v, NS, "leaderworkersets", lws)
    obj = await kube_server.workloads.wait_ready("LeaderWorkerSet", NS, "dec", within=5)
    assert obj["status"]["hpaPodSelector"].startswith("leaderworkerset.sigs.k8s.io/name=dec")
    pods = (await core.list_namespaced_pod(NS, label_selector="llm-d.ai/role=decode")).items
    assert sorted(p.metadata.name for p in pods) == ["dec-0", "dec-0-1", "dec-1", "dec-1-1"]
    sc = await custom.get_namespaced_custom_object_scale(g, v, NS, "leaderworkersets", "dec")
    assert sc["status"] == {"replicas": 2, "selector": obj["status"]["hpaPodSelector"]}


# ---- auth reviews, leases, events ------------------------------------------------------------------------


async def test_token_and_subject_access_review(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_server.auth.add_token(
        "t0k", "system:serviceaccount:kube-system:hpa", groups=["system:serviceaccounts"]
    )
    kube_server.auth.allow("system:serviceaccounts", "get", "*", group="external.metrics.k8s.io")
    authn = client.AuthenticationV1Api(kube_client)
    ok = await authn.create_token_review({"spec": {"token": "t0k"}})
    assert ok.status.authenticated and ok.status.user.username == "system:serviceaccount:kube-system:hpa"
    bad = await authn.create_token_review({"spec": {"token": "nope"}})
    assert not bad.status.authenticated
    authz = client.AuthorizationV1Api(kube_client)
    ra = {"verb": "get", "group": "external.metrics.k8s.io", "resource": "ttft", "namespace": NS}
    yes = await authz.create_subject_access_review(
        {
            "spec": {
                "user": "system:serviceaccount:kube-system:hpa",
                "groups": ["system:serviceaccounts"],
                "resourceAttributes": ra,
            }
        }
    )
    assert yes.status.allowed
    no = await authz.create_subject_access_review({"spec": {"user": "mallory", "resourceAttributes": ra}})
    assert not no.status.allowed


async def test_lease_and_events_v1(kube_client: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(kube_client)
    lease = await coord.create_namespaced_lease(
        NS,
        {
            "metadata": {"name": "leader"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2025-01-01T00:00:00.000000Z",
            },
        },
    )
    lease.spec.holder_identity = "b"
    await coord.replace_namespaced_lease("leader", NS, lease)
    with pytest.raises(ApiException) as e:  # the loser of a race to take the lease gets 409
        await coord.replace_namespaced_lease("leader", NS, lease)
    assert e.value.status == 409
    ev = client.EventsV1Api(kube_client)
    await ev.create_namespaced_event(
        NS,
        {
            "metadata": {"name": "e1"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "Scale",
            "reason": "ScaledUp",
            "type": "Normal",
            "regarding": {"kind": "InferenceAutoscaler", "name": "llama"},
        },
    )
    got = await ev.list_namespaced_event(NS, field_selector="regarding.name=llama")
    assert [e.reason for e in got.items] == ["ScaledUp"]
    # One store, two shapes: the same Event through core v1, selected on involvedObject.
    core = await client.CoreV1Api(kube_client).list_namespaced_event(
        NS, field_selector="involvedObject.name=llama"
    )
    assert [(e.reason, e.reporting_component, e.involved_object.kind) for e in core.items] == [
        ("ScaledUp", "x", "InferenceAutoscaler")
    ]
    hpa = client.AutoscalingV2Api(kube_client)
    await hpa.create_namespaced_horizontal_pod_autoscaler(
        NS,
        {
            "metadata": {"name": "h"},
            "spec": {
                "maxReplicas": 5,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            },
        },
    )
    assert (await hpa.read_namespaced_horizontal_pod_autoscaler("h", NS)).spec.max_replicas == 5


async def test_finalizers_delay_deletion(kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    await core.create_namespaced_config_map(NS, {"metadata": {"name": "f", "finalizers": ["x/y"]}})
    _, code, _ = await core.delete_namespaced_config_map_with_http_info("f", NS)
    assert code == 202
    cm = await core.read_namespaced_config_map("f", NS)
    assert cm.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("f", NS, {"metadata": {"finalizers": None}}, _content_type=MERGE)
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("f", NS)
    assert e.value.status == 404


async def test_stop_ends_watches_and_leaves_no_tasks(tmp_path: Any) -> None:
    from kubernetes_asyncio import config

    server = KubeEmulator(simulate_workloads=True)
    await server.start()
    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(server.write_kubeconfig(tmp_path / "kc")), client_configuration=cfg
    )
    api = client.ApiClient(configuration=cfg)
    core = client.CoreV1Api(api)
    w = watch.Watch()

    async def consume() -> None:
        async with w:
            async for _ in w.stream(core.list_namespaced_pod, NS, resource_version="1", timeout_seconds=60):
                pass

    task = asyncio.create_task(consume())
    for _ in range(100):
        if server.api.store.watchers:
            break
        await asyncio.sleep(0.01)
    await server.stop()
    await asyncio.wait_for(task, 5)
    await api.close()
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftovers == []


async def test_kubernetes_asyncio_leader_election(
    kube_server: KubeEmulator, kube_client: client.ApiClient
) -> None:
    from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
    from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

    leading = asyncio.Event()

    async def on_start() -> None:
        leading.set()
        await asyncio.sleep(3600)  # cancelled by the elector when it stops leading

    async def on_stop() -> None:
        return None

    lock = LeaseLock("autoscaler-leader", NS, "replica-a", kube_client)
    cfg = electionconfig.Config(
        lock,
        lease_duration=3,
        renew_deadline=2,
        retry_period=1,
        onstarted_leading=on_start,
        onstopped_leading=on_stop,
    )
    elector = asyncio.create_task(leaderelection.LeaderElection(cfg).run())
    try:
        await asyncio.wait_for(leading.wait(), 5)
        lease = kube_server.get("coordination.k8s.io/v1", "Lease", "autoscaler-leader", NS)
        assert lease["spec"]["holderIdentity"] == "replica-a"
    finally:
        elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await elector


@pytest.mark.parametrize(
    ("written_as", "body", "read_as", "expected"),
    [
        (
            "events.k8s.io/v1",
            {
                "note": "prefill 1→3",
                "regarding": {"kind": "Deployment", "name": "d"},
                "reportingController": "ctl",
                "reportingInstance": "ctl-1",
                "series": {"count": 4, "lastObservedTime": "2025-01-01T00:01:00.000000Z"},
                "deprecatedCount": 4,
                "deprecatedSource": {"component": "ctl"},
            },
            "v1",
            {
                "message": "prefill 1→3",
                "involvedObject": {"kind": "Deployment", "name": "d"},
                "reportingComponent": "ctl",
                "reportingInstance": "ctl-1",
                "series": {"count": 4, "lastObservedTime": "2025-01-01T00:01:00.000000Z"},
                "count": 4,
                "source": {"component": "ctl"},
            },
        ),
        (
            "v1",
            {
                "message": "pulled",
                "involvedObject": {"kind": "Pod", "name": "p"},
                "source": {"component": "kubelet", "host": "n1"},
                "count": 2,
                "firstTimestamp": "2025-01-01T00:00:00Z",
                "lastTimestamp": "2025-01-01T00:00:05Z",
            },
            "events.k8s.io/v1",
            {
                "note": "pulled",
                "regarding": {"kind": "Pod", "name": "p"},
                "deprecatedSource": {"component": "kubelet", "host": "n1"},
                "deprecatedCount": 2,
                "deprecatedFirstTimestamp": "2025-01-01T00:00:00Z",
                "deprecatedLastTimestamp": "2025-01-01T00:00:05Z",
            },
        ),
    ],
)
async def test_events_are_one_store_in_two_shapes(
    kube_server: Any, written_as: str, body: dict[str, Any], read_as: str, expected: dict[str, Any]
) -> None:
    api = kube_server.api
    group = "events.k8s.io" if written_as.startswith("events") else ""
    other = "" if group else "events.k8s.io"
    obj = {
        "metadata": {"name": f"ev-{len(written_as)}"},
        "reason": "Scaled",
        "type": "Normal",
        "eventTime": "2025-01-01T00:00:00.000000Z",
        **body,
    }
    api.create(api.type(group, "v1", "events"), NS, obj)
    got = api.get(api.type(other, "v1", "events"), NS, obj["metadata"]["name"])
    assert got["apiVersion"] == read_as
    for key, value in expected.items():
        assert got[key] == value, key
    renamed_away = set(body) - set(expected) - {"reason", "type", "eventTime"}
    assert not renamed_away & set(got), "the other shape's names must not leak through"
    # A write through the other shape updates the same object.
    got["reason"] = "Rescaled"
    api.update(api.type(other, "v1", "events"), NS, obj["metadata"]["name"], got)
    again = api.get(api.type(group, "v1", "events"), NS, obj["metadata"]["name"])
    assert again["reason"] == "Rescaled"
    for key, value in body.items():
        assert again[key] == value, key
