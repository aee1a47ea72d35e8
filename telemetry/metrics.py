"""Every Prometheus metric of the product, in one place (bot and workers expose them on ``/metrics``).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms). Label values are small
closed sets (kinds, outcomes, reasons), never user input, so the series count stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.exceptions import (
    LinkError,
    LinkRefusedError,
    LinkUnreachableError,
    UnsupportedContentError,
    UnusableArticleError,
)

log = logging.getLogger(__name__)

# Bot: what arrives from Slack and what became of it.
REQUESTS = Counter(
    "newsbot_requests",
    "Slack requests handled by the bot, by kind (mention, command, shortcut, retrain, feedback) and outcome",
    ["kind", "outcome"],
)
ENQUEUE_FAILURES = Counter("newsbot_enqueue_failures", "Jobs the bot could not enqueue (Redis unreachable)", ["kind"])
FEEDBACK = Counter("newsbot_feedback", "Feedback clicks on classification replies", ["answer"])

# Worker: jobs, links, predictions, the model served, trainings.
JOB_LATENCY = Histogram(
    "newsbot_job_latency_seconds",
    "Time from enqueue to the reply posted in Slack, per classify job",
    ["source"],
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
)
FETCH_OUTCOMES = Counter("newsbot_fetch_outcomes", "Linked pages fetched, by outcome (ok or the reason)", ["reason"])
CONFIDENCE = Histogram(
    "newsbot_prediction_confidence",
    "Probability of the predicted category",
    buckets=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
MODEL_INFO = Gauge("newsbot_model_info", "1 for the model version this worker serves", ["version", "model_type"])
BATCH_SIZE = Histogram("newsbot_batch_size", "Articles per inference batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
INFERENCE_SECONDS = Histogram(
    "newsbot_inference_seconds",
    "Seconds the model took per batch (tokenising and the forward pass)",
    ["model_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ABANDONED_JOBS = Counter(
    "newsbot_rq_abandoned_jobs",
    "Jobs found abandoned by RQ's maintenance (their worker died: killed, out of memory, host lost)",
    ["queue"],
)

# Every process's Slack Web API calls, each attempt (a call retried after a 429 counts twice): outcome ok, error
# (Slack answered ok: false; its code in newsbot_slack_api_errors_total), ratelimited (429), server_error (5xx),
# connection_error (no answer). Counted by a retry handler every client has (bot/slack_client.py).
SLACK_CALLS = Counter(
    "newsbot_slack_api_calls", "Slack Web API call attempts by method and outcome", ["method", "outcome"]
)
SLACK_ERRORS = Counter("newsbot_slack_api_errors", "Slack's error codes (ok: false) by method", ["method", "error"])
TRAINING_RUNS = Counter("newsbot_training_runs", "Trainings run by /retrain, by outcome", ["outcome"])


# newsbot_fetch_outcomes_total{reason}: "ok", or one of these for a link that could not be used.
FETCH_REASONS: dict[type[LinkError], str] = {
    LinkRefusedError: "refused",
    LinkUnreachableError: "unreachable",
    UnsupportedContentError: "unsupported",
    UnusableArticleError: "unusable",
}


def fetch_reason(error: LinkError) -> str:
    """The ``reason`` label of a link that could not be used: its LinkError subclass's, else ``other``."""
    for kind, reason in FETCH_REASONS.items():
        if isinstance(error, kind):
            return reason
    return "other"


