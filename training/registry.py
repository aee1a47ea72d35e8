"""The model registry in MODEL_DIR: one folder per version, and a ``current`` file naming the active one.

``current`` is switched atomically (write a temporary file, then ``os.replace``), so a reader never
sees a half-written name.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.exceptions import ModelNotFoundError

CURRENT_FILE = "current"


def current_version(model_dir: Path) -> str | None:
    """The version that ``model_dir/current`` names, or None when nothing is current yet."""
    try:
        name = (model_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def set_current(model_dir: Path, version: str) -> None:
    """Make ``version`` current, atomically."""
    if not (model_dir / version).is_dir():
        raise ModelNotFoundError(f"no model version {version!r} in {model_dir}")
    tmp = model_dir / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / CURRENT_FILE)


def resolve_serving_path(model_dir: Path, model_path: Path | None) -> tuple[Path, str]:
    """The folder to serve and its version name: MODEL_PATH when set, else MODEL_DIR/<current>."""
    if model_path is not None:
        if not model_path.is_dir():
            raise ModelNotFoundError(f"MODEL_PATH {model_path} is not a folder")
        return model_path, model_path.resolve().name
    version = current_version(model_dir)
    if version is None:
        raise ModelNotFoundError(f"no current model in {model_dir} (nothing trained yet)")
    path = model_dir / version
    if not path.is_dir():
        raise ModelNotFoundError(f"{model_dir}/current names {version!r}, which is not a folder")
    return path, version
