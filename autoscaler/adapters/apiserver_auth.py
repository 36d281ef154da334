"""Authentication and authorization the way an aggregated (extension) API server does them.

Who is calling, in the order ``k8s.io/apiserver`` tries:

1. **Front proxy** - the kube-apiserver's aggregator connects with a client certificate issued by the
   ``requestheader-client-ca-file`` CA whose common name is in ``requestheader-allowed-names`` (any name when
   that list is empty) and names the real user in ``X-Remote-User`` / ``X-Remote-Group`` /
   ``X-Remote-Extra-*``. Those headers are read **only** on such a connection; anywhere else they are ignored.
2. **x509 client certificate** issued by the ``client-ca-file`` CA: user = common name, groups = orgs.
3. **Bearer token** checked with a ``TokenReview`` against the API server (optional).

Then whether they may: a ``SubjectAccessReview`` (optional; members of ``system:masters`` are always allowed,
as in ``k8s.io/apiserver``), or :class:`AllowAuthenticated` when no API server is available (tests, dev).

Both review results are cached briefly (10 s, the API server's own webhook defaults) so a busy HPA does not
turn every metric read into two API calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from autoscaler.errors import InputError, PermanentError, TemporaryError

__all__ = [
    "AllowAuthenticated",
    "AuthenticationConfig",
    "Authorizer",
    "CertificateIdentity",
    "KubeDelegatedAuth",
    "RequestAttributes",
    "TokenAuthenticator",
    "UserInfo",
    "identify_client_certificate",
    "read_authentication_configmap",
]

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"
ALWAYS_ALLOW_GROUPS = frozenset({"system:masters"})


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated caller."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    via: str = ""  # "front-proxy" | "x509" | "token": how the identity was established (for logs)


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a request does, in SubjectAccessReview terms: a resource request or a non-resource path."""

    verb: str
    path: str
    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str = ""

    @property
    def is_resource(self) -> bool:
        """True for a metric read (resource attributes), False for discovery / OpenAPI (path attributes)."""
        return bool(self.resource)


def _load_bundle(pem: bytes, source: str) -> tuple[x509.Certificate, ...]:
    if not pem.strip():
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise InputError(f"not a PEM certificate bundle: {exc}", source=source) from exc


def _json_list(raw: str | None, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None or raw == "":
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"expected a JSON list of strings: {exc.msg}", source=key) from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a JSON list of strings", source=key)
    return tuple(value)


@dataclass(frozen=True)
class AuthenticationConfig:
    """Inputs of client-certificate authentication.

    As published in the ``kube-system/extension-apiserver-authentication`` ConfigMap.

    Attributes:
        client_ca_pem: CA bundle for plain x509 client certificates (``client-ca-file``).
        requestheader_client_ca_pem: CA bundle for the front proxy (``requestheader-client-ca-file``).
        requestheader_allowed_names: common names the front proxy may have; empty = any.
        requestheader_username_headers: headers carrying the user name, first non-empty wins.
        requestheader_group_headers: headers carrying groups (repeatable).
        requestheader_extra_headers_prefix: header prefixes carrying extra attributes.
    """

    client_ca_pem: bytes = b""
    requestheader_client_ca_pem: bytes = b""
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ("X-Remote-User",)
    requestheader_group_headers: tuple[str, ...] = ("X-Remote-Group",)
    requestheader_extra_headers_prefix: tuple[str, ...] = ("X-Remote-Extra-",)

    def __post_init__(self) -> None:
        # Fail at load time, naming the input, rather than on the first request.
        object.__setattr__(self, "_client_cas", _load_bundle(self.client_ca_pem, "client-ca-file"))
        object.__setattr__(
            self, "_proxy_cas", _load_bundle(self.requestheader_client_ca_pem, "requestheader-client-ca-file")
        )

    @property
    def client_cas(self) -> tuple[x509.Certificate, ...]:
        """Parsed ``client-ca-file`` certificates."""
        cas: tuple[x509.Certificate, ...] = object.__getattribute__(self, "_client_cas")
        return cas

    @property
    def proxy_cas(self) -> tuple[x509.Certificate, ...]:
        """Parsed ``requestheader-client-ca-file`` certificates."""
        cas: tuple[x509.Certificate, ...] = object.__getattribute__(self, "_proxy_cas")
        return cas

    @property
    def tls_client_ca_pem(self) -> bytes:
        """Union of both bundles: every CA whose certificates the TLS layer accepts."""
        parts = [p.strip() for p in (self.client_ca_pem, self.requestheader_client_ca_pem) if p.strip()]
        return b"\n".join(parts) + (b"\n" if parts else b"")

    @classmethod
    def from_configmap_data(cls, data: Mapping[str, str]) -> AuthenticationConfig:
        """Build from the ConfigMap's ``data`` (keys as the API server writes them)."""
        src = f"configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
        try:
            return cls(
                client_ca_pem=data.get("client-ca-file", "").encode("ascii"),
                requestheader_client_ca_pem=data.get("requestheader-client-ca-file", "").encode("ascii"),
                requestheader_allowed_names=_json_list(
                    data.get("requestheader-allowed-names"), f"{src} requestheader-allowed-names", ()
                ),
                requestheader_username_headers=_json_list(
                    data.get("requestheader-username-headers"),
                    f"{src} requestheader-username-headers",
                    ("X-Remote-User",),
                ),
                requestheader_group_headers=_json_list(
                    data.get("requestheader-group-headers"),
                    f"{src} requestheader-group-headers",
                    ("X-Remote-Group",),
                ),
                requestheader_extra_headers_prefix=_json_list(
                    data.get("requestheader-extra-headers-prefix"),
                    f"{src} requestheader-extra-headers-prefix",
                    ("X-Remote-Extra-",),
                ),
            )
        except UnicodeEncodeError as exc:
            raise InputError("CA bundles must be ASCII PEM", source=src) from exc

    @classmethod
    def from_files(
        cls,
        *,
        client_ca_file: str | Path | None = None,
        requestheader_client_ca_file: str | Path | None = None,
        requestheader_allowed_names: Sequence[str] = (),
    ) -> AuthenticationConfig:
        """Build from files and flags (``--client-ca-file``, ``--requestheader-client-ca-file``, ...)."""

        def read(path: str | Path | None) -> bytes:
            if path is None:
                return b""
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read CA bundle: {exc.strerror}", source=str(path)) from exc

        return cls(
            client_ca_pem=read(client_ca_file),
            requestheader_client_ca_pem=read(requestheader_client_ca_file),
            requestheader_allowed_names=tuple(requestheader_allowed_names),
        )


