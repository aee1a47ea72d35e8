"""The classify path: requests → articles (pasted text, fetched links) → one forward pass → predictions.

Split in two so that a batch of jobs shares one forward pass: :func:`classify_requests` turns any number of
requests into :class:`Outcome` objects (links of all of them fetched concurrently, all articles predicted
in one batch); each job then finishes on its own with its outcome (records, reply, RQ result: worker.jobs).

One type carries an article all the way: :class:`ArticleResult` is made when the message is parsed (pasted
text, or a link to fetch), gets its article or its link error, then its prediction, then its record id, and
is what the reply (ui.replies) and the job's RQ result (:meth:`ArticleResult.to_dict`) are built from.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.articles import Article, message_parts
from common.exceptions import EmptyArticleError, LinkError, NewsbotError
from common.jobs import ClassifyRequest
from common.labels import LIVEDOOR, LabelSet
from newsmodel.prediction import Prediction
from telemetry import metrics
from worker.classifier import ModelService
from worker.extract import fetch_article
from worker.fetch import GuardedFetcher

log = logging.getLogger(__name__)
T = TypeVar("T")

# Links fetched at the same time, over all requests of a batch.
FETCH_CONCURRENCY = 8


@dataclass
class ArticleResult:
    """One article of a message, from its source to its reply: pasted text, or a link (fetched, or failed)."""

    url: str | None
    article: Article | None = None
    error: NewsbotError | None = None
    prediction: Prediction | None = None
    model_version: str = ""
    record_id: str | None = None
    labels: LabelSet = LIVEDOOR  # the labels of the model that made the prediction, with their display names

    @property
    def classifiable(self) -> bool:
        return self.article is not None and self.error is None

    @property
    def classified(self) -> bool:
        return self.article is not None and self.prediction is not None

    def _predicted(self) -> Prediction:
        if self.prediction is None:
            raise ValueError(f"article {self.url or '(pasted text)'} was not classified")
        return self.prediction

    @property
    def slug(self) -> str:
        """The predicted label (livedoor's slug, or a newsroom's own label)."""
        return self._predicted().label

    @property
    def label(self) -> str:
        return self._predicted().label

    def display(self, label: str | None = None) -> str:
        """``label``'s display names (the prediction's by default), unescaped: ``政治 / Politics``."""
        label = self.label if label is None else label
        return self.labels.display(label) if label in self.labels else label

    def name(self, label: str, language: str) -> str:
        """``label``'s name in ``language`` (``ja``, ``en``), else the label itself; unescaped."""
        return self.labels.name(label, language) if label in self.labels else label

    @property
    def confidence(self) -> float:
        return self._predicted().confidence

    @property
    def unsure(self) -> bool:
        """The served model's decision (its rule, or CONFIDENCE_THRESHOLD's bar): act on its own only when sure."""
        return self._predicted().unsure

    @property
    def threshold(self) -> float | None:
        """The bar this answer was judged against."""
        return self._predicted().threshold

    @property
    def scores(self) -> dict[str, float]:
        return self._predicted().scores

    def top(self, k: int) -> list[tuple[str, float]]:
        return self._predicted().top(k)

    @property
    def title(self) -> str | None:
        return (self.article.title or None) if self.article else None

    @property
    def user_error(self) -> str:
        """Why this article has no classification, in plain Japanese and English."""
        return self.error.user_message if self.error is not None else NewsbotError.user_message

    def to_dict(self) -> dict[str, Any]:
        """This article's entry in the job's RQ result: its classification and record id, or its error."""
        if not self.classified:
            return {"url": self.url, "error": self.user_error}
        label = self.label
        return {
            "slug": label,
            "label": label,
            "ja": self.name(label, "ja"),
            "en": self.name(label, "en"),
            "confidence": self.confidence,
            "unsure": self.unsure,
            "scores": self.scores,
            "model_version": self.model_version,
            "title": self.title,
            "url": self.url,
            "record_id": self.record_id,
        }


@dataclass
class Outcome:
    """What a request came to before replying: its articles (with predictions), or one request-level error."""

    request: ClassifyRequest
    articles: list[ArticleResult] = field(default_factory=list)
    dropped_urls: int = 0
    error: BaseException | None = None
    batch: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def classifiable(self) -> list[ArticleResult]:
        return [a for a in self.articles if a.classifiable]


def _fetch_article(fetcher: GuardedFetcher, url: str) -> ArticleResult:
    try:
        result = ArticleResult(url=url, article=fetch_article(fetcher, url))
    except LinkError as exc:
        log.info("link %s not used: %s", url, exc)
        metrics.FETCH_OUTCOMES.labels(reason=metrics.fetch_reason(exc)).inc()
        return ArticleResult(url=url, error=exc)
    metrics.FETCH_OUTCOMES.labels(reason="ok").inc()
    return result


