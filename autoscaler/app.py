"""The composition root: ``inference-autoscaler run`` builds the adapters (Kubernetes, Prometheus, exporter,
external metrics API, decision board) and hands them to the controller, which sees only the ports
(:mod:`autoscaler.ports`).

The CLI calls :func:`register` and then the handler stored with ``set_defaults(handler=...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError

from autoscaler.adapters.apiserver_auth import KubeDelegatedAuth, read_authentication_configmap
from autoscaler.adapters.board import MemoryDecisionBoard
from autoscaler.adapters.cluster import KubeCluster
from autoscaler.adapters.exporter import Exporter
from autoscaler.adapters.kube import KubeTransport, new_api_client
from autoscaler.adapters.metrics_api import MetricsAPIServer
from autoscaler.adapters.prometheus import PrometheusMetricsSource, PrometheusSettings
from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.controller.command import ProfilePolicy, RecordingPolicy, TimeScaledPolicy
from autoscaler.controller.manager import Controller
from autoscaler.core.types import Policy
from autoscaler.errors import InputError, PermanentError, TemporaryError
from autoscaler.log import configure_logging
from autoscaler.ports import DecisionBoard, MetricsSource
from autoscaler.retry import Backoff
from autoscaler.settings import ControllerSettings

__all__ = ["prometheus_sources", "register", "run_controller", "settings_from_args"]

log = structlog.get_logger("autoscaler.controller")

# flag name → settings field; each flag's help is the field's own description.
_FLAGS = {
    "--kubeconfig": "kubeconfig",
    "--context": "context",
    "--namespaces": "namespaces",
    "--label-selector": "label_selector",
    "--lease-name": "lease_name",
    "--lease-namespace": "lease_namespace",
    "--lease-duration": "lease_duration",
    "--renew-deadline": "renew_deadline",
    "--retry-period": "retry_period",
    "--identity": "identity",
    "--health-port": "health_port",
    "--health-host": "health_host",
    "--metrics-port": "metrics_port",
    "--metrics-host": "metrics_host",
    "--external-metrics-port": "external_metrics_port",
    "--external-metrics-host": "external_metrics_host",
    "--tls-cert-file": "tls_cert_file",
    "--tls-key-file": "tls_key_file",
    "--time-scale": "time_scale",
    "--log-format": "log_format",
    "--api-timeout": "api_timeout",
    "--shutdown-grace": "shutdown_grace",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the controller (watches InferenceAutoscalers and scales their pools)",
        description="Run the controller. Every flag can also be set as an IAS_<NAME> environment variable.",
    )
    fields = ControllerSettings.model_fields
    for flag, name in _FLAGS.items():
        info = fields[name]
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            help=info.description,
            type=float if info.annotation is float else int if info.annotation is int else str,
        )
    parser.add_argument(
        "--record-decisions",
        dest="record_decisions",
        default=None,
        metavar="FILE",
        help="debugging: append every observation and decision, one JSON object per line, to FILE "
        "(the policy's inputs exactly as it receives them; large on a busy controller)",
    )
    parser.add_argument(
        "--leader-elect",
        dest="leader_elect",
        default=None,
        action=argparse.BooleanOptionalAction,
        help=fields["leader_elect"].description,
    )
    parser.set_defaults(handler=_handle)


def settings_from_args(args: argparse.Namespace) -> ControllerSettings:
    """Settings from flags over environment over defaults.

    Raises:
        InputError: naming the flag / variable and what was expected.
    """
    overrides = {
        name: getattr(args, name)
        for name in (*_FLAGS.values(), "leader_elect")
        if getattr(args, name, None) is not None
    }
    try:
        return ControllerSettings(**overrides)
    except ValidationError as err:
        problems = "; ".join(
            f"--{str(e['loc'][0]).replace('_', '-') if e['loc'] else 'settings'} "
            f"(IAS_{str(e['loc'][0]).upper() if e['loc'] else ''}): {e['msg']}"
            for e in err.errors(include_url=False)
        )
        raise InputError(problems, source="run") from None


def prometheus_sources() -> Callable[[InferenceAutoscalerSpec], tuple[str, MetricsSource]]:
    """``spec -> (key, MetricsSource)``: one PrometheusMetricsSource per (URL, timeout), created on first use."""
    cache: dict[str, MetricsSource] = {}

    def source_for(spec: InferenceAutoscalerSpec) -> tuple[str, MetricsSource]:
        url = spec.metrics.prometheus.url
        timeout = spec.metrics.prometheus.timeout_s
        key = f"{url}|{timeout}"
        if key not in cache:
            cache[key] = PrometheusMetricsSource(PrometheusSettings(url=url, timeout_s=min(timeout, 120.0)))
        return key, cache[key]

    return source_for




async def _external_metrics_server(
    settings: ControllerSettings, api_client: Any, board: DecisionBoard, stop: asyncio.Event
) -> MetricsAPIServer | None:
    """The external metrics API, authenticated from the cluster's ``extension-apiserver-authentication``
    ConfigMap and authorised by SubjectAccessReview, as every aggregated API server is. None when ``stop`` is
    set before the ConfigMap could be read.

    Raises:
        PermanentError: the ConfigMap cannot be read for good (403/404: the overlay's RoleBinding is missing).
        InputError: its CA bundles are malformed.
    """
    backoff = Backoff(base=1.0, cap=30.0)
    while True:
        try:
            auth_config = await read_authentication_configmap(api_client)
            break
        except TemporaryError as err:
            delay = backoff.next_delay()
            log.warning("cannot read the authentication configmap yet", error=str(err), retry_in=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return None
    delegated = KubeDelegatedAuth(api_client, timeout_s=min(5.0, settings.api_timeout))
    return MetricsAPIServer.create(
        board,
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        auth_config=auth_config,
        authorizer=delegated,
        token_authenticator=delegated,
        host=settings.external_metrics_host,
        port=settings.external_metrics_port,
    )


async def run_controller(
    settings: ControllerSettings,
    *,
    policy: Policy[InferenceAutoscalerSpec, Any],
    source_for: Callable[[InferenceAutoscalerSpec], tuple[str, MetricsSource]],
    board: DecisionBoard | None = None,
    stop: asyncio.Event | None = None,
    started: Callable[[Controller, Exporter | None, MetricsAPIServer | None], None] | None = None,
) -> None:
    """Run the controller until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None).

    Starts, on one decision board: the exporter (``settings.metrics_port``, unless -1), the external metrics
    API (``settings.external_metrics_port``, unless -1) and the controller, which feeds the exporter its
    reconcile durations, errors by kind and leader status. ``started`` is called once all of them listen
    (tests read the bound ports from it). Everything started is stopped on the way out, also on errors.
    """
    board = board if board is not None else MemoryDecisionBoard()
    own_stop = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if own_stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    api_client = await new_api_client(settings.kubeconfig, settings.context)
    transport = KubeTransport(api_client, timeout_s=settings.api_timeout)
    exporter: Exporter | None = None
    api_server: MetricsAPIServer | None = None
    controller: Controller | None = None
    try:
        if settings.metrics_port >= 0:
            exporter = Exporter(board, host=settings.metrics_host, port=settings.metrics_port)
            await exporter.start()
        if settings.external_metrics_port >= 0:
            api_server = await _external_metrics_server(settings, api_client, board, stop)
            if api_server is not None:
                await api_server.start()
                log.info("external metrics API listening", port=api_server.port)
        controller = Controller(
            settings, KubeCluster(transport), policy, source_for, board=board, instruments=exporter
        )
        if not stop.is_set():
            await controller.start()
            if started is not None:
                started(controller, exporter, api_server)
            await stop.wait()
    finally:
        if controller is not None:
            await controller.stop()
        if api_server is not None:
            await api_server.stop()
        if exporter is not None:
            await exporter.stop()
        await transport.close()
        if own_stop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)


def _handle(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(json=settings.log_format == "json")
    try:
        policy: Policy[InferenceAutoscalerSpec, Any] = ProfilePolicy()
        if settings.time_scale != 1.0:
            policy = TimeScaledPolicy(policy, settings.time_scale, time.time())
        recorder = RecordingPolicy(policy, args.record_decisions) if args.record_decisions else None
        try:
            asyncio.run(run_controller(settings, policy=recorder or policy, source_for=prometheus_sources()))
        finally:
            if recorder is not None:
                recorder.close()
    except PermanentError as err:
        raise InputError(str(err), source="run") from None
    return 0
