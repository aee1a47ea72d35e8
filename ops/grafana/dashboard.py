"""Writes ops/grafana/newsbot.json, the Grafana dashboard for the ops profile's Prometheus (docs/deploy.md).

    python ops/grafana/dashboard.py            # rewrite the JSON after changing a panel here
    python ops/grafana/dashboard.py --check    # exit 1 if the JSON is not what this file makes (tests run it)

Rows in the order an on-call person asks: is it answering (requests, latency, queues, the token), is Slack
refusing (429s, errors), are jobs failing (failed, abandoned, links), and what model answers (version, batches,
inference time, confidence). Every metric named here exists (tests/test_grafana_dashboard.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("newsbot.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _target(expr: str, legend: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": "A"}


def panel(title: str, targets: list[tuple[str, str]], kind: str = "timeseries", unit: str = "short") -> dict[str, Any]:
    refs = "ABCDEFGH"
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{**_target(expr, legend), "refId": refs[i]} for i, (expr, legend) in enumerate(targets)],
    }


def quantile(q: float, metric: str, by: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[5m])))"


ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "Is it answering?",
        [
            panel("Processes up", [('up{job=~"bot|worker|train-worker"}', "{{job}}")], kind="stat"),
            panel("Slack token valid", [("min(newsbot_slack_token_valid)", "valid")], kind="stat"),
            panel(
                "Requests by outcome (per s)",
                [("sum by (kind, outcome) (rate(newsbot_requests_total[5m]))", "{{kind}} {{outcome}}")],
                unit="reqps",
            ),
            panel(
                "Mention → reply latency",
                [
                    (quantile(0.5, "newsbot_job_latency_seconds"), "p50"),
                    (quantile(0.95, "newsbot_job_latency_seconds"), "p95"),
                ],
                unit="s",
            ),
            panel("Jobs waiting", [("max by (queue) (newsbot_queue_depth)", "{{queue}}")]),
            panel(
                "Enqueue failures (per s)",
                [("sum by (kind) (rate(newsbot_enqueue_failures_total[5m]))", "{{kind}}")],
                unit="reqps",
            ),
        ],
    ),
    (
        "Is Slack refusing?",
        [
            panel(
                "Slack API calls by outcome (per s)",
                [("sum by (outcome) (rate(newsbot_slack_api_calls_total[5m]))", "{{outcome}}")],
                unit="reqps",
            ),
            panel(
                "Rate-limited calls (429) by method",
                [('sum by (method) (rate(newsbot_slack_api_calls_total{outcome="ratelimited"}[5m]))', "{{method}}")],
                unit="reqps",
            ),
            panel(
                "Slack errors by code",
                [
                    (
                        "topk(10, sum by (method, error) (increase(newsbot_slack_api_errors_total[1h])))",
                        "{{method}} {{error}}",
                    )
                ],
                kind="table",
            ),
        ],
    ),
    (
        "Are jobs failing?",
        [
            panel("Failed jobs (kept 30 days)", [('max by (queue) (newsbot_rq_jobs{registry="failed"})', "{{queue}}")]),
            panel(
                "Abandoned jobs (a worker died)",
                [("sum by (queue) (increase(newsbot_rq_abandoned_jobs_total[1h]))", "{{queue}}")],
            ),
            panel("Jobs in hand", [('max by (queue) (newsbot_rq_jobs{registry="started"})', "{{queue}}")]),
            panel(
                "Links fetched by outcome (per s)",
                [("sum by (reason) (rate(newsbot_fetch_outcomes_total[5m]))", "{{reason}}")],
                unit="reqps",
            ),
        ],
    ),
    (
        "What model answers?",
        [
            panel(
                "Model served",
                [("max by (version, model_type) (newsbot_model_info)", "{{version}} ({{model_type}})")],
                kind="table",
            ),
            panel(
                "Inference seconds per batch",
                [
                    (quantile(0.5, "newsbot_inference_seconds", "model_type"), "p50 {{model_type}}"),
                    (quantile(0.95, "newsbot_inference_seconds", "model_type"), "p95 {{model_type}}"),
                ],
                unit="s",
            ),
            panel(
                "Articles per batch (mean)",
                [("sum(rate(newsbot_batch_size_sum[5m])) / sum(rate(newsbot_batch_size_count[5m]))", "mean")],
            ),
            panel(
                "Confidence of answers",
                [
                    (quantile(0.5, "newsbot_prediction_confidence"), "median"),
                    (quantile(0.1, "newsbot_prediction_confidence"), "p10"),
                ],
                unit="percentunit",
            ),
            panel(
                "Feedback (per hour)",
                [("sum by (answer) (increase(newsbot_feedback_total[1h]))", "{{answer}}")],
            ),
            panel(
                "Live accuracy (7 days, editors' labels)",
                [
                    ("max by (version) (newsbot_live_accuracy)", "accuracy {{version}}"),
                    ("max by (version) (newsbot_live_unsure_share)", "unsure {{version}}"),
                    ("max by (version) (newsbot_live_outside_share)", "outside labels {{version}}"),
                ],
                unit="percentunit",
            ),
            panel(
                "Answers behind the live accuracy (7 days)",
                [
                    ("max by (version) (newsbot_live_labelled)", "labelled {{version}}"),
                    ("max by (version) (newsbot_live_answered)", "answered {{version}}"),
                ],
            ),
            panel(
                "Trainings by outcome",
                [("sum by (outcome) (increase(newsbot_training_runs_total[1d]))", "{{outcome}}")],
            ),
        ],
    ),
]


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        for i, p in enumerate(row):
            panels.append({**p, "id": next_id, "gridPos": {"h": 8, "w": 8, "x": (i % 3) * 8, "y": y + (i // 3) * 8}})
            next_id += 1
        y += ((len(row) + 2) // 3) * 8
    return {
        "title": "newsbot",
        "uid": "newsbot-oncall",
        "description": "newsbot on call: answering, Slack, jobs, model (ops/grafana/dashboard.py writes this file)",
        "tags": ["newsbot"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                    "current": {},
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != render():
            print(
                f"{OUT} is not what ops/grafana/dashboard.py makes: run python ops/grafana/dashboard.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