async def read_authentication_configmap(api_client: Any) -> AuthenticationConfig:
    """Read ``kube-system/extension-apiserver-authentication`` through a kubernetes_asyncio ``ApiClient``.

    Raises:
        TemporaryError: the API server could not be reached or answered 5xx/429.
        PermanentError: 403/404 (the RoleBinding to ``extension-apiserver-authentication-reader`` is missing).
        InputError: the ConfigMap's content is malformed.
    """
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        cm = await client.CoreV1Api(api_client).read_namespaced_config_map(
            CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, _request_timeout=10
        )
    except ApiException as exc:
        _raise_for_api(exc, f"reading configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}")
    except (OSError, TimeoutError) as exc:
        raise TemporaryError(
            f"reading configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {exc}", delay=5
        ) from exc
    return AuthenticationConfig.from_configmap_data(dict(cm.data or {}))


def _raise_for_api(exc: Any, what: str) -> Any:
    status = int(getattr(exc, "status", 0) or 0)
    if status in (429,) or status >= 500 or status == 0:
        raise TemporaryError(f"{what}: HTTP {status} {getattr(exc, 'reason', '')}", delay=5) from exc
    raise PermanentError(f"{what}: HTTP {status} {getattr(exc, 'reason', '')}") from exc


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a verified client certificate says: which CA issued it and its subject."""

    kind: str  # "front-proxy" | "x509"
    common_name: str
    organizations: tuple[str, ...]


def _issued_by(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    for ca in cas:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:  # InvalidSignature, a key type mismatch, ...: not this CA
            continue
        return True
    return False


def identify_client_certificate(der: bytes, config: AuthenticationConfig) -> CertificateIdentity | None:
    """Classify a certificate the TLS layer already verified.

    The TLS layer trusts the union of both CA bundles, so this decides which bundle issued the leaf (only
    direct issuance is recognised) and returns ``None`` when neither does any more (a CA was rotated out).
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    if config.proxy_cas and _issued_by(cert, config.proxy_cas):
        return CertificateIdentity("front-proxy", cn, orgs)
    if config.client_cas and _issued_by(cert, config.client_cas):
        return CertificateIdentity("x509", cn, orgs)
    return None


class TokenAuthenticator(Protocol):
    """Turns a bearer token into a user, or ``None`` when the token is not valid."""

    async def authenticate_token(self, token: str) -> UserInfo | None:
        """Raises :class:`TemporaryError` when the reviewer cannot be reached."""
        ...


