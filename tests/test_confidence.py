"""Issue 19: calibrated scores, a "sure" bar each model earns on its validation split for a target precision, and one
decision everywhere (the worker's answers and ``python -m training predict``)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from rq.job import Job

from common.articles import article_from_text
from common.labels import LabelSet
from newsmodel.confidence import CONFIDENCE_FILE, DEFAULT_THRESHOLD, judge, read_confidence
from newsmodel.loading import load_classifier
from newsmodel.prediction import Prediction
from newsmodel.registry import current_version
from store import serving
from store.feedback import FeedbackTally
from store.queues import classify_queue
from testkit.fake_corpus import build_archive
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.linear_model import train_calibrated_linear
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from tests.home_models import all_text
from training.api import TrainOutcome
from training.cli import main
from training.confidence import (
    COVERAGE_PNG,
    MIN_VALIDATION,
    RELIABILITY_PNG,
    choose_threshold,
    expected_calibration_error,
    fit_confidence,
)
from ui import home
from ui.admin import serving_lines
from worker.classifier import ModelService

PNG = b"\x89PNG\r\n\x1a\n"
# Articles of every desk, and stories from no desk the model knows (the bot should be unsure of most of these).
TEXTS = [
    *(texts[0] for texts in SAMPLES.values()),
    "チューリップが見頃を迎え、市内の公園には家族連れが訪れた。地元の農家は球根の植え付けを振り返った。",
    "The city council approved the new budget after a long debate about public transport.",
    "県の教育委員会は来年度の入試日程を発表した。受験生は願書の提出期限に注意が必要だ。",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainOutcome:
    """A livedoor-style linear model with enough validation articles (4 per label) to calibrate and choose a bar."""
    return train_calibrated_linear(tmp_path_factory.mktemp("confidence"))


def run_cli(*args: str, stdin: str = "") -> list[dict[str, Any]]:
    out = io.StringIO()
    assert main(list(args), stdin=io.StringIO(stdin), out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_training_stores_the_calibration_the_bar_and_their_figures(trained: TrainOutcome) -> None:
    folder = trained.path
    stored = json.loads((folder / CONFIDENCE_FILE).read_text(encoding="utf-8"))
    confidence = read_confidence(folder)
    assert confidence.calibrated and confidence.temperature == stored["calibration"]["temperature"] != 1.0
    rule = confidence.rule
    assert rule.source == "validation" and rule.score == "sure_score" and rule.target_precision == 0.95
    assert rule.examples == 36 and rule.precision is not None and rule.precision >= 0.95
    assert rule.coverage is not None and 0.0 < rule.coverage <= 1.0
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    report = metrics["confidence"]
    assert set(report["ece"]["test"]) == {"before", "after"}
    assert report["ece"]["validation"]["after"] <= report["ece"]["validation"]["before"]
    assert report["rule"]["threshold"] == rule.threshold and report["rule"]["test"]["sure"] > 0
    assert any(row["threshold"] == round(rule.threshold, 6) for row in report["curve"])
    for png in (RELIABILITY_PNG, COVERAGE_PNG, "confusion_matrix.png"):
        assert (folder / png).read_bytes().startswith(PNG)
    assert trained.reliability_png == folder / RELIABILITY_PNG
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Confidence" in card and f"{report['ece']['test']['before']:.4f} before" in card
    assert f"**{rule.threshold:.4f}**" in card and "(chosen)" in card


def test_served_scores_are_calibrated_and_predict_decides_as_the_bot(
    trained: TrainOutcome,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_dir = trained.path.parent
    assert current_version(model_dir) == trained.version
    articles = [article_from_text(text) for text in TEXTS]
    raw = load_classifier(trained.path).predict(articles)
    # The worker's model: calibrated scores, not the classifier's raw ones, still probabilities.
    models = ModelService(model_dir, None, "cpu")
    assert models.load()
    served, _ = models.predict(articles)
    assert all(abs(sum(p.scores.values()) - 1.0) < 1e-6 for p in served)
    assert [p.label for p in served] == [p.label for p in raw]
    assert max(abs(s.scores[k] - r.scores[k]) for s, r in zip(served, raw, strict=True) for k in s.scores) > 1e-3

    # The bot's answers to real classify jobs (the in-process worker, replies through the fake Slack)…
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_dir)
    install_runtime(settings, redis_conn)
    queue = classify_queue(redis_conn)
    jobs = [enqueue_classify(queue, f"<@UBOT> {text}", n) for n, text in enumerate(TEXTS, 1)]
    run_burst(redis_conn)
    bot: list[bool] = []
    for n, job in enumerate(jobs, 1):
        result = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer).return_value()
        assert result is not None
        bot.append(bool(result["unsure"]))
        thread = f"1700000000.{n:06d}"
        (reply,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["thread_ts"] == thread]
        assert ("自信がありません / Not sure" in reply.params["text"]) == result["unsure"]
    # …are exactly what `python -m training predict` says of the same texts.
    rows = run_cli("predict", "--model-dir", str(model_dir), stdin="\n".join(TEXTS) + "\n")
    assert [row["unsure"] for row in rows] == bot
    assert [row["unsure"] for row in rows] == [p.unsure for p in served]
    assert rows[0]["rule"] == "validation" and rows[0]["calibrated"] is True
    assert [row["scores"] for row in rows] == [p.scores for p in served]
    assert True in bot  # the stories from no known desk are not all called sure

    # CONFIDENCE_THRESHOLD, when set, overrides the model's own bar, in both.
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0")
    rows = run_cli("predict", "--model-dir", str(model_dir), stdin="\n".join(TEXTS) + "\n")
    assert [(row["unsure"], row["rule"], row["threshold"]) for row in rows] == [(False, "setting", 0.0)] * len(TEXTS)
    lenient = ModelService(model_dir, None, "cpu", confidence_threshold=0.0)
    assert lenient.load()
    assert not any(p.unsure for p in lenient.predict(articles)[0])


def test_a_model_without_calibration_is_served_as_before(trained: TrainOutcome, tmp_path: Path) -> None:
    old = tmp_path / "20250101-000000-000old000"
    shutil.copytree(trained.path, old)
    (old / CONFIDENCE_FILE).unlink()
    confidence = read_confidence(old)
    assert not confidence.calibrated and confidence.rule.threshold == DEFAULT_THRESHOLD
    articles = [article_from_text(text) for text in TEXTS]
    raw = load_classifier(old).predict(articles)
    served = judge(raw, confidence)
    assert [p.scores for p in served] == [p.scores for p in raw]
    assert [p.unsure for p in served] == [p.confidence < DEFAULT_THRESHOLD for p in raw]
    (old / CONFIDENCE_FILE).write_text("{not json", encoding="utf-8")  # unreadable: as if absent, never an error
    assert not read_confidence(old).calibrated


LABELS = LabelSet(("a", "b", "c"))


def _overconfident(n: int, seed: int = 0) -> tuple[list[Prediction], list[str]]:
    """Predictions right 70% of the time but 97% sure of each."""
    rng = np.random.default_rng(seed)
    predictions, truth = [], []
    for _ in range(n):
        top = str(rng.choice(list(LABELS)))
        others = [label for label in LABELS if label != top]
        predictions.append(Prediction({top: 0.97, others[0]: 0.02, others[1]: 0.01}))
        truth.append(top if rng.random() < 0.7 else others[0])
    return predictions, truth


def test_temperature_scaling_fixes_an_overconfident_model_and_the_bar_meets_its_target() -> None:
    validation, validation_truth = _overconfident(400)
    test, test_truth = _overconfident(400, seed=1)
    fitted = fit_confidence(validation, validation_truth, test, test_truth, LABELS, target_precision=0.6)
    assert fitted.confidence.temperature > 1.0
    ece = fitted.report["ece"]["test"]
    assert ece["before"] > 0.2 and ece["after"] < 0.05
    assert fitted.confidence.rule.source == "validation" and fitted.report["note"] == ""
    # A target no bar can reach (every answer is ~70% right): the configured bar, said plainly.
    fitted = fit_confidence(validation, validation_truth, test, test_truth, LABELS, target_precision=0.99)
    assert fitted.confidence.rule.source == "default" and "no bar reaches precision 0.99" in fitted.report["note"]
    # A validation split too small to calibrate on: no temperature, the configured bar.
    small, small_truth = _overconfident(MIN_VALIDATION - 1)
    fitted = fit_confidence(small, small_truth, test, test_truth, LABELS, target_precision=0.6, fallback_threshold=0.7)
    assert fitted.confidence.temperature == 1.0 and fitted.confidence.rule.threshold == 0.7
    assert "too small" in fitted.report["note"]


def test_the_bar_is_the_lowest_that_keeps_the_precision_and_never_splits_a_tie() -> None:
    confidence = np.asarray([0.99, 0.95, 0.9, 0.9, 0.8, 0.7])
    correct = np.asarray([True, True, True, False, True, False])
    assert choose_threshold(confidence, correct, 1.0) == (0.95, 1.0, 2 / 6)
    bar, precision, coverage = choose_threshold(confidence, correct, 0.8) or (0, 0, 0)
    assert (bar, precision, coverage) == (0.8, 0.8, 5 / 6)
    assert choose_threshold(confidence, ~correct, 0.9) is None
    probs = np.asarray([[0.9, 0.1], [0.6, 0.4]])
    assert expected_calibration_error(probs, np.asarray([0, 1])) == pytest.approx((abs(0.9 - 1) + abs(0.6 - 0)) / 2)


def test_the_open_set_evaluation_leaves_each_label_out_and_judges_as_the_bot(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "ldcc-20140209.tar.gz", per_class=40)
    (report,) = run_cli(
        *("openset", "--data", str(archive), "--model-type", "linear", "--cache-dir", str(tmp_path / "cache")),
        *("--hold-out", "smax", "--hold-out", "sports-watch", "--model-dir", str(tmp_path / "models")),
    )
    assert [row["label"] for row in report["held_out"]] == ["smax", "sports-watch"]
    for row in report["held_out"]:
        assert (row["unseen"], row["known"]) == (4, 32)  # the whole test split: 4 unseen, 32 known
        assert row["rule_source"] == "validation" and 0.0 < row["threshold"] <= 1.0
        for name in ("unseen_unsure", "known_sure", "precision_when_sure"):
            assert 0.0 <= row[name] <= 1.0
        assert row["sure"] == round(row["known_sure"] * 32) + round((1 - row["unseen_unsure"]) * 4)
    pooled = report["at_each_bar"]
    assert (pooled["unseen"], pooled["known"]) == (8, 64)
    assert report["targets"] == {"unseen_unsure": 0.8, "known_sure": 0.85, "precision_when_sure": 0.99}
    assert len(report["curve"]) > 10 and report["best_shared_bar"] in report["curve"]
    assert not (tmp_path / "models").exists()  # nothing registered
    refused = ["openset", "--data", str(archive), "--hold-out", "no-such-desk", "--cache-dir", str(tmp_path / "c")]
    assert main(refused, stdin=io.StringIO(), out=io.StringIO()) == 1  # a label the data lacks: refused, named


def test_the_home_and_retrain_status_show_the_served_rule(trained: TrainOutcome, redis_conn: redis.Redis) -> None:
    models = ModelService(trained.path.parent, None, "cpu")
    assert models.load()
    models.publish(redis_conn, "worker-1")
    (state,) = serving.serving_states(redis_conn)  # through Redis, as the bot reads it
    rule = read_confidence(trained.path).rule
    test = json.loads((trained.path / "metrics.json").read_text(encoding="utf-8"))["confidence"]["rule"]["test"]
    assert state.confidence["threshold"] == rule.threshold and state.confidence["source"] == "validation"
    line = f"Sure bar: {rule.threshold:.3f}"
    status = serving_lines([state])[0]
    assert line in status and f"precision {test['precision']:.1%}" in status and "ECE" in status
    assert state.model is not None
    data = home.HomeData("U1", False, [state], 0, 0, FeedbackTally(0, 0, 0), [], [], [])
    assert line in all_text(home.home_view(data))
    # CONFIDENCE_THRESHOLD set: the Home says the bar is the setting's
    models = ModelService(trained.path.parent, None, "cpu", confidence_threshold=0.7)
    assert models.load()
    assert "Sure bar: 0.700 (CONFIDENCE_THRESHOLD" in serving_lines([models.serving_state("w")])[0]


def test_an_unsure_reply_asks_which_desk_with_its_top_three_labels() -> None:
    from ui.ids import FEEDBACK_PICK_ACTION, picked
    from ui.replies import reply_message
    from worker.pipeline import ArticleResult

    scores = {"smax": 0.4, "it-life-hack": 0.35, "kaden-channel": 0.2, "peachy": 0.05}
    article = article_from_text("新型端末")
    unsure = ArticleResult(None, article, prediction=Prediction(scores, unsure=True), record_id="rec-u")
    sure = ArticleResult(None, article, prediction=Prediction(scores, unsure=False), record_id="rec-s")
    blocks = reply_message([unsure, sure])["blocks"]
    first, second = [b["elements"] for b in blocks if b["type"] == "actions"]  # one actions block per article
    asked = [picked(e["value"]) for e in first if e["action_id"].startswith(FEEDBACK_PICK_ACTION)]
    assert asked == [("rec-u", "smax"), ("rec-u", "it-life-hack"), ("rec-u", "kaden-channel")]
    assert len({e["action_id"] for e in first}) == 5  # three desks, Correct, Wrong: ids unique in the block
    assert not any(e["action_id"].startswith(FEEDBACK_PICK_ACTION) for e in second)  # a sure answer asks nothing
