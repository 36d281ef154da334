"""Tests in this folder run on the local control plane (real etcd, kube-apiserver, kube-controller-manager):
these imports override the emulator's fixtures of the same names (``kube_server``, ``kubeconfig_path``,
``kube_client``) for every test below this folder."""

from tests.fixtures.aggregation import metrics_api
from tests.fixtures.cluster import admin, control_plane, kube_client, kube_server, kubeconfig_path

__all__ = ["admin", "control_plane", "kube_client", "kube_server", "kubeconfig_path", "metrics_api"]
