"""``inference-autoscaler run``: the controller process.

The CLI calls :func:`register` and then the handler stored with ``set_defaults(handler=...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from autoscaler.adapters.kube import KubeTransport, new_api_client
from autoscaler.api.durations import parse_duration
from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.types import Decision, Observation, Policy
from autoscaler.errors import InputError
from autoscaler.ports import DecisionBoard, MetricsSource
from autoscaler.settings import ControllerSettings

__all__ = ["ProfilePolicy", "register", "run_controller", "settings_from_args"]

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


def _prometheus_sources() -> Callable[[InferenceAutoscalerSpec], tuple[str, MetricsSource]]:
    """One PrometheusMetricsSource per (URL, timeout), created on first use."""
    import importlib

    # Imported lazily: the Prometheus adapter is only needed by `run`, not by importing this module.
    prometheus: Any = importlib.import_module("autoscaler.adapters.prometheus")

    cache: dict[str, MetricsSource] = {}

    def source_for(spec: InferenceAutoscalerSpec) -> tuple[str, MetricsSource]:
        url = spec.metrics.prometheus.url
        timeout = parse_duration(spec.metrics.prometheus.timeout)
        key = f"{url}|{timeout}"
        if key not in cache:
            cache[key] = prometheus.PrometheusMetricsSource(
                prometheus.PrometheusSettings(url=url, timeout_s=min(timeout, 120.0))
            )
        return key, cache[key]

    return source_for


class ProfilePolicy:
    """The control core's ``SLOPolicy``, one instance per performance profile named in the specs.

    ``SLOPolicy`` is built around one measured profile; InferenceAutoscalers name theirs in
    ``spec.performance.profile``, so this wrapper loads each profile once (from the bundled catalog) and
    delegates. Still a pure policy: the state is the wrapped policy's state.
    """

    name = "slo"

    def __init__(self) -> None:
        self._policies: dict[str, Any] = {}

    def _policy(self, spec: InferenceAutoscalerSpec) -> Any:
        key = spec.performance.profile
        if key not in self._policies:
            from autoscaler.catalog import load_profile
            from autoscaler.core.controller_policy import SLOPolicy

            self._policies[key] = SLOPolicy(load_profile(key))
        return self._policies[key]

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> Any:
        """The wrapped policy's initial state."""
        return self._policy(spec).initial_state(spec, now)

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: Any, now: float
    ) -> tuple[Decision, Any]:
        """The wrapped policy's decision."""
        result: tuple[Decision, Any] = self._policy(spec).decide(spec, observation, state, now)
        return result


async def run_controller(
    settings: ControllerSettings,
    *,
    policy: Policy[InferenceAutoscalerSpec, Any],
    source_for: Callable[[InferenceAutoscalerSpec], tuple[str, MetricsSource]],
    board: DecisionBoard | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the controller until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    from autoscaler.controller.manager import Controller

    api_client = await new_api_client(settings.kubeconfig, settings.context)
    transport = KubeTransport(api_client, timeout_s=settings.api_timeout)
    controller = Controller(settings, transport, policy, source_for, board=board)
    own_stop = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if own_stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await controller.run(stop)
    finally:
        if own_stop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)


def _handle(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        from autoscaler.log import configure_logging

        configure_logging(json=settings.log_format == "json")
    except ImportError:  # pragma: no cover - log module ships with the package
        pass
    board: DecisionBoard | None = None
    try:
        from autoscaler.adapters.board import MemoryDecisionBoard

        board = MemoryDecisionBoard()
    except ImportError:  # pragma: no cover - the board ships with the package
        board = None
    asyncio.run(
        run_controller(settings, policy=ProfilePolicy(), source_for=_prometheus_sources(), board=board)
    )
    return 0
