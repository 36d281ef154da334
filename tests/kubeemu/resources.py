"""The resource types the emulator serves: built-ins declared here, custom ones from CRDs at run time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]


@dataclass(frozen=True)
class ScaleSpec:
    """Where a kind keeps the numbers a ``autoscaling/v1 Scale`` shows (CRD ``subresources.scale`` paths)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    # None: derive the selector from .spec.selector (metav1.LabelSelector), as built-in workloads do.
    label_selector_path: str | None = None


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    custom: bool = False  # served from a CRD: schema validation, no strategic merge patch
    schema: dict[str, Any] | None = None  # openAPIV3Schema (custom resources)
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    extra_field_selectors: frozenset[str] = frozenset()
    crd_name: str = ""

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored once per group+plural; every served version is a view of the same data.
        ``events.k8s.io`` Events are a view of the core Events (see ``events.py``)."""
        if self.group == "events.k8s.io" and self.plural == "events":
            return ("", "events")
        return (self.group, self.plural)

    def field_selector_allowed(self, path: str) -> bool:
        return path in ("metadata.name", "metadata.namespace") or path in self.extra_field_selectors

    def discovery(self) -> list[dict[str, Any]]:
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
        }
        if self.short_names:
            main["shortNames"] = self.short_names
        if self.categories:
            main["categories"] = self.categories
        out = [main]
        if self.status_subresource:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": SUB_VERBS,
                }
            )
        if self.scale is not None:
            out.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": SUB_VERBS,
                }
            )
        return out


_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
_EVENTS_V1_FIELDS = frozenset(
    {
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "reason",
        "reportingController",
        "type",
    }
)


def builtin_types() -> list[ResourceType]:
    rw = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    return [
        ResourceType(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=["ns"],
            verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
            status_subresource=True,
            extra_field_selectors=frozenset({"status.phase"}),
        ),
        ResourceType(
            "",
            "v1",
            "pods",
            "Pod",
            short_names=["po"],
            categories=["all"],
            status_subresource=True,
            extra_field_selectors=_POD_FIELDS,
        ),
        ResourceType("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
        ResourceType("", "v1", "secrets", "Secret", extra_field_selectors=frozenset({"type"})),
        ResourceType(
            "", "v1", "services", "Service", short_names=["svc"], categories=["all"], status_subresource=True
        ),
        ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"]),
        ResourceType("", "v1", "events", "Event", short_names=["ev"], extra_field_selectors=_EVENT_FIELDS),
        ResourceType(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            short_names=["ev"],
            extra_field_selectors=_EVENTS_V1_FIELDS,
        ),
        ResourceType(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short_names=["deploy"],
            categories=["all"],
            status_subresource=True,
            scale=ScaleSpec(),
            verbs=rw,
        ),
        ResourceType(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            short_names=["sts"],
            categories=["all"],
            status_subresource=True,
            scale=ScaleSpec(),
            verbs=rw,
        ),
        ResourceType(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            short_names=["rs"],
            categories=["all"],
            status_subresource=True,
            scale=ScaleSpec(),
            verbs=rw,
        ),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
        ResourceType(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            short_names=["hpa"],
            categories=["all"],
            status_subresource=True,
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            status_subresource=True,
        ),
        ResourceType(
            "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False, verbs=["create"]
        ),
        ResourceType(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            namespaced=False,
            verbs=["create"],
        ),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of an apiextensions.k8s.io/v1 CRD."""
    spec = crd["spec"]
    names = spec["names"]
    out: list[ResourceType] = []
    for ver in spec.get("versions", []):
        if not ver.get("served", True):
            continue
        subs = ver.get("subresources") or {}
        scale = None
        if "scale" in subs:
            s = subs["scale"]
            scale = ScaleSpec(
                spec_replicas_path=s["specReplicasPath"],
                status_replicas_path=s["statusReplicasPath"],
                label_selector_path=s.get("labelSelectorPath") or "",
            )
        out.append(
            ResourceType(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                status_subresource="status" in subs,
                scale=scale,
                custom=True,
                schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=list(ver.get("additionalPrinterColumns") or []),
                extra_field_selectors=frozenset(
                    f["jsonPath"].lstrip(".") for f in ver.get("selectableFields") or []
                ),
                crd_name=crd["metadata"]["name"],
            )
        )
    return out


def storage_version(crd: dict[str, Any]) -> str:
    for ver in crd["spec"].get("versions", []):
        if ver.get("storage"):
            return str(ver["name"])
    return str(crd["spec"]["versions"][0]["name"])
