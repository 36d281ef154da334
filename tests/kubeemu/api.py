"""REST semantics of the API server, independent of HTTP: create/get/list/update/patch/delete, the
status and scale subresources, CRD registration, TokenReview/SubjectAccessReview.

Every method takes a :class:`ResourceType` (which version was addressed) and returns plain dicts
rendered at that version; errors are :class:`ApiError` with the real server's Status shape.
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import errors, events, jsonpath, patch
from .clock import now_rfc3339
from .errors import ApiError
from .jsonutil import clone
from .resources import ResourceType, builtin_types, storage_version, types_from_crd
from .selectors import (
    FieldRequirement,
    label_selector_to_string,
    match_fields,
    match_labels,
    parse_field_selector,
    parse_label_selector,
)
from .store import Store
from .validation import SchemaValidator

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# generateName suffix alphabet of k8s.io/apimachinery/pkg/util/rand (no vowels, no confusable digits)
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class AuthTable:
    """What TokenReview and SubjectAccessReview answer (the server itself does not authenticate)."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (subject, verb, group, resource, namespace); "*" matches anything; subject is a user or group name
    rules: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def add_token(self, token: str, username: str, groups: list[str] | None = None, uid: str = "") -> None:
        self.tokens[token] = {"username": username, "uid": uid or str(uuid.uuid4()), "groups": groups or []}

    def allow(self, subject: str, verb: str, resource: str, group: str = "*", namespace: str = "*") -> None:
        self.rules.append((subject, verb, group, resource, namespace))

    def allowed(self, user: str, groups: list[str], verb: str, group: str, resource: str, ns: str) -> bool:
        subjects = {user, *groups}
        return any(
            s in subjects
            and v in ("*", verb)
            and g in ("*", group)
            and r in ("*", resource)
            and n in ("*", ns)
            for s, v, g, r, n in self.rules
        )


