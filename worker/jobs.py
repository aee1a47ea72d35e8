"""Thin job functions that RQ calls by dotted path (``worker.jobs.classify``).

They run inside the long-lived worker process, which installed a :class:`Runtime` (loaded model, Slack
client) before it started working; a job never loads a model itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import get_current_job

from common.articles import article_from_text
from common.exceptions import EmptyArticleError, NewsbotError
from common.jobs import ClassifyRequest, ClassifyResult
from common.labels import category
from common.settings import Settings
from worker.classifier import ModelService
from worker.slack import SlackReplier

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What jobs share within one worker process."""

    settings: Settings
    connection: Redis
    models: ModelService
    replier: SlackReplier


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not installed: jobs run only inside `python -m worker`")
    return _runtime


def classify(payload: dict[str, Any]) -> dict[str, Any]:
    """Classify one request and reply in its thread; the result dict is stored as the job's result."""
    rt = runtime()
    request = ClassifyRequest.from_dict(payload)
    job = get_current_job()
    reference = job.id if job else request.request_id
    try:
        started = time.perf_counter()
        article = article_from_text(request.text)
        if not article.body:
            raise EmptyArticleError("nothing to classify")
        (prediction,), version = rt.models.predict([article])
        cat = category(prediction.slug)
        result = ClassifyResult(
            slug=cat.slug,
            ja=cat.ja,
            en=cat.en,
            confidence=prediction.confidence,
            scores=prediction.scores,
            model_version=version,
            timings_ms={"model": (time.perf_counter() - started) * 1000},
        )
    except NewsbotError as exc:
        log.info("request %s refused: %s", reference, exc)
        rt.replier.post_error(request, exc.user_message)
        return {"error": type(exc).__name__, "message": str(exc)}
    except Exception:
        log.exception("request %s failed", reference)
        rt.replier.post_error(request, NewsbotError.user_message, reference)
        raise
    rt.replier.post_result(request, result)
    return result.to_dict()
