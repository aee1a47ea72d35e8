"""``python -m training bootstrap`` under container conditions, and :func:`training.bootstrap.bootstrap` itself.

The container test rebuilds what compose's ``bootstrap`` service sees, without Docker: the package folders the
worker image copies, in a root-owned read-only "/app" (cwd and PYTHONPATH, as in the Dockerfile); the service's
environment from docker-compose.yml with every volume mount point replaced by a writable temporary "volume"
owned by uid 10001, as a fresh named volume is; TRAIN_DATA a small synthetic corpus archive (testkit/fake_corpus),
as .env would set it. As root it runs the command as uid 10001 (setpriv), like the image's USER.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common.settings import Settings
from newsmodel import registry
from testkit.fake_corpus import build_archive
from testkit.processes import product_env
from testkit.redis_server import free_port
from tests.compose_files import (
    UID,
    container_environment,
    image_user,
    load_compose,
    owned_folder,
    read_only_app,
    tree,
    volume_folders,
    walk,
)
from training.bootstrap import bootstrap


def test_bootstrap_in_a_read_only_app_writes_only_to_the_volumes_and_trains_once(container_root: Path) -> None:
    as_user = image_user()
    model = load_compose()
    service = model["services"]["bootstrap"]
    command = list(service["command"])
    assert command[:3] == ["python", "-m", "training"]

    app = container_root / "app"
    app_files = read_only_app(service["build"]["target"], app)
    volumes = volume_folders(model, service, container_root / "volumes")
    home = owned_folder(container_root / "home")
    archive = build_archive(container_root / "corpus" / "ldcc-20140209.tar.gz", per_class=12)

    env = container_environment(service, service["build"]["target"], {"/app": app, **volumes}, home)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRAIN_DATA"] = str(archive)
    model_dir = Path(env["MODEL_DIR"])
    argv = [*as_user, sys.executable, *command[1:]]

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # Two starts at once (the lock): one trains, the other waits for it and finds the model.
    first, second = start(), start()
    results = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    trained = [r for r in results if r["trained"]]
    assert len(trained) == 1, results
    (result,) = trained
    assert result["promoted"] is True and result["reason"] == "no current model yet"

    versions = registry.list_versions(model_dir)
    assert [v.version for v in versions] == [result["version"]]
    assert versions[0].model_type == "linear" and versions[0].is_current
    assert registry.current_version(model_dir) == result["version"]
    assert [h["action"] for h in registry.read_history(model_dir)] == ["promote"]
    if as_user:
        written = [p for v in volumes.values() for p in walk(v)]
        assert all(p.stat().st_uid == UID for p in written)

    # A later start (every `docker compose up`) does nothing.
    again = subprocess.run(argv, cwd=app, env=env, capture_output=True, text=True, timeout=240, check=True)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {
        "trained": False,
        "current": result["version"],
        "reason": "a version is current",
    }
    assert [v.version for v in registry.list_versions(model_dir)] == [result["version"]]
    assert tree(app) == app_files, "something was written into /app"
    assert tree(home) == ["."], f"written outside the volumes, into HOME: {tree(home)}"


def test_bootstrap_exits_1_when_the_corpus_cannot_be_downloaded(tmp_path: Path) -> None:
    """docs/deploy.md: a host without internet makes `bootstrap` exit 1 (so compose starts no worker), saying why."""
    command = list(load_compose()["services"]["bootstrap"]["command"])
    unreachable = f"http://127.0.0.1:{free_port()}/ldcc-20140209.tar.gz"  # nothing listens there
    env = product_env(MODEL_DIR=str(tmp_path / "models"), DATA_CACHE_DIR=str(tmp_path / "data"), TRAIN_DATA=unreachable)
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "cannot download the corpus" in result.stderr and unreachable in result.stderr
    assert result.stdout == ""
    assert registry.current_version(tmp_path / "models") is None


def _settings(tmp_path: Path, **values: object) -> Settings:
    defaults: dict[str, object] = {
        "model_dir": tmp_path / "models",
        "data_cache_dir": tmp_path / "data",
        "train_run_dir": tmp_path / "runs",
        "train_data": str(tmp_path / "no-such-corpus.tar.gz"),
    }
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[arg-type,call-arg]


def test_bootstrap_leaves_a_current_version_alone(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "20260101-000000-000abc").mkdir(parents=True)
    registry.set_current(models, "20260101-000000-000abc")
    result = bootstrap(_settings(tmp_path))
    assert result == {"trained": False, "current": "20260101-000000-000abc", "reason": "a version is current"}
    assert not (tmp_path / "data").exists()


def test_bootstrap_trains_when_current_names_a_missing_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / registry.CURRENT_FILE).write_text("20260101-000000-000abc\n")  # its folder was deleted by hand
    archive = build_archive(tmp_path / "corpus" / "ldcc.tar.gz", per_class=12)
    result = bootstrap(_settings(tmp_path, train_data=str(archive)))
    assert result["trained"] is True and result["promoted"] is True
    assert registry.current_version(models) == result["version"]


def test_bootstrap_does_nothing_when_model_path_is_served(tmp_path: Path) -> None:
    result = bootstrap(_settings(tmp_path, model_path=tmp_path / "some-model"))
    assert result["trained"] is False and "MODEL_PATH" in result["reason"]
    assert not (tmp_path / "models").exists()