class Api:
    def __init__(self, *, require_namespaces: bool = True, history_limit: int = 10_000) -> None:
        self.store = Store(history_limit=history_limit)
        self.require_namespaces = require_namespaces
        self.auth = AuthTable()
        # (group, version) → plural → type
        self.types: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self.validators: dict[tuple[str, str, str], SchemaValidator] = {}  # (group, version, plural)
        self.crd_storage_version: dict[tuple[str, str], str] = {}  # storage key → version of stored objects
        self.warnings: list[str] = []  # per-request warnings (set by the HTTP layer, read after the call)
        for rt in builtin_types():
            self._register(rt)
        for ns in DEFAULT_NAMESPACES:
            self._put_new(
                self.type("", "v1", "namespaces"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )

    # ---- registry -----------------------------------------------------------------------------------

    def _register(self, rt: ResourceType) -> None:
        self.types.setdefault((rt.group, rt.version), {})[rt.plural] = rt
        if rt.custom and rt.schema:
            self.validators[(rt.group, rt.version, rt.plural)] = SchemaValidator(rt.schema, rt.kind, rt.group)

    def type(self, group: str, version: str, plural: str) -> ResourceType:
        try:
            return self.types[(group, version)][plural]
        except KeyError:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource", {}
            ) from None

    def find_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version), {}).get(plural)

    def groups(self) -> dict[str, list[str]]:
        """group → versions (preferred first), in registration order."""
        out: dict[str, list[str]] = {}
        for (g, v), kinds in self.types.items():
            if kinds:
                out.setdefault(g, [])
                if v not in out[g]:
                    out[g].append(v)
        return out

    def install_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create a CRD as if a client had POSTed it (registers its kinds). Returns the stored CRD."""
        return self.create(self.type("apiextensions.k8s.io", "v1", "customresourcedefinitions"), "", crd)

    def _activate_crd(self, crd: dict[str, Any]) -> None:
        for rt in types_from_crd(crd):
            self._register(rt)
        self.crd_storage_version[(crd["spec"]["group"], crd["spec"]["names"]["plural"])] = storage_version(
            crd
        )

    def _deactivate_crd(self, crd: dict[str, Any]) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for ver in crd["spec"].get("versions", []):
            self.types.get((group, ver["name"]), {}).pop(plural, None)
            self.validators.pop((group, ver["name"], plural), None)
        # Real server deletes all instances before the CRD goes away; watchers see them deleted.
        for obj in list(self.store.iter((group, plural))):
            self.store.remove((group, plural), obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self.store.drop_kind((group, plural))

    # ---- helpers ------------------------------------------------------------------------------------

    def _render(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Serve a stored object at the addressed version (CRD conversion strategy None: apiVersion only;
        Events: the events.k8s.io/v1 ↔ v1 field mapping)."""
        if events.is_events_v1(rt.group, rt.plural):
            obj = events.to_events_v1(obj)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return obj

    def parse_fields(self, rt: ResourceType, text: str | None) -> list[FieldRequirement]:
        """A field selector as requirements on the stored object (events.k8s.io paths mapped to core)."""
        fields = parse_field_selector(text, rt.field_selector_allowed, rt.custom)
        if events.is_events_v1(rt.group, rt.plural):
            fields = [
                FieldRequirement(events.FIELD_ALIASES.get(f.path, f.path), f.op, f.value) for f in fields
            ]
        return fields

    def render(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return self._render(rt, clone(obj))

    def _ns(self, rt: ResourceType, ns: str | None) -> str:
        return (ns or "") if rt.namespaced else ""

    def _must_get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.storage_key, ns, name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if rt.namespaced and self.require_namespaces and self.store.get(("", "namespaces"), "", ns) is None:
            raise errors.not_found("namespaces", "", ns)
        ns_obj = self.store.get(("", "namespaces"), "", ns) if rt.namespaced else None
        if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403,
                "Forbidden",
                f"{errors.qualified(rt.plural, rt.group)} is forbidden: unable to create new content in "
                f"namespace {ns} because it is being terminated",
                {"kind": rt.plural, "group": rt.group},
            )

    def _invalid(self, rt: ResourceType, name: str, causes: list[dict[str, str]]) -> ApiError:
        return errors.invalid(rt.kind, rt.group, name, causes)

    # ---- reads --------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, ns: str | None, name: str) -> dict[str, Any]:
        return self._render(rt, self._must_get(rt, self._ns(rt, ns), name))

    def list_objects(
        self,
        rt: ResourceType,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict[str, Any]:
        labels = parse_label_selector(label_selector)
        fields = self.parse_fields(rt, field_selector)
        if resource_version_match == "Exact" and resource_version and resource_version != "0":
            rv = _parse_rv(resource_version)
            if self.store.too_old(rv):
                raise errors.expired(f"too old resource version: {rv} ({self.store.compacted_rv})")
        start_after: tuple[str, str] | None = None
        list_rv = self.store.rv
        if continue_token:
            try:
                tok = json.loads(base64.urlsafe_b64decode(continue_token.encode()).decode())
                start_after = (tok["ns"], tok["name"])
                list_rv = int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: invalid continue token") from None
            if self.store.too_old(list_rv):
                raise errors.ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter.",
                    {},
                )
        scope = None if ns is None else self._ns(rt, ns)
        items: list[dict[str, Any]] = []
        more = 0
        next_token = None
        for obj in self.store.iter(rt.storage_key, scope):
            meta = obj["metadata"]
            if start_after is not None and (meta.get("namespace", ""), meta["name"]) <= start_after:
                continue
            if not (match_labels(labels, meta.get("labels")) and match_fields(fields, obj)):
                continue
            if limit and len(items) >= limit:
                more += 1
                continue
            items.append(self.render(rt, obj))
        if more and items:
            last = items[-1]["metadata"]
            next_token = base64.urlsafe_b64encode(
                json.dumps({"rv": list_rv, "ns": last.get("namespace", ""), "name": last["name"]}).encode()
            ).decode()
        if not rt.custom:
            # Built-in list items come without apiVersion/kind from the real server (clients fill them in).
            for it in items:
                it.pop("apiVersion", None)
                it.pop("kind", None)
        meta_out: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if next_token:
            meta_out["continue"] = next_token
            meta_out["remainingItemCount"] = more
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta_out, "items": items}

    # ---- create -------------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        ns: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> dict[str, Any]:
        if "create" not in rt.verbs:
            raise errors.method_not_allowed()
        obj = self._check_body(rt, body)
        ns = self._ns(rt, ns)
        meta = obj.setdefault("metadata", {})
        if rt.plural == "tokenreviews":
            return self._token_review(obj)
        if rt.plural == "subjectaccessreviews":
            return self._subject_access_review(obj)
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(random.choice(_SUFFIX) for _ in range(5))
            else:
                raise self._invalid(
                    rt,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "metadata.name",
                            "message": "Required value: name or generateName is required",
                        }
                    ],
                )
        name = meta["name"]
        self._check_name(rt, name)
        self._check_namespace(rt, ns)
        if self.store.get(rt.storage_key, ns, name) is not None:
            raise errors.already_exists(rt.plural, rt.group, name)
        if rt.status_subresource:
            obj.pop("status", None)
        obj = self._prepare_new(rt, obj)
        obj = self._validate(rt, obj, None, field_validation)
        if dry_run:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            return self._render(rt, obj)
        return self._render(rt, self._put_new(rt, obj))

    def _put_new(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        meta["resourceVersion"] = str(self.store.next_rv())
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        if rt.plural == "customresourcedefinitions":
            self._activate_crd(obj)
            obj["status"] = _crd_status(obj)
        if rt.plural == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        return self.store.put(rt.storage_key, obj, "ADDED", None)

    def _check_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type " + rt.kind + ")")
        obj = clone(body)
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rt.kind}): "
                f"kind {kind!r} does not match"
            )
        if api_version and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")
        if events.is_events_v1(rt.group, rt.plural):
            obj = events.to_core(obj)
        return obj

    def _check_name(self, rt: ResourceType, name: str) -> None:
        if rt.plural == "customresourcedefinitions":
            return
        pattern = _DNS1123_LABEL if rt.plural == "namespaces" else _DNS1123_SUBDOMAIN
        if not pattern.match(name) or len(name) > 253:
            what = "RFC 1123 label" if rt.plural == "namespaces" else "RFC 1123 subdomain"
            raise self._invalid(
                rt,
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                        "alphanumeric "
                        "characters, '-' or '.', and must start and end with an alphanumeric character",
                    }
                ],
            )

    def _prepare_new(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Per-kind defaulting and validation of built-ins (the few rules tests are likely to trip over)."""
        spec = obj.get("spec")
        name = obj["metadata"]["name"]
        if rt.plural in ("deployments", "statefulsets", "replicasets") and rt.group == "apps":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            causes = []
            sel = spec.get("selector")
            tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not sel:
                causes.append(
                    {"reason": "FieldValueRequired", "field": "spec.selector", "message": "Required value"}
                )
            elif not match_labels(parse_label_selector(label_selector_to_string(sel)), tmpl_labels):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.template.metadata.labels",
                        "message": f"Invalid value: {json.dumps(tmpl_labels)}: `selector` does not match "
                        "template `labels`",
                    }
                )
            if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 0:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {spec.get('replicas')}: must be greater than or equal "
                        "to 0",
                    }
                )
            if causes:
                raise self._invalid(rt, name, causes)
        if rt.plural == "pods" and rt.group == "":
            if not (spec or {}).get("containers"):
                raise self._invalid(
                    rt,
                    name,
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "spec.containers",
                            "message": "Required value",
                        }
                    ],
                )
            obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        if rt.plural == "customresourcedefinitions":
            self._validate_crd(rt, obj)
        return obj

    def _validate_crd(self, rt: ResourceType, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        want = f"{names.get('plural')}.{spec.get('group')}"
        if crd["metadata"]["name"] != want:
            raise self._invalid(
                rt,
                crd["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{crd["metadata"]["name"]}": '
                        'must be spec.names.plural+"."+spec.group',
                    }
                ],
            )
        if not spec.get("versions"):
            raise self._invalid(
                rt,
                crd["metadata"]["name"],
                [{"reason": "FieldValueRequired", "field": "spec.versions", "message": "Required value"}],
            )

    def _validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, field_validation: str
    ) -> dict[str, Any]:
        if not rt.custom:
            return obj
        v = self.validators.get((rt.group, rt.version, rt.plural))
        if v is None:
            return obj
        obj, dropped = v.prune(obj)
        if dropped and field_validation == "Strict":
            # the server reports the full path of each unknown field, ``.spec.foo``
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{d}"' for d in dropped)
            )
        if dropped and field_validation == "Warn":
            self.warnings.extend(f'unknown field "{d}"' for d in dropped)
        v.apply_defaults(obj)
        causes = v.validate(obj, old)
        if causes:
            raise self._invalid(rt, obj["metadata"]["name"], causes)
        return obj

    # ---- update -------------------------------------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> dict[str, Any]:
        ns = self._ns(rt, ns)
        if "update" not in rt.verbs:
            raise errors.method_not_allowed()
        if subresource == "status" and not rt.status_subresource:
            raise errors.not_found(rt.plural, rt.group, name)
        new = self._check_body(rt, body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        old = self._must_get(rt, ns, name)
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if subresource == "status":
            # Only .status may change through /status (metadata and spec come from the stored object).
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
            for k in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
                else:
                    meta.pop(k, None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = ns
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if rt.group == "apps" and subresource is None:
            new.setdefault("spec", {}).setdefault("replicas", 1)
        new = self._validate(rt, new, old, field_validation)
        if _content(new) != _content(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new == old:
            return self._render(rt, old)  # no-op writes keep the resourceVersion and emit no event
        if dry_run:
            return self._render(rt, new)
        if rt.plural == "customresourcedefinitions" and subresource is None:
            self._validate_crd(rt, new)
            self._deactivate_types_only(old)
            self._activate_crd(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.store.put(
                rt.storage_key,
                {**new, "metadata": {**new["metadata"], "resourceVersion": str(self.store.next_rv())}},
                "MODIFIED",
                old,
            )
            gone = self.store.remove(rt.storage_key, ns, name)
            return self._render(rt, gone or new)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        return self._render(rt, self.store.put(rt.storage_key, new, "MODIFIED", old))

    def _deactivate_types_only(self, crd: dict[str, Any]) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for ver in crd["spec"].get("versions", []):
            self.types.get((group, ver["name"]), {}).pop(plural, None)

    # ---- patch --------------------------------------------------------------------------------------

    def patch_types(self, rt: ResourceType) -> list[str]:
        accepted = [patch.JSON_PATCH, patch.MERGE_PATCH, patch.APPLY_PATCH]
        if not rt.custom:
            accepted.insert(2, patch.STRATEGIC_MERGE_PATCH)
        return accepted

    def patch(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        raw: bytes,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        if "patch" not in rt.verbs:
            raise errors.method_not_allowed()
        if content_type not in self.patch_types(rt):
            raise errors.unsupported_media_type(content_type, self.patch_types(rt))
        body = patch.decode_body(raw, content_type)
        ns = self._ns(rt, ns)
        if subresource == "scale":
            scale = self.get_scale(rt, ns, name)
            patched = patch.apply(scale, body, content_type)
            return self.update_scale(rt, ns, name, patched, dry_run=dry_run)
        current = self.store.get(rt.storage_key, ns, name)
        if current is None:
            if content_type == patch.APPLY_PATCH and subresource is None:
                if not field_manager:
                    raise errors.bad_request("PATCH requests with apply content type require fieldManager")
                # server-side apply on a missing object creates it
                return self.create(rt, ns, body, dry_run=dry_run, field_validation=field_validation)
            raise errors.not_found(rt.plural, rt.group, name)
        if content_type == patch.APPLY_PATCH and not field_manager:
            raise errors.bad_request("PATCH requests with apply content type require fieldManager")
        current = self._render(rt, current)
        patched = patch.apply(current, body, content_type)
        if not isinstance(patched, dict):
            raise errors.bad_request("patch result is not an object")
        # A resourceVersion written by the patch is a precondition (409 when stale); otherwise the
        # patch applies to whatever is current.
        prv = (patched.get("metadata") or {}).get("resourceVersion")
        if prv and prv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.update(
            rt, ns, name, patched, subresource=subresource, dry_run=dry_run, field_validation=field_validation
        )

    # ---- scale --------------------------------------------------------------------------------------

    def get_scale(self, rt: ResourceType, ns: str | None, name: str) -> dict[str, Any]:
        if rt.scale is None:
            raise errors.not_found(rt.plural, rt.group, name)
        obj = self._must_get(rt, self._ns(rt, ns), name)
        sc = rt.scale
        spec_replicas = jsonpath.get_path(obj, sc.spec_replicas_path)
        status_replicas = jsonpath.get_path(obj, sc.status_replicas_path)
        if sc.label_selector_path is None:
            selector = label_selector_to_string((obj.get("spec") or {}).get("selector"))
        elif sc.label_selector_path:
            selector = jsonpath.get_path(obj, sc.label_selector_path) or ""
        else:
            selector = ""
        meta = obj["metadata"]
        out_meta = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        }
        status: dict[str, Any] = {"replicas": int(status_replicas or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": out_meta,
            "spec": {"replicas": int(spec_replicas or 0)},
            "status": status,
        }

    def update_scale(
        self, rt: ResourceType, ns: str | None, name: str, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        if rt.scale is None:
            raise errors.not_found(rt.plural, rt.group, name)
        ns = self._ns(rt, ns)
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type Scale)")
        obj = self._must_get(rt, ns, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {json.dumps(replicas)}: "
                        "must be greater than or equal to 0",
                    }
                ],
            )
        obj = self._render(rt, obj)
        jsonpath.set_path(obj, rt.scale.spec_replicas_path, replicas)
        self.update(rt, ns, name, obj, dry_run=dry_run)
        return self.get_scale(rt, ns, name)

    # ---- delete -------------------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """Returns (HTTP code, body): 200 with the object when gone, 202 when finalizers keep it."""
        if "delete" not in rt.verbs:
            raise errors.method_not_allowed()
        ns = self._ns(rt, ns)
        options = options or {}
        obj = self._must_get(rt, ns, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{obj['metadata'].get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {obj['metadata']['resourceVersion']}",
            )
        if dry_run:
            return 200, self._render(rt, obj)
        if obj["metadata"].get("finalizers") or rt.plural == "namespaces":
            if not obj["metadata"].get("deletionTimestamp"):
                old = clone(obj)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if rt.plural == "namespaces":
                    obj.setdefault("status", {})["phase"] = "Terminating"
                obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
                obj = self.store.put(rt.storage_key, obj, "MODIFIED", old)
            if rt.plural == "namespaces":
                # Namespace "controller": empty it, then drop the namespace (its spec finalizer is ours).
                self._delete_namespace_contents(name)
                gone = self.store.remove(rt.storage_key, ns, name)
                return 200, self._render(rt, gone or obj)
            return 202, self._render(rt, obj)
        gone = self.store.remove(rt.storage_key, ns, name)
        assert gone is not None
        if rt.plural == "customresourcedefinitions":
            self._deactivate_crd(gone)
        if options.get("propagationPolicy") != "Orphan" and options.get("orphanDependents") is not True:
            self._collect_garbage(gone["metadata"]["uid"])
        return 200, self._render(rt, gone)

    def _delete_namespace_contents(self, ns: str) -> None:
        for key in list(self.store.objects):
            for obj in list(self.store.iter(key, ns)):
                if obj["metadata"].get("namespace") == ns:
                    self.store.remove(key, ns, obj["metadata"]["name"])

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background cascading deletion: remove dependents whose ownerReferences name the deleted uid."""
        doomed: list[tuple[tuple[str, str], str, str, str]] = []
        for key in list(self.store.objects):
            for obj in self.store.iter(key):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    m = obj["metadata"]
                    doomed.append((key, m.get("namespace", ""), m["name"], m["uid"]))
        for key, ns, name, uid in doomed:
            if self.store.remove(key, ns, name) is not None:
                self._collect_garbage(uid)

    def delete_collection(
        self, rt: ResourceType, ns: str | None, *, label_selector: str | None, field_selector: str | None
    ) -> dict[str, Any]:
        if "deletecollection" not in rt.verbs:
            raise errors.method_not_allowed()
        listed = self.list_objects(rt, ns, label_selector=label_selector, field_selector=field_selector)
        items = []
        for it in listed["items"]:
            _, body = self.delete(rt, it["metadata"].get("namespace"), it["metadata"]["name"])
            items.append(body)
        listed["items"] = items
        return listed

    # ---- authn/authz reviews ------------------------------------------------------------------------

    def _token_review(self, obj: dict[str, Any]) -> dict[str, Any]:
        token = (obj.get("spec") or {}).get("token", "")
        user = self.auth.tokens.get(token)
        status: dict[str, Any] = {
            "authenticated": user is not None,
            "user": clone(user) if user else {},
        }
        if obj.get("spec", {}).get("audiences"):
            status["audiences"] = obj["spec"]["audiences"]
        if user is None:
            status["error"] = "invalid bearer token"
        obj["status"] = status
        return obj

    def _subject_access_review(self, obj: dict[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec") or {}
        user = spec.get("user", "")
        groups = spec.get("groups") or []
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if ra:
            resource = ra.get("resource", "") + (f"/{ra['subresource']}" if ra.get("subresource") else "")
            ok = self.auth.allowed(
                user, groups, ra.get("verb", ""), ra.get("group", ""), resource, ra.get("namespace", "")
            )
        elif nra:
            ok = self.auth.allowed(user, groups, nra.get("verb", ""), "", nra.get("path", ""), "")
        else:
            ok = False
        obj["status"] = {"allowed": ok}
        if not ok:
            obj["status"]["reason"] = "no matching rule in the kubeemu authorization table"
        return obj


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What counts for metadata.generation: everything except metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _parse_rv(rv: str) -> int:
    try:
        return int(rv)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {rv!r}") from None


def parse_rv(rv: str) -> int:
    return _parse_rv(rv)


def _crd_status(crd: dict[str, Any]) -> dict[str, Any]:
    now = now_rfc3339()
    names = crd["spec"]["names"]
    accepted = {
        k: names[k]
        for k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
        if k in names
    }
    accepted.setdefault("listKind", names["kind"] + "List")
    accepted.setdefault("singular", names["kind"].lower())
    return {
        "acceptedNames": accepted,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
        "storedVersions": [storage_version(crd)],
    }
