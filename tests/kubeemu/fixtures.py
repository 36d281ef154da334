"""pytest fixtures for the emulated API server; re-exported by tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config

from .server import DEFAULT_CRDS, TEST_CRD, KubeEmulator


@pytest_asyncio.fixture
async def kube_server() -> AsyncIterator[KubeEmulator]:
    """A started emulator with the default CRDs; stopped (watches closed, tasks cancelled) afterwards."""
    server = KubeEmulator(bookmark_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def kube_server_test_crds() -> AsyncIterator[KubeEmulator]:
    """Like ``kube_server`` but always with the emulator's own test InferenceAutoscaler CRD (and the
    ModelServer test kind), whatever the project's generated CRD looks like — for the fidelity tests."""
    server = KubeEmulator([*DEFAULT_CRDS, TEST_CRD], bookmark_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def kubeconfig_path(kube_server: KubeEmulator, tmp_path: Path) -> Path:
    """A kubeconfig for ``kube_server`` (usable by kubernetes_asyncio and ``kubectl --kubeconfig``)."""
    return kube_server.write_kubeconfig(tmp_path / "kubeconfig")


@pytest_asyncio.fixture
async def kube_client(kubeconfig_path: Path) -> AsyncIterator[client.ApiClient]:
    """A kubernetes_asyncio ApiClient loaded from ``kubeconfig_path`` the way the controller loads it."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig_path), client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    try:
        yield api
    finally:
        await api.close()
