"""Generate the InferenceAutoscaler CustomResourceDefinition from the pydantic models.

Pydantic emits JSON Schema 2020-12 with ``$ref``s and ``anyOf`` for optional fields; Kubernetes wants an
OpenAPI v3.0 *structural* schema: every node typed, no references, no ``anyOf`` of types, booleans for
exclusive bounds. This module does that translation and nothing else, so the CRD cannot drift from the
models (a test regenerates it and compares with ``crds/``).
"""

from __future__ import annotations

from typing import Any

import yaml

from autoscaler.api.v1alpha1 import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    VERSION,
    InferenceAutoscaler,
    InferenceAutoscalerSpec,
    InferenceAutoscalerStatus,
)

__all__ = ["CRD_FILENAME", "crd_manifest", "crd_yaml", "structural_schema"]

CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"

# Keys OpenAPI v3.0 structural schemas accept (plus the x-kubernetes extensions we emit).
_KEEP = {
    "type", "description", "properties", "required", "items", "additionalProperties", "enum", "default",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "minProperties", "maxProperties", "format", "nullable",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s, collapse ``Optional`` and translate JSON Schema 2020 keywords to OpenAPI v3.0."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # the referencing site's description wins over the model docstring
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {len(variants)} types in a structural schema")
        merged = {**_resolve(variants[0], defs)}
        merged.update({k: v for k, v in node.items() if k != "default" or v is not None})
        node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if node.get("default", 0) is None:
        del node["default"]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    out = {k: v if k.startswith("x-kubernetes") else _resolve(v, defs) for k, v in node.items() if k in _KEEP}
    keys = (node.get("propertyNames") or {}).get("enum")
    if keys:  # structural schemas have no propertyNames: a map's allowed keys become a CEL rule
        out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), {
            "message": f"keys must be one of: {', '.join(str(k) for k in keys)}",
            "rule": f"self.all(k, k in {[str(k) for k in keys]!r})",
        }]
    if "properties" in node:
        out["properties"] = {name: _resolve(sub, defs) for name, sub in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _resolve(node["additionalProperties"], defs)
    elif "additionalProperties" in out:
        del out["additionalProperties"]  # pydantic's `false` is implied by structural pruning
    return out


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3.0 schema of a pydantic model (aliases on, references inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_resolve(raw, raw.get("$defs", {})))


def _object_schema() -> dict[str, Any]:
    status = structural_schema(InferenceAutoscalerStatus)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return {
        "type": "object",
        "description": (
            "InferenceAutoscaler keeps the model servers behind an InferencePool inside their latency SLOs at "
            "the lowest GPU cost, by setting the replicas of the prefill and decode roles."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object (autoscaler.inference.dev/v1alpha1)."},
            "kind": {"type": "string", "description": "Kind of this object (InferenceAutoscaler)."},
            "metadata": {"type": "object"},
            "spec": structural_schema(InferenceAutoscalerSpec),
            "status": status,
        },
    }


def crd_manifest() -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition as a plain mapping."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "inference-autoscaler", "app.kubernetes.io/part-of": "inference-autoscaler"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": ["autoscaling", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": InferenceAutoscaler.printer_columns,
                    "schema": {"openAPIV3Schema": _object_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as YAML, byte-stable for a given set of models (the drift test compares it with ``crds/``)."""
    header = "# Generated by `inference-autoscaler crd` from autoscaler/api/v1alpha1.py. Do not edit.\n"
    return header + yaml.safe_dump(crd_manifest(), sort_keys=False, allow_unicode=True, width=120)
