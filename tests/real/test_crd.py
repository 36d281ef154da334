"""The generated InferenceAutoscaler CRD on the real kube-apiserver: every bad resource of tests/test_api.py's
table is refused at admission with the field named, unknown fields go the way kubectl users and API clients
see them, the server and the pydantic models agree on the schema's boundary values, and a CRD upgrade keeps
stored objects readable while accepting the new field."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.api.crd import crd_manifest
from autoscaler.api.v1alpha1 import parse_spec
from autoscaler.errors import InvalidSpecError
from localcluster.client import Kube, KubeError, wait_until
from localcluster.crds import PROJECT_CRD, install_crds
from tests.fixtures.cluster import TestCluster, kubectl
from tests.test_api import BAD, _base, _set

API = "autoscaler.inference.dev/v1alpha1"
KIND = "InferenceAutoscaler"
NS = "serving"


def _bad_object(case: str, path: str, value: Any) -> dict[str, Any]:
    obj = _set(_base(), path, value)
    obj["metadata"] = {"name": f"bad-{case}", "namespace": NS}
    return obj


def _causes(err: KubeError) -> list[str]:
    """The field paths of a refusal's Status ``details.causes`` (as kubectl prints them)."""
    details = err.body.get("details") or {} if isinstance(err.body, dict) else {}
    return [str(c.get("field", "")) for c in details.get("causes") or []]


@pytest.mark.parametrize(("case", "path", "value", "crd_field", "model_field"), BAD, ids=[b[0] for b in BAD])
def test_bad_resources_are_refused_naming_the_field(
    kube_server: TestCluster, case: str, path: str, value: Any, crd_field: str, model_field: str
) -> None:
    obj = _bad_object(case, path, value)
    with pytest.raises(KubeError) as caught:
        kube_server.kube.create(obj, field_validation="Strict")
    err = caught.value
    if case == "unknown-field":
        # Strict decoding refuses the whole request before validation: 400 BadRequest, field in the message.
        assert (err.status, err.reason) == (400, "BadRequest"), err
        assert f'unknown field "{crd_field}"' in str(err), err
    else:
        assert (err.status, err.reason) == (422, "Invalid"), err
        assert any(f == crd_field or f.startswith(crd_field + ".") for f in _causes(err)), (_causes(err), err)
        assert f"{crd_field}" in str(err), err
    assert kube_server.kube.get_or_none(API, KIND, obj["metadata"]["name"], NS) is None


