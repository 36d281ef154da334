"""Validate custom objects against a CRD the way the API server does: OpenAPI schema, then CEL rules.

The CRD's ``openAPIV3Schema`` uses OpenAPI v3.0 keywords (boolean ``exclusiveMinimum``), which is JSON
Schema draft 4, so jsonschema's Draft4Validator checks it exactly. ``x-kubernetes-validations`` are evaluated
with cel-python at every node where they are declared, with ``self`` bound to that node's value.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import jsonschema


def _errors_cel(schema: dict[str, Any], value: Any, path: str, env: celpy.Environment) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(value)})):
            problems.append((path + rule.get("fieldPath", ""), rule.get("message", rule["rule"])))
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems += _errors_cel(sub, value[name], f"{path}.{name}" if path else name, env)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                problems += _errors_cel(extra, item, f"{path}[{name}]", env)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += _errors_cel(schema["items"], item, f"{path}[{index}]", env)
    return problems


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's ``default``s filled in, as the API server does before CEL."""
    if isinstance(value, dict):
        out = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def validate_object(crd: dict[str, Any], obj: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field path, message)`` for every problem the API server would report; empty when valid."""
    version = next(v for v in crd["spec"]["versions"] if obj["apiVersion"].endswith("/" + v["name"]))
    schema = version["schema"]["openAPIV3Schema"]
    obj = apply_defaults(schema, obj)
    validator = jsonschema.Draft4Validator(schema)
    problems = [
        (".".join(str(p) for p in err.absolute_path), err.message) for err in validator.iter_errors(obj)
    ]
    problems += _unknown_fields(schema, obj, "")
    if not problems:  # like the API server: CEL runs on schema-valid objects only
        problems += _errors_cel(schema, obj, "", celpy.Environment())
    return problems


def _unknown_fields(schema: dict[str, Any], value: Any, path: str) -> list[tuple[str, str]]:
    """Fields the structural schema does not declare (``fieldValidation=Strict`` rejects them)."""
    problems: list[tuple[str, str]] = []
    if isinstance(value, dict) and "properties" in schema:
        for name, item in value.items():
            sub_path = f"{path}.{name}" if path else name
            if name not in schema["properties"]:
                if path != "metadata" and not schema.get("x-kubernetes-preserve-unknown-fields"):
                    problems.append((sub_path, "unknown field"))
            else:
                problems += _unknown_fields(schema["properties"][name], item, sub_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += _unknown_fields(schema["items"], item, f"{path}[{index}]")
    return problems
