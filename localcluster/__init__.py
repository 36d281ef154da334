"""A local Kubernetes control plane for tests, the e2e box, the demo and the scale bench.

Upstream etcd, kube-apiserver and kube-controller-manager (built from their Go modules by ``make cluster``) run
on loopback, the way controller-runtime's envtest runs them; a small kubelet stand-in gives Pods a Node, a cold
start and readiness. See docs/testing-apiserver.md.
"""