class Authorizer(Protocol):
    """Decides whether a user may do what a request does."""

    async def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """``(allowed, reason)``; raises :class:`TemporaryError` when the decision cannot be made now."""
        ...


class AllowAuthenticated:
    """Authorizer that lets every authenticated user read. For tests and single-user setups only."""

    async def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """Always allowed."""
        return True, "every authenticated user is allowed"


class _TTLCache:
    """A small bounded cache with per-entry expiry (monotonic seconds)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_entries

    def get(self, key: str) -> Any:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._data[key]
            return None
        return hit[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


class KubeDelegatedAuth:
    """TokenReview + SubjectAccessReview against the API server through a kubernetes_asyncio ``ApiClient``.

    Args:
        api_client: a configured ``kubernetes_asyncio.client.ApiClient`` (its lifetime is the caller's).
        authn_ttl_s: how long a TokenReview answer is reused, seconds (API server default: 10).
        authz_allowed_ttl_s / authz_denied_ttl_s: how long SubjectAccessReview answers are reused, seconds.
        timeout_s: per-call timeout, seconds; a slow API server turns into 503, never a hung request.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        authn_ttl_s: float = 10.0,
        authz_allowed_ttl_s: float = 10.0,
        authz_denied_ttl_s: float = 10.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._api = api_client
        self._authn = _TTLCache()
        self._authz = _TTLCache()
        self._authn_ttl = authn_ttl_s
        self._allowed_ttl = authz_allowed_ttl_s
        self._denied_ttl = authz_denied_ttl_s
        self._timeout = timeout_s
        self.api_calls = 0  # number of reviews actually sent (cache misses), for tests and debugging

    async def authenticate_token(self, token: str) -> UserInfo | None:
        """TokenReview ``token``; ``None`` when the API server says it is not authenticated."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        cached = self._authn.get(key)
        if cached is not None:
            return cached[0]  # type: ignore[no-any-return]
        body = client.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=client.V1TokenReviewSpec(token=token),
        )
        self.api_calls += 1
        try:
            review = await client.AuthenticationV1Api(self._api).create_token_review(
                body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            _raise_for_api(exc, "TokenReview")
        except (OSError, TimeoutError) as exc:
            raise TemporaryError(f"TokenReview: {exc!r}", delay=2) from exc
        status = review.status
        user: UserInfo | None = None
        if status is not None and status.authenticated and status.user is not None and status.user.username:
            u = status.user
            user = UserInfo(
                name=u.username,
                groups=tuple(u.groups or ()),
                uid=u.uid or "",
                extra={k: tuple(v) for k, v in (u.extra or {}).items()},
                via="token",
            )
        self._authn.put(key, (user,), self._authn_ttl)
        return user

    async def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """SubjectAccessReview of ``user`` doing ``attrs``; ``system:masters`` is allowed without asking."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        if ALWAYS_ALLOW_GROUPS.intersection(user.groups):
            return True, "member of system:masters"
        key = json.dumps(
            [
                user.name,
                sorted(user.groups),
                user.uid,
                sorted((k, list(v)) for k, v in user.extra.items()),
                attrs.verb,
                attrs.path if not attrs.is_resource else "",
                attrs.group,
                attrs.version,
                attrs.resource,
                attrs.namespace,
            ]
        )
        cached = self._authz.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        spec = client.V1SubjectAccessReviewSpec(
            user=user.name,
            groups=list(user.groups),
            uid=user.uid or None,
            extra={k: list(v) for k, v in user.extra.items()} or None,
        )
        if attrs.is_resource:
            spec.resource_attributes = client.V1ResourceAttributes(
                group=attrs.group,
                version=attrs.version,
                resource=attrs.resource,
                namespace=attrs.namespace,
                verb=attrs.verb,
            )
        else:
            spec.non_resource_attributes = client.V1NonResourceAttributes(path=attrs.path, verb=attrs.verb)
        body = client.V1SubjectAccessReview(
            api_version="authorization.k8s.io/v1", kind="SubjectAccessReview", spec=spec
        )
        self.api_calls += 1
        try:
            review = await client.AuthorizationV1Api(self._api).create_subject_access_review(
                body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            _raise_for_api(exc, "SubjectAccessReview")
        except (OSError, TimeoutError) as exc:
            raise TemporaryError(f"SubjectAccessReview: {exc!r}", delay=2) from exc
        status = review.status
        allowed = bool(status is not None and status.allowed and not status.denied)
        reason = (status.reason or "") if status is not None else ""
        result = (allowed, reason)
        self._authz.put(key, result, self._allowed_ttl if allowed else self._denied_ttl)
        return result
