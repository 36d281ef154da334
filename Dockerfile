# syntax=docker/dockerfile:1
# The controller image: a wheel built from this tree, installed into a venv, run as a non-root user on a
# read-only root filesystem. The build step is scripts/install.sh, the same script tests/test_packaging.py runs.
#
#   docker build -t inference-autoscaler:0.1.0 .
#
# Base image pinned by tag and multi-platform manifest digest; bump both together.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
COPY requirements/runtime.txt ./requirements/runtime.txt
COPY scripts/install.sh ./scripts/install.sh
RUN sh scripts/install.sh /src /opt/inference-autoscaler

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="inference-autoscaler" \
      org.opencontainers.image.description="Keeps LLM inference fleets inside their latency SLOs at the lowest GPU cost" \
      org.opencontainers.image.licenses="Apache-2.0"
# The venv's interpreter is a symlink to this same base image's python, so the copy runs as is.
COPY --from=build /opt/inference-autoscaler /opt/inference-autoscaler
# No bytecode writes, unbuffered logs, and a writable HOME on the /tmp emptyDir (the only writable path).
ENV PATH=/opt/inference-autoscaler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["inference-autoscaler"]
CMD ["run"]
