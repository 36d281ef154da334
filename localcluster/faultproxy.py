"""A recording, fault-injecting reverse proxy in front of the real kube-apiserver.

The controller under test is pointed at the proxy (TLS, a certificate from the cluster CA); the proxy forwards
every request, headers and body unchanged, to the apiserver and streams the answer back (watches included). On
the way it records each request (:attr:`FaultProxy.requests`) and applies the active :class:`~.faults.Faults`:
added latency, HTTP errors (a Status body, nothing forwarded), 409 Conflict storms on writes, a 410 Expired
ERROR event for the next watches, and ending every open watch stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .faults import Faults

_REASONS = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 429: "TooManyRequests"}
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


@dataclass
class RequestRecord:
    """One request seen by the proxy; ``status`` is None while a watch is still streaming."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int | None = None
    watch: bool = False
    started: float = field(default_factory=time.monotonic)


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.json_response(body, status=code)


class FaultProxy:
    """The proxy on a free loopback port (``url``). Start with :meth:`start`, stop with :meth:`stop`.

    Args:
        upstream: the apiserver's URL.
        ca_file: the CA that signed the apiserver's certificate (and ``serving``'s).
        serving_cert, serving_key: the proxy's own TLS certificate (for 127.0.0.1).
    """

    def __init__(self, upstream: str, ca_file: str, serving_cert: str, serving_key: str) -> None:
        self.upstream = upstream
        self.requests: list[RequestRecord] = []
        self.faults = Faults(self._drop_watches)
        self.url = ""
        self._client_ssl = ssl.create_default_context(cafile=ca_file)
        self._server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ssl.load_cert_chain(serving_cert, serving_key)
        self._watches: set[aiohttp.ClientResponse] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_ssl)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Close every stream and stop listening."""
        self._drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def request_count(self, method: str | None = None, path: str | None = None, *,
                      watch: bool | None = None) -> int:
        """How many recorded requests match ``method``, the path regex ``path`` and ``watch``."""
        pat = re.compile(path) if path else None
        return sum(1 for r in self.requests
                   if (method is None or r.method == method.upper()) and (pat is None or pat.search(r.path))
                   and (watch is None or r.watch == watch))

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()

    def _drop_watches(self) -> int:
        # Closing the upstream side ends the copy loop in _stream, which then ends the client's stream cleanly.
        n = len(self._watches)
        for upstream in list(self._watches):
            upstream.close()
        return n

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch", "").lower() in ("1", "true") or "/watch/" in request.path
        rec = RequestRecord(request.method, request.path, dict(request.query),
                            request.headers.get("Content-Type", ""), watch=watch)
        self.requests.append(rec)
        delay = self.faults.latency_for(request.method, request.path)
        if delay:
            await asyncio.sleep(delay)
        code = self.faults.error_for(request.method, request.path)
        if code is not None:
            resp: web.StreamResponse = _status(code, _REASONS.get(code, "InternalError"),
                                               f"fault proxy: injected HTTP {code}")
        elif self.faults.conflict_for(request.method, request.path):
            name = request.path.rstrip("/").split("/")[-1]
            resp = _status(409, "Conflict", f"Operation cannot be fulfilled on {name}: the object has been "
                                            "modified; please apply your changes to the latest version and try again")
        elif watch and self.faults.take_expired_watch():
            resp = await self._expired(request)
        else:
            resp = await self._forward(request, rec)
        rec.status = resp.status
        return resp

    async def _expired(self, request: web.Request) -> web.StreamResponse:
        """What the apiserver answers a watch from a compacted resourceVersion: 200, one ERROR event, end."""
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired",
                  "code": 410, "message": f"too old resource version: {request.query.get('resourceVersion', '0')}"}
        await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def _forward(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        try:
            upstream = await self._http.request(
                request.method, self.upstream + request.rel_url.path_qs, headers=headers, data=body or None,
                ssl=self._client_ssl, allow_redirects=False)
        except aiohttp.ClientError as err:
            return _status(503, "ServiceUnavailable", f"fault proxy: apiserver unreachable: {err}")
        async with upstream:
            if not rec.watch:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
            return await self._stream(request, upstream)

    async def _stream(self, request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        resp = web.StreamResponse(status=upstream.status, headers={
            k: v for k, v in upstream.headers.items() if k.lower() not in _HOP})
        await resp.prepare(request)
        self._watches.add(upstream)
        try:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
        finally:
            self._watches.discard(upstream)
        return resp


def proxied_kubeconfig(plane: Any, proxy: FaultProxy, path: Any, **kwargs: Any) -> Any:
    """A kubeconfig like the admin's, pointing at ``proxy`` instead of the apiserver."""
    return plane.kubeconfig(path, server=proxy.url, **kwargs)