def prepare(requests: Sequence[ClassifyRequest], fetcher: GuardedFetcher, max_links: int) -> list[Outcome]:
    """Parse every request and fetch every link (concurrently across the batch)."""
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    to_fetch: list[tuple[Outcome, int, str]] = []
    for request in requests:
        parts = message_parts(request.text, max_links)
        outcome = Outcome(request=request, dropped_urls=parts.dropped_urls)
        if parts.text is not None:
            outcome.articles.append(ArticleResult(url=None, article=parts.text))
        for url in parts.urls:
            to_fetch.append((outcome, len(outcome.articles), url))
            outcome.articles.append(ArticleResult(url=url))
        if not outcome.articles:
            outcome.error = EmptyArticleError("nothing to classify")
        outcomes.append(outcome)
    if to_fetch:
        with ThreadPoolExecutor(min(FETCH_CONCURRENCY, len(to_fetch)), thread_name_prefix="fetch") as pool:
            fetched = pool.map(lambda job: _fetch_article(fetcher, job[2]), to_fetch)
            for (outcome, index, _url), article in zip(to_fetch, fetched, strict=True):
                outcome.articles[index] = article
    fetch_ms = (time.perf_counter() - started) * 1000
    for outcome in outcomes:
        if any(article.url for article in outcome.articles):
            outcome.timings_ms["fetch"] = fetch_ms
    return outcomes


def fetch_phases(items: Sequence[T], payload_of: Callable[[T], object], max_links: int) -> list[list[T]]:
    """``items`` (jobs) in the order to compute and answer them: those whose message fetches no link first.

    A page may take up to FETCH_TIMEOUT_S; a message of pasted text is answered in a forward pass. Computing the
    no-link jobs of a batch (and replying to them) before the link jobs means a slow or pathological page never
    holds up another user's pasted text. Empty phases are left out; a payload that is no classify request counts
    as needing no fetch (it fails in its own job at once).
    """
    quick: list[T] = []
    slow: list[T] = []
    for item in items:
        payload = payload_of(item)
        text = payload.get("text") if isinstance(payload, dict) else None
        fetches = isinstance(text, str) and bool(message_parts(text, max_links).urls)
        (slow if fetches else quick).append(item)
    return [phase for phase in (quick, slow) if phase]


def predict(outcomes: Sequence[Outcome], models: ModelService) -> None:
    """Classify every article of every outcome, in one forward pass when nothing fails.

    When the shared pass fails, the jobs are split in halves and each half tried again, down to the job that
    fails on its own (it gets the error, to handle and retry); the others are answered. One failing job among
    n costs at most 2·⌈log2 n⌉ passes more. A NewsbotError (no model loaded) is no job's fault: every job gets it.
    """
    pending = [o for o in outcomes if o.error is None and o.classifiable]
    if pending:
        _predict_together(pending, models)


def _predict_together(outcomes: list[Outcome], models: ModelService) -> None:
    articles = [article for o in outcomes for article in o.classifiable]
    started = time.perf_counter()
    try:
        predictions, served = models.predict([a.article for a in articles if a.article is not None])
    except Exception as exc:  # noqa: BLE001 - recorded on the failing job, which handles (and retries) it
        if len(outcomes) == 1 or isinstance(exc, NewsbotError):
            for outcome in outcomes:
                outcome.error = exc
            return
        log.warning("a forward pass over %d jobs failed (%s); trying each half apart", len(outcomes), exc)
        half = len(outcomes) // 2
        _predict_together(outcomes[:half], models)
        _predict_together(outcomes[half:], models)
        return
    model_ms = (time.perf_counter() - started) * 1000
    batch = {"id": uuid.uuid4().hex[:12], "jobs": len(outcomes), "articles": len(articles), "number": models.batches}
    for outcome in outcomes:
        outcome.timings_ms["model"] = model_ms
        outcome.batch = batch
    for article, prediction in zip(articles, predictions, strict=True):
        article.prediction = prediction
        article.model_version = served.version
        article.labels = served.labels


def classify_requests(
    requests: Sequence[ClassifyRequest], models: ModelService, fetcher: GuardedFetcher, max_links: int
) -> list[Outcome]:
    """Prepare and predict a batch of requests; never raises for one request's problem."""
    outcomes = prepare(requests, fetcher, max_links)
    predict(outcomes, models)
    return outcomes
