"""A fresh install's first model: when MODEL_DIR has no current version, train the linear model and promote it.

``python -m training bootstrap`` runs :func:`bootstrap`; ``scripts/run`` and compose's one-shot ``bootstrap``
service call it before the workers start. With no servable current version in MODEL_DIR (and no MODEL_PATH), it
trains the TF-IDF + linear SVM from TRAIN_DATA (about a minute on a CPU) and makes it current, so that Slack gets
answers at once; an admin's ``/retrain`` later replaces it with a fine-tuned BERT. When a version is current it
does nothing, so it is safe to run on every start. A lock file in MODEL_DIR keeps two starts at once from
training twice.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.settings import Settings
from newsmodel import registry
from newsmodel.store import is_remote

log = logging.getLogger(__name__)

LOCK_FILE = ".bootstrap.lock"


def servable_version(model_dir: registry.ModelDir) -> str | None:
    """The current version of ``model_dir`` when it is a complete version, else None."""
    current = registry.current_version(model_dir)
    return current if current and registry.has_version(model_dir, current) else None


@contextmanager
def _locked(model_dir: registry.ModelDir, cache_dir: Path) -> Iterator[None]:
    # On an object store the lock file is in the local cache: it keeps starts on this machine from training
    # twice; starts on several machines at once could each train one (the last promoted wins, both are kept).
    folder = cache_dir if is_remote(model_dir) else Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, also if this process dies
        yield


def bootstrap(settings: Settings) -> dict[str, Any]:
    """Train and promote the linear model unless a model is already served; returns what was done (JSON-able)."""
    if settings.model_path is not None:
        return {"trained": False, "reason": f"MODEL_PATH is set ({settings.model_path}); MODEL_DIR is not used"}
    model_dir = settings.model_dir
    current = servable_version(model_dir)
    if current is None:
        with _locked(model_dir, settings.model_cache_dir):
            current = servable_version(model_dir)  # another start may have trained it while this one waited
            if current is None:
                from training.api import options_from_settings, train

                log.info("no model in %s yet: training the linear model from %s", model_dir, settings.train_data)
                outcome = train(options_from_settings(settings, model_type="linear"))
                return {"trained": True, **outcome.summary()}
    log.info("%s already has a current version (%s): nothing to train", model_dir, current)
    return {"trained": False, "current": current, "reason": "a version is current"}
