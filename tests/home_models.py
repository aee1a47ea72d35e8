"""Registered linear model versions with the metrics.json and training.json that training writes, and helpers
to read an App Home view (``views.publish`` as the fake Slack received it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.articles import Article
from common.labels import SLUGS
from newsmodel import registry
from newsmodel.linear import LinearClassifier
from testkit.samples import SAMPLES
from training.evaluation import compute_metrics, write_metrics
from training.linear import fit_linear, save_linear


def add_linear_version(model_dir: Path, version: str, *, c: float = 1.0, current: bool = True) -> dict[str, Any]:
    """Train a linear model on two samples per category, test it on the third, register it as training does
    (model, metrics.json, training.json), and make it current; its metrics."""
    train = [(text, slug) for slug, texts in SAMPLES.items() for text in texts[:2]]
    test = [(text, slug) for slug, texts in SAMPLES.items() for text in texts[2:]]
    staging = registry.staging_dir(model_dir, version)
    save_linear(fit_linear([t for t, _ in train], [s for _, s in train], c=c), staging)
    predictions = LinearClassifier(staging, version).predict([Article(title="", body=t) for t, _ in test])
    metrics = compute_metrics([s for _, s in test], [p.slug for p in predictions], SLUGS)
    metrics["model_type"] = "linear"
    write_metrics(staging, metrics)
    info = {"version": version, "model_type": "linear", "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (staging / registry.INFO_FILE).write_text(json.dumps(info), encoding="utf-8")
    registry.register(model_dir, staging, version)
    if current:
        registry.promote(model_dir, version)
    return metrics


def view_of(params: dict[str, Any]) -> dict[str, Any]:
    view = params["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


def texts(node: Any) -> list[str]:
    """Every ``text`` string in a view, in order."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(texts(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(texts(item))
    return found


def all_text(view: dict[str, Any]) -> str:
    return "\n".join(texts(view["blocks"]))


def fields(view: dict[str, Any]) -> dict[str, str]:
    """The section fields of a view, as ``{name: value}`` (each field is ``*name*\\nvalue``)."""
    found = {}
    for block in view["blocks"]:
        for item in block.get("fields") or []:
            name, _, value = item["text"].partition("\n")
            found[name.strip("*")] = value
    return found


def action_ids(view: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
