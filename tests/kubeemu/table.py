"""``meta.k8s.io/v1 Table`` rendering, which ``kubectl get`` asks for instead of raw objects.

Custom resources follow apiextensions-apiserver's tableconvertor: a Name column, then the CRD's
``additionalPrinterColumns`` (no implicit Age when columns are declared; Name + Age when none are),
cells typed by column type and ``date`` cells turned into a human duration by the server.
Built-in kinds get a short approximation of their real columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import jsonpath
from .clock import human_duration
from .resources import ResourceType

NAME_COL = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a "
    "namespace. Is required when creating resources, although some resources may allow a client to "
    "request the generation of an appropriate name automatically.",
    "priority": 0,
}
AGE_COL = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "CreationTimestamp is a timestamp "
    "representing the server time when this object was created.",
    "priority": 0,
}

TABLE_MEDIA = "as=table"


def wants_table(accept: str) -> bool:
    """True when the first acceptable media type the client lists is a Table (kubectl get)."""
    for part in accept.split(","):
        params = [p.strip().lower() for p in part.split(";")]
        if (
            "as=table" in params
            and ("g=meta.k8s.io" in params)
            and any(p in params for p in ("v=v1", "v=v1beta1"))
        ):
            return True
        if params[0] in ("application/json", "*/*", "application/*"):
            return False
    return False


def _cell(col_type: str, value: Any) -> Any:
    if value is None:
        return None
    if col_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if col_type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if col_type == "date":
        return human_duration(value) if isinstance(value, str) else None
    # string: the real server prints the JSON value with jsonpath's printer (maps/lists as JSON)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _crd_columns(rt: ResourceType) -> tuple[list[dict[str, Any]], list[Callable[[dict[str, Any]], Any]]]:
    if not rt.printer_columns:
        return [NAME_COL, AGE_COL], [
            lambda o: o["metadata"]["name"],
            lambda o: human_duration(o["metadata"].get("creationTimestamp")),
        ]
    cols: list[dict[str, Any]] = [NAME_COL]
    getters: list[Callable[[dict[str, Any]], Any]] = [lambda o: o["metadata"]["name"]]
    for c in rt.printer_columns:
        cols.append(
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": int(c.get("priority", 0)),
            }
        )

        def getter(o: dict[str, Any], path: str = c["jsonPath"], typ: str = c.get("type", "string")) -> Any:
            found = jsonpath.find(o, path)
            return _cell(typ, found[0]) if found else None

        getters.append(getter)
    return cols, getters


def _col(name: str, typ: str = "string", desc: str = "", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": typ, "format": "", "description": desc, "priority": priority}


def _pod_ready(o: dict[str, Any]) -> str:
    statuses = o.get("status", {}).get("containerStatuses") or []
    total = len(o.get("spec", {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    if not statuses:
        conds = {c.get("type"): c.get("status") for c in o.get("status", {}).get("conditions") or []}
        ready = total if conds.get("Ready") == "True" else 0
    return f"{ready}/{total}"


def _builtin_columns(rt: ResourceType) -> tuple[list[dict[str, Any]], list[Callable[[dict[str, Any]], Any]]]:
    def name(o: dict[str, Any]) -> Any:
        return o["metadata"]["name"]

    def age(o: dict[str, Any]) -> Any:
        return human_duration(o["metadata"].get("creationTimestamp"))

    def st(o: dict[str, Any], k: str) -> Any:
        return (o.get("status") or {}).get(k) or 0

    def sp(o: dict[str, Any], k: str) -> Any:
        return (o.get("spec") or {}).get(k)

    if rt.plural == "replicasets":
        return (
            [
                NAME_COL,
                _col("Desired", "integer"),
                _col("Current", "integer"),
                _col("Ready", "integer"),
                AGE_COL,
            ],
            [
                name,
                lambda o: sp(o, "replicas"),
                lambda o: st(o, "replicas"),
                lambda o: st(o, "readyReplicas"),
                age,
            ],
        )
    if rt.plural in ("deployments", "statefulsets"):
        return (
            [NAME_COL, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), AGE_COL],
            [
                name,
                lambda o: (
                    f"{st(o, 'readyReplicas')}/{sp(o, 'replicas') if sp(o, 'replicas') is not None else 1}"
                ),
                lambda o: st(o, "updatedReplicas"),
                lambda o: st(o, "availableReplicas"),
                age,
            ],
        )
    if rt.plural == "pods":
        return (
            [NAME_COL, _col("Ready"), _col("Status"), _col("Restarts", "string"), AGE_COL],
            [
                name,
                _pod_ready,
                lambda o: (o.get("status") or {}).get("phase") or "Pending",
                lambda o: str(
                    sum(
                        int(c.get("restartCount", 0))
                        for c in (o.get("status") or {}).get("containerStatuses") or []
                    )
                ),
                age,
            ],
        )
    if rt.plural == "namespaces":
        return (
            [NAME_COL, _col("Status"), AGE_COL],
            [name, lambda o: (o.get("status") or {}).get("phase") or "Active", age],
        )
    if rt.plural == "horizontalpodautoscalers":
        return (
            [
                NAME_COL,
                _col("Reference"),
                _col("MinPods", "integer"),
                _col("MaxPods", "integer"),
                _col("Replicas", "integer"),
                AGE_COL,
            ],
            [
                name,
                lambda o: (
                    f"{(sp(o, 'scaleTargetRef') or {}).get('kind')}/"
                    f"{(sp(o, 'scaleTargetRef') or {}).get('name')}"
                ),
                lambda o: sp(o, "minReplicas") or 1,
                lambda o: sp(o, "maxReplicas"),
                lambda o: st(o, "currentReplicas"),
                age,
            ],
        )
    if rt.plural == "leases":
        return ([NAME_COL, _col("Holder"), AGE_COL], [name, lambda o: sp(o, "holderIdentity") or "", age])
    if rt.plural == "events" and rt.group == "":
        return (
            [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
            [
                lambda o: human_duration(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp")),
                lambda o: o.get("type", ""),
                lambda o: o.get("reason", ""),
                lambda o: (
                    f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
                    f"{(o.get('involvedObject') or {}).get('name', '')}"
                ),
                lambda o: o.get("message", ""),
            ],
        )
    return [NAME_COL, AGE_COL], [name, age]


def columns(rt: ResourceType) -> tuple[list[dict[str, Any]], list[Callable[[dict[str, Any]], Any]]]:
    return _crd_columns(rt) if rt.custom else _builtin_columns(rt)


def row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    # default "Metadata": PartialObjectMetadata, which kubectl reads namespace/labels from
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def render(
    rt: ResourceType,
    objs: list[dict[str, Any]],
    *,
    resource_version: str | None,
    include_object: str = "Metadata",
    continue_token: str | None = None,
    with_headers: bool = True,
) -> dict[str, Any]:
    cols, getters = columns(rt)
    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": [g(o) for g in getters]}
        ro = row_object(o, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": cols if with_headers else [],
        "rows": rows,
    }
