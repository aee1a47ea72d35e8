"""The model kinds, declared once: every package names a kind by :data:`ModelKind` and lists them by
:data:`MODEL_KINDS`.

What a kind *is* lives in two tables, one per side, each with one module per kind: serving
(:data:`newsmodel.kinds.SERVED_KINDS`: detect a version folder's kind, load it, configure it for serving) and
training (:data:`training.kinds.TRAINED_KINDS`: fit, describe, which options it takes). Nothing else branches on a
kind's name. Adding a kind: its name here, one serving module and its row in ``newsmodel/kinds.py``, one training
module and its row in ``training/kinds.py``.
"""

from __future__ import annotations

from typing import Literal, get_args

ModelKind = Literal["bert", "linear"]

# In the order people are offered them (the Home's retrain buttons, /retrain's help).
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)


def model_kind(value: str) -> ModelKind | None:
    """``value`` as a model kind when it is one of :data:`MODEL_KINDS`, else None."""
    for kind in MODEL_KINDS:
        if kind == value:
            return kind
    return None
