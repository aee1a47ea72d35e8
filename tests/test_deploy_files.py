"""The deployment files say what the README promises: compose services, persistence, GPU, non-root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_redis_with_append_only_persistence_on_a_volume() -> None:
    redis = compose()["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_compose_has_bot_and_gpu_workers_sharing_the_model_volume() -> None:
    services = compose()["services"]
    assert services["bot"]["build"]["target"] == "bot"
    for name in ("worker", "train-worker"):
        worker = services[name]
        assert worker["build"]["target"] == "worker"
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert "models:/models" in worker["volumes"]
        assert worker["environment"]["MODEL_DIR"] == "/models"
    assert services["train-worker"]["command"][-2:] == ["--queues", "train"]


def test_images_run_as_a_non_root_user_and_the_bot_image_has_no_torch() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)
    bot_stage = next(s for s in stages if s.startswith("base AS bot"))
    worker_stage = next(s for s in stages if s.startswith("base AS worker"))
    for stage in (bot_stage, worker_stage):
        assert re.search(r"^USER newsbot$", stage, flags=re.M)
    assert "torch" not in bot_stage.lower()
    assert '".[bot]"' in bot_stage


def test_the_bot_extra_installs_no_torch() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bot_deps = " ".join(project["optional-dependencies"]["bot"]).lower()
    assert "torch" not in bot_deps and "transformers" not in bot_deps
    worker_deps = project["optional-dependencies"]["worker"]
    torch_spec = next(d for d in worker_deps if d.startswith("torch"))
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_spec.removeprefix("torch"))


def test_ci_runs_the_test_command_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "scripts/run" in quick_start and "scripts/check" in quick_start
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/check" in ci
    check = (ROOT / "scripts" / "check").read_text()
    assert "ruff check" in check and "mypy" in check and "pytest" in check
