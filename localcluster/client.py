"""A small synchronous REST client for the local control plane: what tests, the e2e box and the benches use to
create, read and delete objects. The controller under test never uses it (it has its own adapters)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests

JSON = dict[str, Any]


class KubeError(RuntimeError):
    """A non-2xx answer; ``status`` is the HTTP code, ``body`` the Status object (or text)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)[:500]
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        """The Status ``reason`` (``AlreadyExists``, ``Invalid``, ``Forbidden``…) or ``""``."""
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""


@dataclass(frozen=True)
class Kind:
    """Where a kind lives: its API version, plural resource name and scope."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        """The REST path of the collection, or of one object (and a subresource)."""
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class Kube:
    """Blocking REST calls to a kube-apiserver with a bearer token (the admin's, by default).

    Args:
        url: ``https://127.0.0.1:<port>``.
        token: bearer token.
        ca_file: the CA that signed the server's certificate.
    """

    def __init__(self, url: str, token: str, ca_file: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would override verify; no proxies on loopback
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.verify = ca_file
        self._kinds: dict[tuple[str, str], Kind] = {}

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    # ------------------------------------------------------------------------------------------ raw

    def request(self, method: str, path: str, body: Any = None, *, params: dict[str, Any] | None = None,
                content_type: str = "application/json", timeout: float = 30.0) -> Any:
        """One call; the decoded JSON answer, or :class:`KubeError` for any non-2xx status."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        data = body if isinstance(body, (bytes, str)) or body is None else requests.compat.json.dumps(body)
        r = self.http.request(method, self.url + path, data=data, params=params, headers=headers, timeout=timeout)
        try:
            decoded: Any = r.json()
        except ValueError:
            decoded = r.text
        if r.status_code >= 300:
            raise KubeError(method, path, r.status_code, decoded)
        return decoded

    def kind(self, api_version: str, kind: str, *, refresh: bool = False) -> Kind:
        """Discover a kind's plural and scope (cached; ``refresh`` after installing a CRD)."""
        key = (api_version, kind)
        if refresh or key not in self._kinds:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            for res in self.request("GET", base)["resources"]:
                if "/" not in res["name"]:
                    self._kinds[(api_version, res["kind"])] = Kind(api_version, res["kind"], res["name"],
                                                                  res["namespaced"])
            if key not in self._kinds:
                raise KubeError("GET", base, 404, f"no kind {kind} in {api_version}")
        return self._kinds[key]

    # ------------------------------------------------------------------------------------------ objects

    def create(self, obj: JSON, *, namespace: str | None = None, dry_run: bool = False,
               field_validation: str | None = None) -> JSON:
        """POST ``obj`` (its ``metadata.namespace``, or ``namespace``); the stored object."""
        k = self._kind_of(obj)
        ns = namespace or obj.get("metadata", {}).get("namespace")
        params = {"dryRun": "All"} if dry_run else {}
        if field_validation:
            params["fieldValidation"] = field_validation
        return dict(self.request("POST", k.path(ns), obj, params=params))

    def apply(self, obj: JSON, *, manager: str = "localcluster", dry_run: bool = False, force: bool = True) -> JSON:
        """Server-side apply of ``obj``, as ``kubectl apply --server-side`` does."""
        k = self._kind_of(obj)
        md = obj["metadata"]
        params = {"fieldManager": manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return dict(self.request("PATCH", k.path(md.get("namespace"), md["name"]), obj, params=params,
                                 content_type="application/apply-patch+yaml"))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON:
        """One object; :class:`KubeError` (404) if it does not exist."""
        return dict(self.request("GET", self.kind(api_version, kind).path(namespace, name)))

    def get_or_none(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        """One object, or None if it does not exist."""
        try:
            return self.get(api_version, kind, name, namespace)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None,
                     label_selector: str | None = None) -> list[JSON]:
        """The items of a list (all namespaces when ``namespace`` is None); each has apiVersion and kind set."""
        params = {"labelSelector": label_selector} if label_selector else None
        items = self.request("GET", self.kind(api_version, kind).path(namespace), params=params)["items"]
        return [{"apiVersion": api_version, "kind": kind, **i} for i in items]

    def update(self, obj: JSON, *, sub: str | None = None) -> JSON:
        """PUT ``obj`` (with its resourceVersion, so a stale copy gets 409); ``sub="status"`` for the status."""
        md = obj["metadata"]
        return dict(self.request("PUT", self._kind_of(obj).path(md.get("namespace"), md["name"], sub), obj))

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: JSON, *,
              sub: str | None = None, patch_type: str = "merge") -> JSON:
        """A ``merge`` (RFC 7386), ``strategic`` or ``json`` patch."""
        ctype = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json"}[patch_type]
        path = self.kind(api_version, kind).path(namespace, name, sub)
        return dict(self.request("PATCH", path, patch, content_type=ctype))

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               grace_seconds: int | None = None, propagation: str = "Background", missing_ok: bool = True) -> None:
        """DELETE one object (``missing_ok``: a 404 is fine)."""
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", self.kind(api_version, kind).path(namespace, name), body)
        except KubeError as err:
            if not (missing_ok and err.status == 404):
                raise

    def delete_all(self, api_version: str, kind: str, namespace: str, *, grace_seconds: int | None = None) -> None:
        """DELETE the whole collection in ``namespace``."""
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        self.request("DELETE", self.kind(api_version, kind).path(namespace), body)

    def ensure_namespace(self, name: str) -> None:
        """Create the namespace unless it exists, and wait until its ``default`` ServiceAccount exists (Pods need it)."""
        try:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except KubeError as err:
            if err.status != 409:
                raise
        wait_until(lambda: self.get_or_none("v1", "ServiceAccount", "default", name) is not None,
                   what=f"ServiceAccount {name}/default", timeout_s=30)

    def create_all(self, objs: Iterable[JSON]) -> None:
        """Create each object in order."""
        for obj in objs:
            self.create(obj)

    def _kind_of(self, obj: JSON) -> Kind:
        return self.kind(obj["apiVersion"], obj["kind"])


def wait_until(check: Callable[[], Any], *, what: str, timeout_s: float = 30.0, interval_s: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (returned); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s:g} s")
        time.sleep(interval_s)
