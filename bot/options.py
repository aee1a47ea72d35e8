"""Parsing ``/retrain`` text into one of four commands, refusing anything malformed before it runs.

``/retrain [epochs=N] [base=org/name|folder] [type=bert|linear] [force]`` trains; ``/retrain status`` and
``/retrain rollback [version]`` look and switch; ``/retrain cancel`` stops the training in hand. Pure functions:
no Slack, no Redis.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from common.exceptions import InvalidRetrainOptionsError
from common.kinds import MODEL_KINDS, ModelKind, model_kind
from common.mrkdwn import code
from ui.commands import retrain_usage

# A hub model id: ``org/name``, each part starting with a letter or digit, no path tricks.
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# A folder (or registry version) name: one path segment only.
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_OPTION_NAMES = ("epochs", "base", "type")


@dataclass(frozen=True, slots=True)
class TrainCommand:
    """Train a new model; fields left None take the settings' defaults in the training job."""

    SUBCOMMAND: ClassVar[str] = "train"  # its name in ui.commands

    epochs: float | None = None
    base_model: str | None = None
    model_type: ModelKind = "bert"
    force: bool = False


@dataclass(frozen=True, slots=True)
class StatusCommand:
    """Show the current model, what each worker serves, and any training in progress."""

    SUBCOMMAND: ClassVar[str] = "status"  # its name in ui.commands


@dataclass(frozen=True, slots=True)
class RollbackCommand:
    """Make ``version`` (or, when None, the version before the current one) current."""

    SUBCOMMAND: ClassVar[str] = "rollback"  # its name in ui.commands

    version: str | None = None


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """Stop the training that is queued or running, at its next step; the current model keeps serving."""

    SUBCOMMAND: ClassVar[str] = "cancel"  # its name in ui.commands


RetrainCommand = TrainCommand | StatusCommand | RollbackCommand | CancelCommand


def _refuse(ja: str, en: str) -> InvalidRetrainOptionsError:
    return InvalidRetrainOptionsError(ja, en, retrain_usage())


def parse_epochs(value: str, max_epochs: float) -> float:
    """A number with 0 < N <= ``max_epochs`` (fractions allowed: ``epochs=0.5`` is half an epoch)."""
    try:
        epochs = float(value)
    except ValueError:
        raise _refuse(
            f"epochs は数値で指定してください ({code(value)})", f"epochs must be a number, not {code(value)}"
        ) from None
    if not math.isfinite(epochs) or not 0 < epochs <= max_epochs:
        raise _refuse(
            f"epochs は 0 より大きく {max_epochs:g} 以下にしてください ({code(value)})",
            f"epochs must be greater than 0 and at most {max_epochs:g}, not {code(value)}",
        )
    return epochs


def is_hub_name(value: str) -> bool:
    return bool(_HUB_NAME.fullmatch(value)) and ".." not in value


def is_folder_name(value: str) -> bool:
    return bool(_FOLDER_NAME.fullmatch(value)) and ".." not in value


def parse_base(value: str) -> str:
    """A hub name ``org/name`` or one folder name; paths (``../../etc``, ``/etc``) are refused."""
    if is_hub_name(value) or is_folder_name(value):
        return value
    shown = code(value)
    raise _refuse(
        f"base にはハブのモデル名 (org/name) か、ベースモデル用フォルダ内のフォルダ名を指定してください ({shown})",
        f"base must be a hub model name (org/name) or a folder name inside the base-models folder, not {shown}",
    )


def parse_version(value: str) -> str:
    if is_folder_name(value):
        return value
    raise _refuse(f"バージョン名が正しくありません ({code(value)})", f"not a model version name: {code(value)}")


def parse_retrain(text: str, *, max_epochs: float = 20.0) -> RetrainCommand:
    """The command that ``/retrain <text>`` asks for; raises :class:`InvalidRetrainOptionsError`."""
    tokens = text.split()
    if tokens and tokens[0].lower() == "status":
        if len(tokens) > 1:
            raise _refuse("status にオプションは付けられません", "status takes no options")
        return StatusCommand()
    if tokens and tokens[0].lower() == "cancel":
        if len(tokens) > 1:
            raise _refuse("cancel にオプションは付けられません", "cancel takes no options")
        return CancelCommand()
    if tokens and tokens[0].lower() == "rollback":
        if len(tokens) > 2:
            raise _refuse("rollback に指定できるのはバージョン名ひとつです", "rollback takes at most one version name")
        return RollbackCommand(parse_version(tokens[1]) if len(tokens) == 2 else None)

    seen: set[str] = set()
    epochs: float | None = None
    base: str | None = None
    model_type: ModelKind = "bert"
    force = False
    for token in tokens:
        name, sep, value = token.partition("=")
        name = name.lower()
        if not sep:
            if name == "force":
                if name in seen:
                    raise _refuse("force が重複しています", "force is given twice")
                seen.add(name)
                force = True
                continue
            raise _refuse(f"不明なオプションです ({code(token)})", f"unknown option {code(token)}")
        if name not in _OPTION_NAMES:
            raise _refuse(f"不明なオプションです ({code(name)})", f"unknown option {code(name)}")
        if name in seen:
            raise _refuse(f"{name} が重複しています", f"{name} is given twice")
        seen.add(name)
        if not value:
            raise _refuse(f"{name} の値がありません", f"{name} needs a value")
        if name == "epochs":
            epochs = parse_epochs(value, max_epochs)
        elif name == "base":
            base = parse_base(value)
        elif (kind := model_kind(value)) is not None:
            model_type = kind
        else:
            ja, en = " か ".join(MODEL_KINDS), " or ".join(MODEL_KINDS)
            raise _refuse(f"type は {ja} です ({code(value)})", f"type must be {en}, not {code(value)}")
    return TrainCommand(epochs=epochs, base_model=base, model_type=model_type, force=force)
