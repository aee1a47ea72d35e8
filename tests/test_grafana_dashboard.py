"""The Grafana dashboard of the ops profile (ops/grafana/newsbot.json): written by ops/grafana/dashboard.py, and
every metric a panel asks for is one the product exposes (a renamed metric would leave a panel empty)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

from prometheus_client import REGISTRY

from telemetry import metrics

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard", ROOT / "ops" / "grafana" / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exposed_names() -> set[str]:
    """Every metric family name this product registers, the scrape-time collectors included."""
    metrics.watch_queue_depths(lambda: [("classify", 0)], lambda: [("classify", "failed", 0)])
    metrics.watch_slack_token(lambda: None)
    figures = {"accuracy": 0.9, "labelled": 10.0, "answered": 20.0, "unsure_share": 0.1, "outside_share": 0.0}
    metrics.watch_live_accuracy(lambda: [("v1", figures)])
    return {family.name for family in REGISTRY.collect()}


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_the_json_is_what_the_generator_writes() -> None:
    assert generator().main(["--check"]) == 0


def test_every_panel_asks_for_metrics_the_product_exposes() -> None:
    board = json.loads((ROOT / "ops" / "grafana" / "newsbot.json").read_text(encoding="utf-8"))
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    exposed = exposed_names()
    asked = set()
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            asked |= {base(n) for n in re.findall(r"\bnewsbot_[a-z_]+", target["expr"])}
    missing = sorted(name for name in asked if name not in exposed)
    assert not missing, f"panels ask for metrics nobody exposes: {missing}"
    # The on-call essentials are there.
    for name in (
        "newsbot_slack_api_calls",
        "newsbot_rq_jobs",
        "newsbot_rq_abandoned_jobs",
        "newsbot_batch_size",
        "newsbot_inference_seconds",
        "newsbot_model_info",
    ):
        assert name in asked, name
