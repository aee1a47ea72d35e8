"""`current` in a local MODEL_DIR may only name a version inside MODEL_DIR.

A pointer to ``../elsewhere/x``, to an absolute path, or to a version folder that is (or holds) a symlink out of
MODEL_DIR is refused: the registry will not resolve it, the worker keeps the version it serves and says why in
one line, and promote/rollback/set_current (training, the CLI, the admins' buttons) never write one.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from common.articles import Article
from common.exceptions import ModelNotFoundError
from newsmodel import registry
from testkit.samples import SAMPLES

V1, V2 = "20260101-000000-000aaaaaa", "20260102-000000-000bbbbbb"


def linear_model(folder: Path, seed: int = 0) -> Path:
    from training.linear import fit_linear, save_linear

    texts = [text for texts in SAMPLES.values() for text in texts]
    slugs = [slug for slug, texts in SAMPLES.items() for _ in texts]
    folder.mkdir(parents=True)
    save_linear(fit_linear(texts, slugs, seed=seed), folder)
    return folder


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """MODEL_DIR with V1 current, and a complete model outside it (``<tmp>/elsewhere/x``)."""
    models = tmp_path / "models"
    linear_model(models / V1, seed=1)
    registry.promote(models, V1)
    elsewhere = linear_model(tmp_path / "elsewhere" / "x", seed=2)
    return {"models": models, "elsewhere": elsewhere}


def pointers(layout: dict[str, Path]) -> dict[str, str]:
    """Each way of leading `current` out of MODEL_DIR (each names a complete, loadable model)."""
    models, elsewhere = layout["models"], layout["elsewhere"]
    (models / V2).symlink_to(elsewhere, target_is_directory=True)  # a version folder that is a symlink out
    return {"relative": "../elsewhere/x", "absolute": str(elsewhere), "symlink": V2}


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_current_leading_out_of_model_dir_is_refused_and_the_served_version_stays(
    layout: dict[str, Path], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.classifier import ModelService

    models = layout["models"]
    service = ModelService(models, None)
    assert service.load() and service.version == V1
    pointer = pointers(layout)[how]
    (models / registry.CURRENT_FILE).write_text(pointer + "\n", encoding="utf-8")  # written by hand

    with pytest.raises(registry.UnsafeVersionError, match="MODEL_DIR"):
        registry.resolve_serving_path(models, None)
    with caplog.at_level(logging.ERROR, logger="worker.classifier"):
        assert service.check_for_update() is False
    assert service.version == V1 and service.path == models / V1  # what it served keeps serving
    assert service.last_error is not None and "MODEL_DIR" in service.last_error
    (line,) = [r.getMessage() for r in caplog.records if "not swapped in" in r.getMessage()]
    assert "MODEL_DIR" in line and "\n" not in line
    (prediction,), _ = service.predict([Article(title="", body=SAMPLES["smax"][0])])
    assert prediction.slug in SAMPLES


def test_a_pointer_with_a_newline_or_a_control_character_is_logged_on_one_line(
    layout: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from worker.classifier import ModelService

    models = layout["models"]
    service = ModelService(models, None)
    assert service.load()
    (models / registry.CURRENT_FILE).write_text("../x\nFAKE model swapped in\x1b[2J\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="worker.classifier"):
        assert service.check_for_update() is False
    assert service.version == V1
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in caplog.records)


def test_a_symlink_out_of_model_dir_inside_a_version_folder_is_refused(layout: dict[str, Path]) -> None:
    models = layout["models"]
    inside = models / V2
    inside.mkdir()
    for path in layout["elsewhere"].iterdir():
        (inside / path.name).symlink_to(path)
    with pytest.raises(registry.UnsafeVersionError, match="symlink"):
        registry.local_version(models, V2)
    assert V2 not in [v.version for v in registry.list_versions(models)]


def test_a_symlink_to_another_version_inside_model_dir_is_served(layout: dict[str, Path]) -> None:
    models = layout["models"]
    (models / V2).symlink_to(models / V1, target_is_directory=True)
    registry.promote(models, V2)
    assert registry.resolve_serving_path(models, None) == (models / V2, V2)


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_the_registry_never_writes_a_pointer_out_of_model_dir(layout: dict[str, Path], how: str) -> None:
    models = layout["models"]
    pointer = pointers(layout)[how]
    for write in (registry.set_current, registry.promote, registry.rollback):
        with pytest.raises(ModelNotFoundError):
            write(models, pointer)
    assert registry.current_version(models) == V1
    assert [row["version"] for row in registry.read_history(models)] == [V1]


def test_the_cli_refuses_to_promote_a_version_leading_out_of_model_dir(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.cli import main

    models = layout["models"]
    pointers(layout)
    monkeypatch.chdir(models.parent)
    monkeypatch.setenv("MODEL_DIR", str(models))
    out = io.StringIO()
    assert main(["models", "promote", V2], out=out) == 1
    assert out.getvalue() == "" and "outside MODEL_DIR" in capsys.readouterr().err
    assert registry.current_version(models) == V1
