# One Dockerfile, three images (docs/deploy.md):
#   bot     Slack Bolt bot: slack-bolt, redis, rq; no machine-learning libraries.
#   worker  torch + transformers + training: compose's bootstrap, worker and train-worker services all run it.
#   ops     rq-dashboard and TensorBoard for compose's `ops` profile: no newsbot code, no torch.
# Layers go from what changes least to what changes most: user and mount points, dependencies (from the image's
# locked requirements file alone, so that a code edit does not reinstall them), then the code, which runs from /app
# (root-owned, read-only to the process). Everything a process writes goes to /models, /data and /runs, which
# compose mounts as named volumes: a fresh named volume takes the ownership of its mount point here.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONPATH=/app
RUN useradd --create-home --uid 10001 newsbot
WORKDIR /app
# Each stage installs its locked set, requirements/<name>.txt (exported from uv.lock by scripts/lock): every package
# pinned and checked against its hash, --no-deps so that nothing is resolved at build time, then `pip check`. The
# project itself is not installed: its code runs from /app (PYTHONPATH). Each stage copies only its own file, so a
# change to another image's set does not rebuild it.

FROM base AS bot
COPY requirements/bot.txt /tmp/requirements/
RUN pip install --require-hashes --no-deps -r /tmp/requirements/bot.txt && pip check
COPY common ./common
COPY store ./store
COPY telemetry ./telemetry
COPY ui ./ui
COPY bot ./bot
RUN python -m compileall -q common store telemetry ui bot
USER newsbot
EXPOSE 3000
# Socket Mode by default (needs SLACK_APP_TOKEN); `python -m bot --http` serves the Events API on port 3000,
# with GET /healthz for a health check (docker-compose.http.yml).
CMD ["python", "-m", "bot"]

FROM base AS worker
# torch first, on its own layer, pinned to the version the tests and benchmarks ran with (scripts/setup installs
# the same). Its build comes from the PyTorch wheel index TORCH_INDEX_URL: by default the CUDA 12.8 index, whose
# wheels bundle the CUDA runtime, so a host needs only the NVIDIA driver and the NVIDIA Container Toolkit; the
# CPU variant (docker-compose.cpu.yml) passes https://download.pytorch.org/whl/cpu, an image without CUDA.
# If that index lacks the pinned version, pick the CUDA index listed for it on pytorch.org.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# Then the training extra's locked set (transformers, scikit-learn, …) from PyPI. torch and the CUDA libraries it
# brings are not in it (scripts/lock leaves them out: that index gave them); torch's other requirements (sympy,
# networkx, …) are, and their locked versions replace what torch's line brought.
COPY requirements/train.txt /tmp/requirements/
RUN pip install --require-hashes --no-deps -r /tmp/requirements/train.txt && pip check \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"
# Mount points of the named volumes, owned by the user the processes run as.
RUN mkdir -p /models /data /runs && chown newsbot:newsbot /models /data /runs
# MPLCONFIGDIR: matplotlib's font cache (confusion-matrix plots); XDG_CACHE_HOME: fontconfig's cache, which
# matplotlib's font search writes where the system one is not built yet. Else both go into $HOME, off the volumes.
# TORCHINDUCTOR_CACHE_DIR: torch makes /tmp/torchinductor_<user> at import otherwise (the compose check's docker
# diff found it in bootstrap).
ENV MODEL_DIR=/models BASE_MODELS_DIR=/models/base DATA_CACHE_DIR=/data/corpus HF_HOME=/data/hf TRAIN_RUN_DIR=/runs \
    MPLCONFIGDIR=/data/matplotlib XDG_CACHE_HOME=/data/cache TORCHINDUCTOR_CACHE_DIR=/data/cache/torchinductor
COPY common ./common
COPY store ./store
COPY telemetry ./telemetry
COPY newsmodel ./newsmodel
COPY ui ./ui
# The workers build their Slack client and read the editors with bot's modules (bot/slack_client.py, bot/editors.py).
COPY bot ./bot
COPY worker ./worker
COPY training ./training
RUN python -m compileall -q common store telemetry newsmodel ui bot worker training
USER newsbot
CMD ["python", "-m", "worker"]

FROM base AS ops
# rq-dashboard with the rq the product uses (its jobs' Redis layout), and TensorBoard, which reads the event files
# of the runs volume without TensorFlow or torch: pyproject.toml's `ops` dependency group, locked like the others
# (unlocked, pip took python-dateutil 4, which no longer brings six, which rq-dashboard imports; the group names it).
COPY requirements/ops.txt /tmp/requirements/
RUN pip install --require-hashes --no-deps -r /tmp/requirements/ops.txt && pip check
USER newsbot
EXPOSE 9181 6006
CMD ["rq-dashboard", "--json"]
