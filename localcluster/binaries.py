"""Where ``make cluster`` put the pinned upstream binaries (hack/versions.env names the versions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "hack" / "versions.env"


class BinariesMissing(RuntimeError):
    """The control-plane binaries are not built; the message says how to build them."""


def versions() -> dict[str, str]:
    """``KEY=value`` lines of hack/versions.env (comments and blanks skipped)."""
    out: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Binaries:
    """Paths of the four binaries of one Kubernetes version."""

    kubernetes_version: str
    directory: Path

    def path(self, name: str) -> Path:
        """The binary ``name`` (``etcd``, ``kube-apiserver``, ``kube-controller-manager`` or ``kubectl``)."""
        return self.directory / name

    @property
    def etcd(self) -> Path:
        return self.path("etcd")

    @property
    def apiserver(self) -> Path:
        return self.path("kube-apiserver")

    @property
    def controller_manager(self) -> Path:
        return self.path("kube-controller-manager")

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")


def cache_root() -> Path:
    """``$IAS_CLUSTER_CACHE`` or ``~/.cache/inference-autoscaler/k8s`` (the same rule as hack/build-cluster.sh)."""
    env = os.environ.get("IAS_CLUSTER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "inference-autoscaler" / "k8s"


def find() -> Binaries:
    """The built binaries of the pinned version; :class:`BinariesMissing` (naming ``make cluster``) if absent."""
    version = versions()["KUBERNETES_VERSION"]
    found = Binaries(version, cache_root() / version / "bin")
    missing = [n for n in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl") if not os.access(found.path(n), os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"the local control plane needs {', '.join(missing)} in {found.directory}: run `make cluster` "
            "(builds Kubernetes and etcd from their Go modules; hack/versions.env pins the versions)"
        )
    return found
