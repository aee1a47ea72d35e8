"""What each worker serves, published by its model watcher for ``/retrain status`` and the App Home."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis import Redis

from common.exceptions import LabelSetError
from common.labels import LIVEDOOR, LabelSet
from store.record import Key, as_str, fixed, float_or_none, str_fields


def serving_ttl_s(poll_interval_s: float) -> int:
    """A worker's serving hash outlives a few of its publishing intervals, then vanishes with the worker."""
    return max(30, int(poll_interval_s * 3) + 1)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """A model version as the App Home shows it: what it is, when it was trained, its test figures."""

    version: str
    model_type: str = ""
    trained_at: str = ""  # ISO time of training.json's created_at
    accuracy: float | None = None  # on the test split (metrics.json)
    macro_f1: float | None = None
    labels: tuple[str, ...] = ()  # in label-id order
    label_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)  # {label: {ja, en}}
    # The sure rule it is served with (ui.reports.confidence_line): calibrated, threshold, source, target_precision,
    # coverage and precision on the test split, ece_before, ece_after; empty when not known.
    confidence: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def label_set(self) -> LabelSet | None:
        """The labels with their display names; None when not known (or not a usable set)."""
        return _label_set(self.labels, self.label_names)


def _label_set(labels: tuple[str, ...], names: Mapping[str, Mapping[str, str]]) -> LabelSet | None:
    """The set, with livedoor's names for livedoor's nine slugs published without names (as a model folder
    without labels.json gets them, and as workers of earlier releases published them)."""
    if not names and labels == LIVEDOOR.labels:
        return LIVEDOOR
    try:
        return LabelSet(labels, names)
    except LabelSetError:
        try:
            return LabelSet(labels)
        except LabelSetError:
            return None


@dataclass(frozen=True, slots=True)
class ServingState:
    """What one worker serves now, published by its model watcher for ``/retrain status`` and the App Home.

    Besides the version, the served model's facts (from its metrics.json and training.json, read by the
    worker: the bot never reads MODEL_DIR) and ``versions``, the registry's latest versions as the worker
    last listed them (newest first, each with a one-line summary), which admins may promote from the Home.
    """

    KEY: ClassVar[Key] = Key(
        "newsbot:serving:{worker}", "hash, ServingState", "serving_ttl_s(the worker's poll interval)"
    )

    worker: str
    version: str = ""
    path: str = ""
    loaded_at: str = ""
    last_error: str = ""
    device: str = ""
    model_type: str = ""
    trained_at: str = ""
    accuracy: float | None = None
    macro_f1: float | None = None
    labels: tuple[str, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()
    label_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)
    confidence: Mapping[str, Any] = field(default_factory=dict, hash=False)  # as ModelFacts.confidence

    @property
    def model(self) -> ModelFacts | None:
        """The served model's facts, or None while this worker serves none."""
        if not self.version:
            return None
        return ModelFacts(
            self.version,
            self.model_type,
            self.trained_at,
            self.accuracy,
            self.macro_f1,
            self.labels,
            {label: dict(names) for label, names in self.label_names.items()},
            dict(self.confidence),
        )

    @classmethod
    def key_for(cls, worker: str) -> str:
        return cls.KEY.key_for(worker)

    def encode(self) -> dict[str, str]:
        return {
            "version": self.version,
            "path": self.path,
            "loaded_at": self.loaded_at,
            "last_error": self.last_error,
            "device": self.device,
            "model_type": self.model_type,
            "trained_at": self.trained_at,
            "accuracy": fixed(self.accuracy, 4),
            "macro_f1": fixed(self.macro_f1, 4),
            "labels": json.dumps(list(self.labels), ensure_ascii=False),
            "label_names": json.dumps({k: dict(v) for k, v in self.label_names.items()}, ensure_ascii=False),
            "versions": json.dumps([list(v) for v in self.versions], ensure_ascii=False),
            "confidence": json.dumps(dict(self.confidence), ensure_ascii=False),
        }

    @classmethod
    def decode(cls, worker: str, raw: Mapping[Any, Any]) -> ServingState:
        fields = str_fields(raw)
        try:
            versions = tuple((str(v), str(s)) for v, s in json.loads(fields.get("versions") or "[]"))
        except (ValueError, TypeError):
            versions = ()
        return cls(
            worker=worker,
            version=fields.get("version", ""),
            path=fields.get("path", ""),
            loaded_at=fields.get("loaded_at", ""),
            last_error=fields.get("last_error", ""),
            device=fields.get("device", ""),
            model_type=fields.get("model_type", ""),
            trained_at=fields.get("trained_at", ""),
            accuracy=float_or_none(fields.get("accuracy", "")),
            macro_f1=float_or_none(fields.get("macro_f1", "")),
            labels=_decode_label_list(fields.get("labels", "")),
            versions=versions,
            label_names=_decode_label_names(fields.get("label_names", "")),
            confidence=_decode_object(fields.get("confidence", "")),
        )


def _decode_label_list(raw: str) -> tuple[str, ...]:
    """A JSON list of labels (a label may hold a comma); comma-separated as earlier releases published them."""
    if raw.startswith("["):
        try:
            return tuple(str(label) for label in json.loads(raw))
        except (ValueError, TypeError):
            return ()
    return tuple(label for label in raw.split(",") if label)


def _decode_object(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _decode_label_names(raw: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): {str(lang): str(n) for lang, n in v.items()} for k, v in data.items() if isinstance(v, dict)}


def publish_serving_state(connection: Redis, state: ServingState, poll_interval_s: float) -> None:
    key = ServingState.key_for(state.worker)
    with connection.pipeline() as pipe:
        pipe.hset(key, mapping=state.encode())  # type: ignore[arg-type]
        pipe.expire(key, serving_ttl_s(poll_interval_s))
        pipe.execute()


def clear_serving_state(connection: Redis, worker: str) -> None:
    connection.delete(ServingState.key_for(worker))


def serving_states(connection: Redis) -> list[ServingState]:
    """Every live worker's serving state, by worker name."""
    states = []
    for key in sorted(as_str(k) for k in connection.scan_iter(match=ServingState.KEY.pattern)):
        raw: dict[Any, Any] = connection.hgetall(key)
        if raw:
            states.append(ServingState.decode(ServingState.KEY.part_of(key), raw))
    return states
