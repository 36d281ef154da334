"""An emulated Kubernetes API server for tests (see docs/testing-apiserver.md)."""

from .faults import Faults
from .server import DEFAULT_CRDS, TEST_CRD, KubeEmulator, RequestRecord, default_crd_files, load_crds
from .workloads import WorkloadSimulator

__all__ = [
    "DEFAULT_CRDS",
    "TEST_CRD",
    "Faults",
    "KubeEmulator",
    "RequestRecord",
    "WorkloadSimulator",
    "default_crd_files",
    "load_crds",
]