async def test_unknown_field_kubectl_refuses_and_a_plain_client_gets_a_warning(
    kube_server: TestCluster, kubeconfig_path: Path
) -> None:
    obj = _bad_object("unknown-field", "spec.roles.decode.replicas", 3)
    manifest = kubeconfig_path.parent / "bad.yaml"
    manifest.write_text(yaml.safe_dump(obj))

    # kubectl validates strictly by default (--validate=strict sends fieldValidation=Strict): nothing stored.
    err = await kubectl(kubeconfig_path, "apply", "-f", str(manifest), check=False)
    assert 'strict decoding error: unknown field "spec.roles.decode.replicas"' in err, err
    assert kube_server.kube.get_or_none(API, KIND, obj["metadata"]["name"], NS) is None
    # A client that sets no fieldValidation gets the server's default, Warn: stored with the field pruned.
    kube = kube_server.kube
    r = kube.http.post(kube.url + kube.kind(API, KIND).path(NS), data=json.dumps(obj),
                       headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers.get("Warning") == '299 - "unknown field \\"spec.roles.decode.replicas\\""', r.headers
    assert "replicas" not in r.json()["spec"]["roles"]["decode"]


# ------------------------------------------------------------------------------ server and models agree

# A valid element for each list of objects, to vary one field at a time; a list the schema gains without an entry
# here fails the test (KeyError) until one is added.
ITEMS = {
    "cost.allowedAccelerators": {"name": "A100", "pricePerGpuHour": "2.50", "maxReplicas": 4,
                                 "profile": "llama2-70b/a100/tp4"},
    "behavior.scaleUp.policies": {"type": "Pods", "value": 4, "period": "15s"},
    "behavior.scaleDown.policies": {"type": "Percent", "value": 50, "period": "1m"},
}
MAP_KEY = {"fallback.replicas": "both"}  # a key the models accept in each map (default: "pod")


def _cases(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """``(field path, value)``: every field of ``schema`` at and past its bounds, recursing into objects, into
    one element of each list and into one entry of each map."""
    for name, node in (schema.get("properties") or {}).items():
        sub = f"{path}.{name}" if path else name
        items, values = node.get("items"), node.get("additionalProperties")
        if node.get("type") == "object" and "properties" in node:
            yield from _cases(node, sub)
        elif node.get("type") == "array" and isinstance(items, dict) and items.get("type") == "object":
            item = ITEMS[sub]
            yield sub, []
            yield sub, [item] * (node.get("maxItems", 8) + 1)
            for field, value in _cases(items):
                yield sub, [_with(item, field, value)]
        elif node.get("type") == "object" and isinstance(values, dict):
            key = MAP_KEY.get(sub, "pod")
            valid = 1 if values.get("type") == "integer" else "x"
            yield sub, {"bogus-key": valid}
            yield sub, {f"k{i}": valid for i in range(node.get("maxProperties", 64) + 1)}
            for value in _boundary_values(values):
                yield sub, {key: value}
        else:
            for value in _boundary_values(node):
                yield sub, value


def _boundary_values(node: dict[str, Any]) -> list[Any]:
    """Values at and just past each bound the schema declares for one field."""
    values: list[Any] = []
    kind = node.get("type")
    if kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.5
        for bound, exclusive, sign in (("minimum", "exclusiveMinimum", -1), ("maximum", "exclusiveMaximum", 1)):
            if bound in node:
                values += [node[bound], node[bound] + sign * step]
                if not node.get(exclusive):
                    values.append(node[bound] - sign * step if kind == "integer" else node[bound])
        values.append("7")  # a string where a number belongs
    elif kind == "string":
        values += ["", "x" * (node.get("maxLength", 64) + 1), "Not Valid!"]
        if "pattern" in node and "ms|s|m|h" in node["pattern"]:
            values += ["0s", "500ms", "1s", "1h30m", "1.5s", "1d", "-1s"]
        values += [v + "x" for v in node.get("enum", [])[:1]]
    return values


def _spec_cases() -> list[tuple[str, Any]]:
    spec_schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return list(_cases(spec_schema))


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    *parents, leaf = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return obj


def _server_accepts(kube: Kube, spec: dict[str, Any]) -> tuple[bool, str]:
    obj = {"apiVersion": API, "kind": KIND, "metadata": {"name": "probe", "namespace": NS}, "spec": spec}
    try:
        kube.create(obj, dry_run=True, field_validation="Strict")
    except KubeError as err:
        if err.status not in (400, 422):
            raise
        return False, str(err)
    return True, ""


def _model_accepts(spec: dict[str, Any]) -> tuple[bool, str]:
    try:
        parse_spec(spec)
    except InvalidSpecError as err:
        return False, str(err)
    return True, ""


def test_the_server_refuses_whatever_the_models_refuse(kube_server: TestCluster) -> None:
    """Each schema field at and past its bounds, dry-run on the server and parsed by the models. A value the
    server stores and the models refuse is a CRD gap: the object is accepted, then the controller rejects it.
    (The reverse, a stricter server, is safe: the models are lax about types such as ``"7"`` for 7.)"""
    base = _base()["spec"]
    gaps, stricter_server = [], []
    cases = _spec_cases()
    for path, value in cases:
        spec = _with(base, path, value)
        server, server_why = _server_accepts(kube_server.kube, spec)
        model, model_why = _model_accepts(spec)
        if server and not model:
            gaps.append(f"{path}={value!r}: {model_why[:200]}")
        elif model and not server:
            stricter_server.append(f"{path}={value!r}: {server_why}")
    print(f"{len(cases)} values; only the server refuses:", *stricter_server, sep="\n  ")
    assert len(cases) > 300
    assert gaps == [], "\n".join(gaps)


# ------------------------------------------------------------------------------------------ upgrade


def _project_crd() -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(PROJECT_CRD.read_text()) if d)


@pytest.fixture
def restore_crd(kube_server: TestCluster) -> Iterator[None]:
    """The session's CRD is put back however the test ends (later tests share the plane)."""
    yield
    install_crds(kube_server.kube, [_project_crd()])
    kube_server.kube.kind(API, KIND, refresh=True)


def test_crd_upgrade_keeps_stored_objects_and_serves_the_new_field(
    kube_server: TestCluster, restore_crd: None
) -> None:
    kube = kube_server.kube
    current = _project_crd()
    older = copy.deepcopy(current)  # an earlier release: the same API without spec.fallback
    spec_schema = older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec_schema["properties"]["fallback"]
    install_crds(kube, [older])
    fallback = {"afterFailures": 3, "policy": "Static", "replicas": {"prefill": 2, "decode": 4}}
    obj = _bad_object("unused", "spec.actuation", "DryRun")
    obj["metadata"]["name"] = "from-older-release"
    wait_until(lambda: "fallback" not in json.dumps(_dry_run_spec(kube, {**obj, "spec": {**obj["spec"],
               "fallback": fallback}})), what="the older schema served (fallback pruned)", timeout_s=30)
    stored = kube.create(obj, field_validation="Strict")
    assert "fallback" not in stored["spec"]

    install_crds(kube, [current])
    wait_until(lambda: _dry_run_spec(kube, {**obj, "metadata": {"name": "probe", "namespace": NS},
                                            "spec": {**obj["spec"], "fallback": fallback}}).get("fallback"),
               what="the current schema served (fallback kept)", timeout_s=30)
    again = kube.get(API, KIND, "from-older-release", NS)
    assert again["metadata"]["uid"] == stored["metadata"]["uid"] and again["spec"] == stored["spec"]
    parse_spec(again["spec"])  # the controller still reads it
    patched = kube.patch(API, KIND, "from-older-release", NS, {"spec": {"fallback": fallback}})
    assert patched["spec"]["fallback"] == fallback
    assert kube.get(API, KIND, "from-older-release", NS)["spec"]["fallback"] == patched["spec"]["fallback"]


def _dry_run_spec(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """The spec the server would store for ``obj`` (unknown fields pruned, defaults filled)."""
    probe = {**obj, "metadata": {"name": "probe", "namespace": NS}}
    return dict(kube.create(probe, dry_run=True)["spec"])

