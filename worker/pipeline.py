"""The classify path: requests → articles (pasted text, fetched links) → one forward pass → results.

Split in two so that a batch of jobs shares one forward pass: :func:`classify_requests` turns any number of
requests into :class:`Outcome` objects (links of all of them fetched concurrently, all articles predicted
in one batch); each job then finishes on its own with its outcome (reply, records, RQ result).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from common.articles import Article, message_parts
from common.exceptions import EmptyArticleError, LinkError
from common.jobs import ClassifyRequest, ClassifyResult
from common.labels import category
from newsmodel.prediction import Prediction
from worker.classifier import ModelService
from worker.extract import article_from_page
from worker.fetch import GuardedFetcher

log = logging.getLogger(__name__)

# Links fetched at the same time, over all requests of a batch.
FETCH_CONCURRENCY = 8


@dataclass
class Item:
    """One article of a request: pasted text, or a link (fetched into an article, or failed)."""

    url: str | None
    article: Article | None = None
    error: LinkError | None = None
    result: ClassifyResult | None = None


@dataclass
class Outcome:
    """What a request came to before replying: its items with results, or one request-level error."""

    request: ClassifyRequest
    items: list[Item] = field(default_factory=list)
    dropped_urls: int = 0
    error: BaseException | None = None
    batch: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def articles(self) -> list[Item]:
        return [item for item in self.items if item.article is not None and item.error is None]


def _fetch_article(fetcher: GuardedFetcher, url: str) -> Item:
    try:
        return Item(url=url, article=article_from_page(fetcher.fetch(url)))
    except LinkError as exc:
        log.info("link %s not used: %s", url, exc)
        return Item(url=url, error=exc)


def prepare(requests: Sequence[ClassifyRequest], fetcher: GuardedFetcher, max_links: int) -> list[Outcome]:
    """Parse every request and fetch every link (concurrently across the batch)."""
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    to_fetch: list[tuple[Outcome, int, str]] = []
    for request in requests:
        parts = message_parts(request.text, max_links)
        outcome = Outcome(request=request, dropped_urls=parts.dropped_urls)
        if parts.text is not None:
            outcome.items.append(Item(url=None, article=parts.text))
        for url in parts.urls:
            to_fetch.append((outcome, len(outcome.items), url))
            outcome.items.append(Item(url=url))
        if not outcome.items:
            outcome.error = EmptyArticleError("nothing to classify")
        outcomes.append(outcome)
    if to_fetch:
        with ThreadPoolExecutor(min(FETCH_CONCURRENCY, len(to_fetch)), thread_name_prefix="fetch") as pool:
            fetched = pool.map(lambda job: _fetch_article(fetcher, job[2]), to_fetch)
            for (outcome, index, _url), item in zip(to_fetch, fetched, strict=True):
                outcome.items[index] = item
    fetch_ms = (time.perf_counter() - started) * 1000
    for outcome in outcomes:
        if any(item.url for item in outcome.items):
            outcome.timings_ms["fetch"] = fetch_ms
    return outcomes


def to_result(prediction: Prediction, version: str, item: Item, timings_ms: dict[str, float]) -> ClassifyResult:
    cat = category(prediction.slug)
    return ClassifyResult(
        slug=cat.slug,
        ja=cat.ja,
        en=cat.en,
        confidence=prediction.confidence,
        scores=prediction.scores,
        model_version=version,
        title=(item.article.title or None) if item.article else None,
        url=item.url,
        timings_ms=dict(timings_ms),
    )


def predict(outcomes: Sequence[Outcome], models: ModelService) -> None:
    """Classify every article of every outcome in one batch; a failure is recorded on each outcome."""
    pending = [o for o in outcomes if o.error is None]
    articles = [(o, item) for o in pending for item in o.articles]
    if not articles:
        return
    started = time.perf_counter()
    try:
        predictions, version = models.predict([item.article for _o, item in articles if item.article])
    except Exception as exc:  # noqa: BLE001 - every job of the batch gets to handle (and retry) it
        for outcome in pending:
            outcome.error = exc
        return
    model_ms = (time.perf_counter() - started) * 1000
    batch = {"id": uuid.uuid4().hex[:12], "jobs": len(pending), "articles": len(articles), "number": models.batches}
    for outcome in pending:
        outcome.timings_ms["model"] = model_ms
        outcome.batch = batch
    for (outcome, item), prediction in zip(articles, predictions, strict=True):
        item.result = to_result(prediction, version, item, outcome.timings_ms)


def classify_requests(
    requests: Sequence[ClassifyRequest], models: ModelService, fetcher: GuardedFetcher, max_links: int
) -> list[Outcome]:
    """Prepare and predict a batch of requests; never raises for one request's problem."""
    outcomes = prepare(requests, fetcher, max_links)
    predict(outcomes, models)
    return outcomes
