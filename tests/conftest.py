"""Shared pytest configuration. Fixtures live in their own modules and are re-exported here."""

from tests.kubeemu.fixtures import kube_client, kube_server, kube_server_test_crds, kubeconfig_path

__all__ = ["kube_client", "kube_server", "kube_server_test_crds", "kubeconfig_path"]
