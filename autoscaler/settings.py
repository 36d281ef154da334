"""Controller settings, from flags and from the environment (prefix ``IAS_``), with units and defaults.

Precedence: command-line flag > environment variable > default. Every field below documents its unit and
why the default is what it is; ``docs/controller.md`` carries the same table.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ControllerSettings"]


def _default_identity() -> str:
    # Pod name (the hostname in a pod) plus a random suffix, so two processes on one host never share it.
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class ControllerSettings(BaseSettings):
    """Settings of ``inference-autoscaler run``. Environment variables are ``IAS_<FIELD>`` in upper case."""

    model_config = SettingsConfigDict(env_prefix="IAS_", extra="forbid", validate_assignment=True)

    kubeconfig: str | None = Field(
        default=None,
        description="Path of a kubeconfig file. Default: in-cluster service account, else ~/.kube/config.",
    )
    context: str | None = Field(
        default=None, description="kubeconfig context to use. Default: the current one."
    )
    namespaces: str = Field(
        default="",
        description="Comma-separated namespaces to watch. Default empty: all namespaces (one cluster-wide watch).",
    )
    label_selector: str = Field(
        default="",
        description=(
            "Label selector on InferenceAutoscalers (e.g. shard=a), to split them across controller "
            "instances. Default empty: all."
        ),
    )
    leader_elect: bool = Field(
        default=True,
        description="Run leader election so that only one replica actuates. Default true (safe with replicas > 1).",
    )
    lease_name: str = Field(default="inference-autoscaler", min_length=1, description="Name of the Lease.")
    lease_namespace: str = Field(
        default="",
        description="Namespace of the Lease. Default: $POD_NAMESPACE, else 'default'.",
    )
    lease_duration: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description=(
            "Seconds a standby waits after the last renewal before taking over (client-go's default 15 s); "
            "bounds the failover time."
        ),
    )
    renew_deadline: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "Seconds the leader keeps acting without a successful renewal; it stops actuating after this, "
            "before any standby may take over. Must be < leaseDuration. Default 10 s."
        ),
    )
    retry_period: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds between acquire/renew attempts. Default 2 s (client-go's).",
    )
    identity: str = Field(
        default_factory=_default_identity,
        min_length=1,
        description="Holder identity in the Lease. Default: $POD_NAME or hostname plus a random suffix.",
    )
    health_port: int = Field(
        default=8081,
        ge=-1,
        le=65535,
        description="Port of /healthz and /readyz; 0 picks a free port (logged), -1 disables. Default 8081.",
    )
    health_host: str = Field(
        default="0.0.0.0", description="Address the health server binds. Default 0.0.0.0."
    )
    metrics_port: int = Field(
        default=8080,
        ge=-1,
        le=65535,
        description=(
            "Port of the controller's own Prometheus /metrics (served by the exporter); 0 picks a free port "
            "(logged), -1 disables. Default 8080 (the base manifests' metrics port)."
        ),
    )
    metrics_host: str = Field(
        default="0.0.0.0", description="Address the /metrics exporter binds. Default 0.0.0.0."
    )
    external_metrics_port: int = Field(
        default=-1,
        ge=-1,
        le=65535,
        description=(
            "Port of the external metrics API (external.metrics.k8s.io/v1beta1 over TLS, for actuation: HPA); "
            "0 picks a free port (logged), -1 disables. Default -1: off, because it needs the APIService, "
            "its RBAC and the extension-apiserver-authentication ConfigMap that only the external-metrics "
            "overlay installs (the overlay sets 6443)."
        ),
    )
    external_metrics_host: str = Field(
        default="0.0.0.0", description="Address the external metrics API binds. Default 0.0.0.0."
    )
    tls_cert_file: str | None = Field(
        default=None,
        description=(
            "PEM serving certificate of the external metrics API (reloaded when it changes). Default none: "
            "a self-signed pair is generated at start (logged as a warning)."
        ),
    )
    tls_key_file: str | None = Field(
        default=None, description="PEM private key for --tls-cert-file. Required with it."
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="json (one object per line, for log pipelines) or console. Default json."
    )
    api_timeout: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds before one API request (not a watch) times out. Default 10.",
    )
    metrics_batch_linger: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description=(
            "Seconds the metrics batcher waits to collect the queries of every resource due in the same tick "
            "into one MetricsSource call. Default 0.05 s."
        ),
    )
    shutdown_grace: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="Seconds SIGTERM waits for reconciles in flight to finish their writes. Default 10 s.",
    )

    time_scale: float = Field(
        default=1.0,
        ge=1.0,
        le=1000.0,
        description=(
            "Testing only (the cluster in a box, e2e/README.md): the policy runs this many times faster than the "
            "wall clock, for model servers emulated in accelerated time; the InferenceAutoscalers' loop "
            "durations must then be written divided by it. Default 1 (real time); never set it in production."
        ),
    )

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: str) -> str:
        return ",".join(ns.strip() for ns in value.split(",") if ns.strip())

    @model_validator(mode="after")
    def _deadlines(self) -> ControllerSettings:
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(
                f"renew_deadline ({self.renew_deadline}s) must be less than lease_duration ({self.lease_duration}s)"
            )
        if self.retry_period >= self.renew_deadline:
            raise ValueError(
                f"retry_period ({self.retry_period}s) must be less than renew_deadline ({self.renew_deadline}s)"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> ControllerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        return self

    @property
    def namespace_list(self) -> list[str] | None:
        """Namespaces to watch, or None for all."""
        return self.namespaces.split(",") if self.namespaces else None

    @property
    def lease_namespace_resolved(self) -> str:
        """The Lease's namespace after defaults."""
        return self.lease_namespace or os.environ.get("POD_NAMESPACE") or "default"
