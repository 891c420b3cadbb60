# alsys on a GPU Ray cluster. The base is Ray's own GPU image at the Ray version pyproject.toml
# pins (rayproject/ray-ml is no longer published); it runs as its non-root user `ray` (uid 1000, group users 100).
#
#   docker build -t alsys:0.1.0 .
#
# torch/torchvision: the CUDA 13 builds that pip resolves (the versions CI tests on CPU).
# faiss: faiss-cpu. faiss-gpu 1.15.1 on PyPI needs the CUDA 12 runtime while torch 2.13+ is
# built for CUDA 13 (cluster/README.md, STACK.md); alsys's GPU work (SimCLR, the FSL
# ResNets) runs in torch, and its k-means/kNN run on the CPU share of each trial.
# No secret is baked in: tokens and the MLflow URI arrive at run time (env / Kubernetes Secret).
FROM rayproject/ray:2.60.0-py311-gpu

ARG TORCH_VERSION=2.15.0
ARG TORCHVISION_VERSION=0.29.2
ARG FAISS_VERSION=1.15.1

USER 1000:100
WORKDIR /home/ray/alsys

# Dependencies first (cached while only the code changes), then alsys itself.
COPY --chown=1000:100 pyproject.toml README.md ./
RUN pip install --no-cache-dir \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
      "faiss-cpu==${FAISS_VERSION}"
COPY --chown=1000:100 alsys/ alsys/
COPY --chown=1000:100 sweeps/ sweeps/
COPY --chown=1000:100 benchmarks/ benchmarks/
COPY --chown=1000:100 dashboards/ dashboards/
# DL3013 asks for pinned versions: this is the local package; its own dependencies carry the
# ranges of pyproject.toml (ray and optuna exact).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[server]" \
 && python -c "import alsys, faiss, torch, torchvision, ray, mlflow, optuna; assert ray.__version__ == '2.60.0'"

ENV ALSYS_STORE=/mnt/shared/alsys/store \
    ALSYS_DATA=/mnt/shared/alsys/data \
    ALSYS_RESULTS=/mnt/shared/alsys/ray_results \
    ALSYS_DASHBOARDS=/home/ray/alsys/dashboards \
    PYTHONUNBUFFERED=1