def set_model_info(version: str, model_type: str) -> None:
    """Mark ``version`` as the one served (and no other)."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(version=version, model_type=model_type).set(1)


class QueueDepthCollector(Collector):
    """``newsbot_queue_depth{queue}`` (jobs waiting) and ``newsbot_rq_jobs{queue, registry}``, read from Redis at
    scrape time."""

    def __init__(
        self,
        depths: Callable[[], Iterable[tuple[str, int]]],
        registries: Callable[[], Iterable[tuple[str, str, int]]] | None = None,
    ) -> None:
        self._depths = depths
        self._registries = registries

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("newsbot_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        try:
            for name, depth in self._depths():
                family.add_metric([name], depth)
        except Exception as exc:  # noqa: BLE001 - Redis down: the scrape still succeeds, without these samples
            log.warning("queue depth unavailable: %s", exc)
        yield family
        registries = GaugeMetricFamily(
            "newsbot_rq_jobs",
            "Jobs in each RQ queue's registries: failed (kept 30 days), started (in hand), scheduled (a retry waits)",
            labels=["queue", "registry"],
        )
        if self._registries is not None:
            try:
                for name, registry, count in self._registries():
                    registries.add_metric([name, registry], count)
            except Exception as exc:  # noqa: BLE001 - as above
                log.warning("queue registries unavailable: %s", exc)
        yield registries


_queue_collector: QueueDepthCollector | None = None


def watch_queue_depths(
    depths: Callable[[], Iterable[tuple[str, int]]],
    registries: Callable[[], Iterable[tuple[str, str, int]]] | None = None,
) -> None:
    """Register (once per process) the collector that reports queue depths via ``depths`` and the registries'
    sizes via ``registries`` (queue, registry, count)."""
    global _queue_collector
    if _queue_collector is not None:
        REGISTRY.unregister(_queue_collector)
    _queue_collector = QueueDepthCollector(depths, registries)
    REGISTRY.register(_queue_collector)


class SlackTokenCollector(Collector):
    """``newsbot_slack_token_valid``: 0 while this process's Slack token is recorded as revoked in Redis (read at
    scrape time: the record any process wrote), 1 otherwise; no sample while Redis cannot say."""

    def __init__(self, revoked: Callable[[], str | None]) -> None:
        self._revoked = revoked

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "newsbot_slack_token_valid", "0 while Slack refuses the bot token (revoked, app uninstalled), else 1"
        )
        try:
            family.add_metric([], 0 if self._revoked() else 1)
        except Exception as exc:  # noqa: BLE001 - Redis down: the scrape still succeeds, without this sample
            log.warning("Slack token state unavailable: %s", exc)
        yield family


_token_collector: SlackTokenCollector | None = None


def watch_slack_token(revoked: Callable[[], str | None]) -> None:
    """Register (once per process) the collector of ``newsbot_slack_token_valid``; ``revoked`` says why the token
    is revoked, or None (``store.slack.token_revoked`` with the process's own token)."""
    global _token_collector
    if _token_collector is not None:
        REGISTRY.unregister(_token_collector)
    _token_collector = SlackTokenCollector(revoked)
    REGISTRY.register(_token_collector)


# The live figures of each served version (store.live), read from Redis at scrape time: name → help.
LIVE_GAUGES = {
    "accuracy": "Share of the last 7 days' editor-labelled answers the editors confirmed, per served version",
    "labelled": "Answers of the last 7 days editors confirmed or corrected (the count behind the live accuracy)",
    "answered": "Articles the served version answered in the last 7 days",
    "unsure_share": "Share of the last 7 days' answers that were unsure",
    "outside_share": "Share of the last 7 days' editor labels outside the model's labels",
}


class LiveAccuracyCollector(Collector):
    """``newsbot_live_<figure>{version}`` for each served version, from ``figures`` (version, figure → value or
    None) at scrape time; a figure not measured yet (None) has no sample, and none at all while Redis cannot say."""

    def __init__(self, figures: Callable[[], Iterable[tuple[str, Mapping[str, float | None]]]]) -> None:
        self._figures = figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(f"newsbot_live_{name}", text, labels=["version"])
            for name, text in LIVE_GAUGES.items()
        }
        try:
            for version, values in self._figures():
                for name, value in values.items():
                    if name in families and value is not None:
                        families[name].add_metric([version], value)
        except Exception as exc:  # noqa: BLE001 - Redis down: the scrape still succeeds, without these samples
            log.warning("live accuracy unavailable: %s", exc)
        yield from families.values()


_live_collector: LiveAccuracyCollector | None = None


def watch_live_accuracy(figures: Callable[[], Iterable[tuple[str, Mapping[str, float | None]]]]) -> None:
    """Register (once per process) the collector of the ``newsbot_live_*`` gauges; ``figures`` gives each served
    version's figures (``store.live.gauge_samples`` of ``store.live.served_figures``)."""
    global _live_collector
    if _live_collector is not None:
        REGISTRY.unregister(_live_collector)
    _live_collector = LiveAccuracyCollector(figures)
    REGISTRY.register(_live_collector)


def exposition() -> tuple[bytes, str]:
    """The body and content type of a ``/metrics`` answer."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
