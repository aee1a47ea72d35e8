# One Dockerfile, two images: `bot` (no torch) and `worker` (torch + transformers, GPU when present).
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 newsbot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY common ./common
COPY bot ./bot
COPY worker ./worker
COPY training ./training

FROM base AS bot
RUN pip install ".[bot]"
USER newsbot
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)" || exit 1
CMD ["python", "-m", "bot"]

FROM base AS worker
# PyPI's Linux torch wheels bundle CUDA; the worker uses the GPU when one is reserved for it.
ARG TORCH_SPEC="torch>=2.3,<3"
RUN pip install "${TORCH_SPEC}" && pip install ".[train]"
RUN mkdir -p /models /data && chown newsbot /models /data
ENV MODEL_DIR=/models HF_HOME=/data/hf
USER newsbot
CMD ["python", "-m", "worker"]
