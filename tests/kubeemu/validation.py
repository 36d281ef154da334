"""Custom resource validation the way apiextensions-apiserver does it, in order:
prune unknown fields (structural schema) → apply defaults → OpenAPI schema → CEL ``x-kubernetes-validations``.

Errors become 422 ``Invalid`` Status causes whose ``field`` is the JSON path of the offending value
(``spec.roles.prefill.minReplicas``, ``spec.targetPorts[0].number``) and whose message follows the
real server's wording (``Required value``, ``Unsupported value: "x": supported values: ...``,
``Invalid value: 150: spec.x in body should be less than or equal to 100``).

Simplifications: ``format`` is not checked; CEL rules that use Kubernetes-only library functions
celpy lacks (``isURL``, ``quantity``, ...) are skipped (see ``SchemaValidator.skipped_rules``);
transition rules (``oldSelf``) are correlated through object properties and maps, not list items; CEL
cost limits are not enforced.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from .jsonutil import clone

log = logging.getLogger(__name__)

# apiVersion/kind/metadata are never pruned at the root or in embedded resources
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _show(v: Any) -> str:
    """Value as the real server prints it in ``Invalid value: ...`` (Go %#v-ish)."""
    if isinstance(v, dict):
        return '"object"'
    if isinstance(v, list):
        return '"array"'
    return json.dumps(v)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 structural schema → JSON Schema draft 4.

    Drops x-kubernetes-* keys and maps ``nullable`` and ``x-kubernetes-int-or-string``.
    """
    if isinstance(node, list):
        return [to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "format", "default", "example", "externalDocs"):
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: to_jsonschema(pv) for pk, pv in v.items()}
        else:
            out[k] = to_jsonschema(v)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_ENV: celpy.Environment | None = None
_PROGRAMS: dict[str, Any] = {}


def _program(rule: str) -> Any:
    """Compiled CEL programs, shared by all servers in the process (building celpy's parser costs ~0.4 s)."""
    global _ENV
    if rule not in _PROGRAMS:
        if _ENV is None:
            _ENV = celpy.Environment()
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    return _PROGRAMS[rule]


class SchemaValidator:
    def __init__(self, schema: dict[str, Any], kind: str, group: str) -> None:
        self.schema = schema
        self.kind = kind
        self.group = group
        self._js = jsonschema.Draft4Validator(to_jsonschema(schema))
        self.skipped_rules: set[str] = set()

    # ---- pruning ------------------------------------------------------------------------------------

    def prune(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Drop fields the schema does not know; return the pruned copy and the dropped paths."""
        dropped: list[str] = []
        out = self._prune(clone(obj), self.schema, "", dropped, root=True)
        return out, dropped

    def _prune(self, v: Any, s: dict[str, Any], path: str, dropped: list[str], root: bool = False) -> Any:
        if not isinstance(s, dict):
            return v
        if isinstance(v, dict):
            props = s.get("properties")
            addl = s.get("additionalProperties")
            preserve = s.get("x-kubernetes-preserve-unknown-fields", False)
            embedded = root or s.get("x-kubernetes-embedded-resource", False)
            for k in list(v):
                if embedded and k in _ROOT_KEEP:
                    continue  # ObjectMeta is validated by the server itself, never pruned by the CRD schema
                if props is not None and k in props:
                    v[k] = self._prune(v[k], props[k], _join(path, k), dropped)
                elif isinstance(addl, dict):
                    v[k] = self._prune(v[k], addl, _join(path, k), dropped)
                elif addl is True or preserve:
                    continue
                elif props is None and addl is None and "type" not in s:
                    continue  # schema-less node (e.g. under anyOf only): leave alone
                else:
                    dropped.append(_join(path, k))
                    del v[k]
        elif isinstance(v, list) and isinstance(s.get("items"), dict):
            return [self._prune(x, s["items"], _join(path, i), dropped) for i, x in enumerate(v)]
        return v

    # ---- defaulting ---------------------------------------------------------------------------------

    def apply_defaults(self, obj: Any, s: dict[str, Any] | None = None) -> Any:
        s = self.schema if s is None else s
        if isinstance(obj, dict):
            for k, ps in (s.get("properties") or {}).items():
                if k not in obj and isinstance(ps, dict) and "default" in ps:
                    obj[k] = clone(ps["default"])
                if k in obj and isinstance(ps, dict):
                    self.apply_defaults(obj[k], ps)
            addl = s.get("additionalProperties")
            if isinstance(addl, dict):
                for k in obj:
                    if k not in (s.get("properties") or {}):
                        self.apply_defaults(obj[k], addl)
        elif isinstance(obj, list) and isinstance(s.get("items"), dict):
            for x in obj:
                self.apply_defaults(x, s["items"])
        return obj

    # ---- OpenAPI schema -----------------------------------------------------------------------------

    def schema_causes(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        causes: list[dict[str, str]] = []
        for err in sorted(self._js.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            path = ""
            for p in err.absolute_path:
                path = _join(path, p)
            causes.extend(self._cause(err, path))
        return causes

    def _cause(self, err: jsonschema.ValidationError, path: str) -> list[dict[str, str]]:
        v = err.instance
        kw = err.validator
        where = path or "<root>"
        if kw == "required":
            missing = [r for r in err.validator_value if isinstance(v, dict) and r not in v]
            return [
                {"reason": "FieldValueRequired", "message": "Required value", "field": _join(path, m)}
                for m in missing
            ]
        if kw == "type":
            want = err.validator_value
            want_s = want if isinstance(want, str) else want[0]
            return [
                {
                    "reason": "FieldValueTypeInvalid",
                    "field": where,
                    "message": f'Invalid value: "{_type_name(v)}": {where} in body must be of type {want_s}: '
                    f'"{_type_name(v)}"',
                }
            ]
        if kw == "enum":
            allowed = ", ".join(json.dumps(x) for x in err.validator_value if x is not None)
            return [
                {
                    "reason": "FieldValueNotSupported",
                    "field": where,
                    "message": f"Unsupported value: {_show(v)}: supported values: {allowed}",
                }
            ]
        if kw == "maxLength":
            return [
                {
                    "reason": "FieldValueTooLong",
                    "field": where,
                    "message": f"Too long: may not be more than {err.validator_value} bytes",
                }
            ]
        if kw == "maxItems":
            return [
                {
                    "reason": "FieldValueTooMany",
                    "field": where,
                    "message": f"Too many: {len(v)}: must have at most {err.validator_value} items",
                }
            ]
        texts = {
            "maximum": f"should be less than or equal to {err.validator_value}",
            "minimum": f"should be greater than or equal to {err.validator_value}",
            "pattern": f"should match '{err.validator_value}'",
            "minLength": f"should be at least {err.validator_value} chars long",
            "minItems": f"should have at least {err.validator_value} items",
            "maxProperties": f"should have at most {err.validator_value} properties",
            "minProperties": f"should have at least {err.validator_value} properties",
            "multipleOf": f"should be a multiple of {err.validator_value}",
            "uniqueItems": "shouldn't contain duplicates",
        }
        if kw in ("maximum", "minimum") and err.schema.get(f"exclusive{kw.capitalize()}"):
            texts[kw] = texts[kw].replace(" or equal to", "")
        text = texts.get(str(kw), err.message)
        reason = "FieldValueDuplicate" if kw == "uniqueItems" else "FieldValueInvalid"
        return [
            {
                "reason": reason,
                "field": where,
                "message": f"Invalid value: {_show(v)}: {where} in body {text}",
            }
        ]

    # ---- CEL ----------------------------------------------------------------------------------------

    def _walk(self, v: Any, old: Any, s: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
        if not isinstance(s, dict):
            return
        if s.get("x-kubernetes-validations"):
            yield path, s, v, old
        if isinstance(v, dict):
            props = s.get("properties") or {}
            addl = s.get("additionalProperties")
            for k, x in v.items():
                sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
                if sub is not None:
                    o = old.get(k) if isinstance(old, dict) else None
                    yield from self._walk(x, o, sub, _join(path, k))
        elif isinstance(v, list) and isinstance(s.get("items"), dict):
            for i, x in enumerate(v):
                yield from self._walk(x, None, s["items"], _join(path, i))

    def _program(self, rule: str) -> Any:
        return _program(rule)

    def cel_causes(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
        causes: list[dict[str, str]] = []
        for path, s, v, oldv in self._walk(obj, old, self.schema, ""):
            for rule_spec in s["x-kubernetes-validations"]:
                rule = rule_spec["rule"]
                uses_old = "oldSelf" in rule
                if uses_old and oldv is None and not rule_spec.get("optionalOldSelf"):
                    continue  # transition rules only run on updates that have an old value
                try:
                    prog = self._program(rule)
                except Exception as e:
                    log.warning("CEL rule %r does not compile in celpy, skipped: %s", rule, e)
                    self.skipped_rules.add(rule)
                    continue
                act: dict[str, Any] = {"self": json_to_cel(v)}
                if uses_old:
                    act["oldSelf"] = json_to_cel(oldv)
                field = path + (rule_spec.get("fieldPath") or "")
                field = field.lstrip(".")
                try:
                    ok = prog.evaluate(act)
                except CELEvalError as e:
                    text = str(e.args[0]) if e.args else str(e)
                    if "undeclared reference" in text:
                        # a Kubernetes CEL library function celpy does not implement
                        self.skipped_rules.add(rule)
                        continue
                    text = text.split(" (in activation")[0]
                    causes.append(
                        {
                            "reason": "FieldValueInvalid",
                            "field": field or "<root>",
                            "message": f"Invalid value: {_show(v)}: {text} evaluating rule: {rule}",
                        }
                    )
                    continue
                if bool(ok):
                    continue
                msg = rule_spec.get("message") or f"failed rule: {rule}"
                if rule_spec.get("messageExpression"):
                    # a failing messageExpression falls back to the static message, like the server
                    with contextlib.suppress(Exception):
                        msg = str(self._program(rule_spec["messageExpression"]).evaluate(act))
                reason = rule_spec.get("reason") or "FieldValueInvalid"
                prefix = {
                    "FieldValueRequired": "Required value",
                    "FieldValueForbidden": "Forbidden",
                    "FieldValueDuplicate": f"Duplicate value: {_show(v)}",
                }.get(reason, f"Invalid value: {_show(v)}")
                causes.append({"reason": reason, "field": field or "<root>", "message": f"{prefix}: {msg}"})
        return causes

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
        causes = self.schema_causes(obj)
        # As in apiextensions-apiserver: type errors block CEL (rules assume the declared types); other
        # schema errors do not, so both kinds of cause are reported together.
        if any(c["reason"] == "FieldValueTypeInvalid" for c in causes):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "<nil>",
                    "message": 'Invalid value: "null": some validation rules were not checked because '
                    "the object was invalid; correct the existing errors to complete validation",
                }
            )
            return causes
        return causes + self.cel_causes(obj, old)
