"""Serving TLS for the HTTPS endpoints: certificate files reloaded on change, or a self-signed pair.

:class:`ServingTLS` owns one *listening* :class:`ssl.SSLContext` whose ``sni_callback`` runs at the start of
every handshake (with or without SNI) and swaps in the newest *per-connection* context. A new context is built
when the certificate or key file's mtime/size changes (checked at most every ``check_interval_s``) or when the
client CAs change, so rotating a Secret-mounted certificate needs no restart. A half-written pair that fails
to load keeps the previous context and logs a warning.

The listening context fixes the client-certificate mode for the life of the socket: ``CERT_OPTIONAL`` when
client CAs were given at start (clients may present a certificate; when they do, it must verify), else
``CERT_NONE``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autoscaler.errors import InputError
from autoscaler.log import get_logger

__all__ = ["ServingTLS", "generate_self_signed"]

log = get_logger(__name__)


def generate_self_signed(
    hosts: Sequence[str], *, days: int = 365, common_name: str = "inference-autoscaler"
) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 serving certificate for ``hosts`` (DNS names or IP addresses).

    Returns:
        ``(certificate PEM, private key PEM)``; valid from one hour ago (clock skew) for ``days`` days.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


class ServingTLS:
    """Server-side TLS with hot reload of the serving pair and of the client CAs.

    Args:
        cert_file: PEM certificate (chain) file; ``None`` together with ``key_file=None`` generates a
            self-signed pair for ``self_signed_hosts`` (with a warning: the APIService must then use
            ``insecureSkipTLSVerify``).
        key_file: PEM private key file.
        client_ca_pem: PEM bundle of CAs whose client certificates are accepted at the TLS layer (the union of
            the x509 client CA and the front-proxy CA); empty means no client certificates are requested.
        check_interval_s: at most how often the files' mtimes are checked, seconds. 1 s keeps the check off
            the hot path while a rotated certificate is picked up almost at once.
        self_signed_hosts: DNS names / IPs for a generated certificate.
    """

    def __init__(
        self,
        cert_file: str | os.PathLike[str] | None,
        key_file: str | os.PathLike[str] | None,
        *,
        client_ca_pem: bytes = b"",
        check_interval_s: float = 1.0,
        self_signed_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    ) -> None:
        if (cert_file is None) != (key_file is None):
            raise InputError("give both a certificate file and a key file, or neither", source="tls")
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.self_signed = cert_file is None
        if cert_file is None or key_file is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="ias-tls-")
            cert_pem, key_pem = generate_self_signed(self_signed_hosts)
            cert_path = Path(self._tmpdir.name, "tls.crt")
            key_path = Path(self._tmpdir.name, "tls.key")
            cert_path.write_bytes(cert_pem)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key_pem)
            log.warning(
                "no serving certificate given: generated a self-signed one that clients cannot verify; "
                "the APIService needs insecureSkipTLSVerify - mount a real certificate for production",
                hosts=list(self_signed_hosts),
            )
        else:
            cert_path, key_path = Path(cert_file), Path(key_file)
        self.cert_path = cert_path
        self.key_path = key_path
        self._client_ca_pem = client_ca_pem
        self._interval = check_interval_s
        self._lock = threading.Lock()
        self._stamps = self._read_stamps()
        self._current = self._build_context()  # raises InputError on a bad initial pair
        self._checked_at = time.monotonic()
        self.reloads = 0
        self.listening_context = self._build_context()
        self.listening_context.verify_mode = ssl.CERT_OPTIONAL if client_ca_pem else ssl.CERT_NONE
        self.listening_context.sni_callback = self._on_client_hello

    def _read_stamps(self) -> tuple[tuple[int, int], tuple[int, int]]:
        try:
            return _stamp(self.cert_path), _stamp(self.key_path)
        except OSError as exc:
            raise InputError(
                f"cannot read serving certificate/key: {exc.strerror}", source=str(exc.filename)
            ) from exc

    def _build_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as exc:
            raise InputError(
                f"cannot load serving certificate/key pair ({exc}); expected a PEM certificate and its PEM "
                "private key",
                source=f"{self.cert_path}, {self.key_path}",
            ) from exc
        if self._client_ca_pem:
            try:
                ctx.load_verify_locations(cadata=self._client_ca_pem.decode("ascii"))
            except (ssl.SSLError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot load client CA bundle: {exc}", source="client CA") from exc
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def set_client_cas(self, client_ca_pem: bytes) -> None:
        """Replace the client CA bundle for new connections (keeps the old one if the new one is invalid)."""
        with self._lock:
            old = self._client_ca_pem
            self._client_ca_pem = client_ca_pem
            try:
                self._current = self._build_context()
            except InputError:
                self._client_ca_pem = old
                raise

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Rebuild the per-connection context if the files changed; returns True when it did."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked_at < self._interval:
                return False
            self._checked_at = now
            try:
                stamps = self._read_stamps()
            except InputError as exc:
                log.warning("serving certificate not readable, keeping the previous one", error=str(exc))
                return False
            if stamps == self._stamps and not force:
                return False
            try:
                ctx = self._build_context()
            except InputError as exc:
                # Typically a rotation caught between writing the certificate and the key: retry next time.
                log.warning("new serving certificate does not load, keeping the previous one", error=str(exc))
                return False
            self._stamps = stamps
            self._current = ctx
            self.reloads += 1
            log.info("serving certificate reloaded", path=str(self.cert_path))
            return True

    def _on_client_hello(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        self.maybe_reload()
        sslobj.context = self._current

    def close(self) -> None:
        """Delete a generated self-signed pair from disk."""
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
