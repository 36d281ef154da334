# The README's two commands are `make demo` and `make test`; `.ci/run` runs `make lint`, `make test` and `make e2e`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv lock peers lock-peers prometheus cluster demo test lint audit crd docs e2e clean

# Re-install only when the project's dependencies change. Every package comes from the hash-pinned lock
# (requirements/dev.txt); the project itself is installed editable on top, without resolving anything.
$(STAMP): pyproject.toml requirements/dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Re-resolve the lock files after a dependency change in pyproject.toml (needs PyPI). requirements/runtime.txt
# is what the image installs (scripts/install.sh); requirements/dev.txt is what `make venv` installs.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
lock: venv
	$(LOCK) -o requirements/runtime.txt
	$(LOCK) --extra dev -o requirements/dev.txt

# The peers environment: the real decision code of peers that ship it as a Python package (NVIDIA Dynamo's
# planner), run by the scorecard in a worker process (autoscaler/sim/peers/). Kept apart from $(VENV): it pins
# pydantic <= 2.13.5 and is never a dependency of the project. Hash-pinned, installed without resolving
# (requirements/peers.txt), then the estimator wheel without its dependencies (requirements/peers-nodeps.txt).
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
$(PEERS_STAMP): requirements/peers.txt requirements/peers-nodeps.txt
	@test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/peers.txt
	$(PEERS_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/peers-nodeps.txt
	@touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

# Re-resolve the peers lock (needs PyPI); aisimulate is resolved out (requirements/peers-overrides.txt).
lock-peers: venv
	$(VENV)/bin/uv pip compile requirements/peers.in --override requirements/peers-overrides.txt \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet -o requirements/peers.txt

# Later tests run a real Prometheus; install Debian's when it is missing (needs root, as in CI).
prometheus:
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
	  echo "installing Debian's prometheus package"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y --no-install-recommends prometheus; }; \
	fi
	@# The Debian package may start a system service; tests start their own on free ports and never stop it.

# The upstream control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) built from its Go modules
# into ~/.cache/inference-autoscaler/k8s/<version>/ and reused from there (hack/versions.env pins the versions).
cluster:
	@bash hack/build-cluster.sh

# A short cluster-in-a-box session: the real controller keeping a twin-driven pool in its SLO (about 2 min).
demo: venv prometheus cluster
	$(PY) -m e2e.demo

# Test files run on PYTEST_JOBS workers (pytest-xdist, one file per worker at a time): most of the time of the
# control-plane tests is waiting on the servers, and each worker starts its own control plane.
PYTEST_JOBS ?= 3
# pytest exits 5 when nothing was collected: that is a broken selection, not a pass.
# The peers environment too: tests/test_dynamo_planner_peer.py replays through the real Dynamo planner.
test: venv prometheus cluster peers
	@$(PY) -m pytest -n $(PYTEST_JOBS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$status

# The closed loop end to end on loopback (e2e/README.md); collected apart from tests/ so `make test` stays fast.
e2e: venv prometheus cluster
	@$(PY) -m pytest e2e -s -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no e2e tests: failing"; exit 1; fi; exit $$status

lint: venv
	$(VENV)/bin/ruff check $(wildcard autoscaler tests bench e2e)
	$(VENV)/bin/mypy --strict autoscaler
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_sizes.py
	$(PY) scripts/check_lock.py
	$(PY) -m autoscaler crd | diff -u crds/autoscaler.inference.dev_inferenceautoscalers.yaml - \
	  || { echo "crds/ is stale: run make crd"; exit 1; }
	@$(MAKE) --no-print-directory audit

# Dependency audit (pip-audit, from the dev extra) of the installed environment against PyPI's advisory data.
# A known vulnerability fails lint. pip-audit failing for any other reason (no network, index unreachable)
# only warns: an outage of the advisory service must not block unrelated changes. Packages it cannot look up
# (e.g. served from a private mirror) are listed with their skip reason and counted in a warning.
audit: venv
	@out=$$($(VENV)/bin/pip-audit --progress-spinner off --skip-editable 2>&1); status=$$?; echo "$$out"; \
	skipped=$$(echo "$$out" | grep -c "could not be audited"); \
	if [ $$skipped -gt 0 ]; then echo "pip-audit: warning: $$skipped package(s) could not be audited"; fi; \
	if [ $$status -ne 0 ]; then \
	  if echo "$$out" | grep -qiE "found [0-9]+ known vulnerabilit"; then exit 1; fi; \
	  echo "pip-audit: warning: the audit did not run (exit $$status); not failing lint on it"; \
	fi

crd: venv
	$(PY) -m autoscaler crd > crds/autoscaler.inference.dev_inferenceautoscalers.yaml
	cp crds/autoscaler.inference.dev_inferenceautoscalers.yaml manifests/base/crd.yaml

docs: venv
	$(PY) -m autoscaler.api.docgen > docs/api.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
