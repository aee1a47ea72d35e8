"""Training end to end on a synthetic corpus: the CLI, the version folder, promotion, rollback, predict, pipeline()."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.articles import Article
from common.exceptions import TrainingError
from common.labels import SLUGS
from newsmodel import registry
from testkit.fake_corpus import build_archive
from testkit.processes import REPO_ROOT, product_env
from testkit.samples import SAMPLES
from training.api import DataOptions, Progress, RunOptions, TrainOptions, evaluate, train, train_options
from training.cli import main
from training.split import read_split


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("corpus") / "ldcc-20140209.tar.gz", per_class=20)


def options_for(archive: Path, tiny_model: Path, root: Path, **overrides: Any) -> TrainOptions:
    base: dict[str, Any] = {
        "data": str(archive),
        "base_model": str(tiny_model),
        "num_train_epochs": 3,
        "per_device_train_batch_size": 8,
        "max_length": 64,
        "learning_rate": 5e-3,
        "warmup_steps": 0.0,
        "model_dir": root / "models",
        "output_dir": str(root / "runs"),
        "cache_dir": root / "cache",
        "device": "cpu",
    }
    return train_options(**{**base, **overrides})


@pytest.fixture(scope="module")
def cli_run(archive: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``python -m training train`` of a tiny BERT, as a deployment runs it (a separate process)."""
    root = tmp_path_factory.mktemp("cli")
    extra = root / "extra.jsonl"
    extra.write_text(
        json.dumps({"text": "携帯電話会社が新しい料金プランを発表した。", "slug": "smax"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"text": "分類できない", "slug": "weather"})
        + "\n",
        encoding="utf-8",
    )
    args = [
        *("train", "--data", str(archive), "--base-model", str(tiny_model)),
        *("--epochs", "3", "--batch-size", "8", "--max-length", "64", "--learning-rate", "5e-3", "--seed", "1"),
        *("--run-dir", str(root / "runs"), "--extra-examples", str(extra), "--warmup", "0"),
        # The Trainer's own flags (transformers.TrainingArguments), in both spellings.
        *("--lr_scheduler_type", "cosine", "--weight-decay", "0.02"),
    ]
    env = product_env(MODEL_DIR=str(root / "models"), DATA_CACHE_DIR=str(root / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "training", *args], env=env, cwd=root, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {
        "root": root,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "summary": json.loads(proc.stdout.splitlines()[-1]),
    }


def test_cli_train_registers_a_complete_version(cli_run: dict[str, Any]) -> None:
    summary, root = cli_run["summary"], cli_run["root"]
    model_dir = root / "models"
    assert set(summary) >= {"version", "path", "promoted", "reason", "metrics"}
    assert summary["promoted"] is True and summary["reason"] == "no current model yet"
    assert registry.current_version(model_dir) == summary["version"]
    folder = Path(summary["path"])
    assert folder == model_dir / summary["version"]
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["accuracy"] == metrics["accuracy"]
    assert summary["metrics"]["macro_f1"] == metrics["macro_f1"]
    assert metrics["examples"] == 18 and sum(map(sum, metrics["confusion_matrix"])) == 18
    assert set(metrics["per_class"]) == set(SLUGS)
    # The metrics agree with the confusion matrix of the 18 test articles (two per category).
    matrix = metrics["confusion_matrix"]
    assert [sum(row) for row in matrix] == [metrics["per_class"][s]["support"] for s in SLUGS] == [2] * 9
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(9)) / 18)
    assert metrics["macro_f1"] == pytest.approx(sum(row["f1"] for row in metrics["per_class"].values()) / 9)
    assert metrics["baseline"]["accuracy"] >= 0.8  # TF-IDF + SVM on the same split, reported beside
    assert set(metrics["validation"]) >= {"eval_loss", "eval_accuracy", "eval_macro_f1"}
    validation_right = metrics["validation"]["eval_accuracy"] * 18  # of the 18 validation articles
    assert validation_right == pytest.approx(round(validation_right)) and 0 <= round(validation_right) <= 18
    assert 0.0 <= metrics["validation"]["eval_macro_f1"] <= 1.0
    png = (folder / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert summary["version"] in card and "baseline: TF-IDF + linear SVM" in card
    assert f"{metrics['macro_f1']:.4f}" in card and "(+1 extra examples)" in card
    info = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    assert info["split"]["extra_examples"] == 1 and info["split"]["extra_examples_skipped"] == 1
    # The Trainer ran with the flags given (its own, their short spellings) over the product's defaults.
    assert info["options"]["max_length"] == 64 and "learning_rate" not in info["options"]
    assert info["trainer_args"]["lr_scheduler_type"] == "cosine" and info["trainer_args"]["weight_decay"] == 0.02
    assert info["trainer_args"]["learning_rate"] == 5e-3 and info["trainer_args"]["seed"] == 1
    assert info["trainer_args"]["num_train_epochs"] == 3 and info["trainer_args"]["per_device_train_batch_size"] == 8
    assert info["trainer_args"]["per_device_eval_batch_size"] == 64  # the product's default, not the Trainer's 8
    assert info["trainer_args"]["output_dir"] == str(root / "runs" / summary["version"])
    assert info["hyperparameters"]["lr_scheduler_type"] == "cosine" and info["hyperparameters"]["warmup"] == 0
    # A save_pretrained folder with the nine slugs, the tokenizer, TensorBoard logs in the run folder.
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert [config["id2label"][str(i)] for i in range(9)] == list(SLUGS)
    assert (folder / "vocab.txt").is_file() and (folder / "model.safetensors").is_file()
    run = root / "runs" / summary["version"]
    assert list(run.rglob("events.out.tfevents*")) and not list(run.glob("checkpoint-*"))
    assert str(run) in cli_run["stderr"]  # it says where the run went
    assert not list(model_dir.glob(".staging-*"))
    # The split is on disk, in the data cache named by DATA_CACHE_DIR.
    assert len(read_split(root / "cache" / "split-seed42.jsonl")) == 180


def test_saved_bert_works_with_pipeline_and_like_serving(cli_run: dict[str, Any], archive: Path) -> None:
    from transformers import pipeline

    from newsmodel.loading import load_classifier

    folder = Path(cli_run["summary"]["path"])
    classify = pipeline("text-classification", model=str(folder), top_k=None)
    text = SAMPLES["sports-watch"][0]
    scores = {row["label"]: row["score"] for row in classify(text)[0]}
    served = load_classifier(folder, "v", device="cpu").predict([Article(title="", body=text)])[0]
    assert set(scores) == set(SLUGS)
    for slug in SLUGS:
        assert scores[slug] == pytest.approx(served.scores[slug], abs=1e-4)
    # Serving's predictions on the test split give the metrics training wrote (same tokenisation).
    root = cli_run["root"]
    measured = evaluate(
        DataOptions(data=str(archive), cache_dir=root / "cache"),
        RunOptions(model_dir=str(root / "models"), device="cpu"),
    )
    stored = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert measured["test_fingerprint"] == stored["test_fingerprint"]
    assert abs(measured["accuracy"] - stored["accuracy"]) <= 1 / 18 + 1e-9


def test_promotion_guard_force_tolerance_rollback_and_progress(archive: Path, tiny_model: Path, tmp_path: Path) -> None:
    linear = train(options_for(archive, tiny_model, tmp_path, model_type="linear"))
    assert linear.promoted and linear.metrics["accuracy"] >= 0.8
    model_dir = tmp_path / "models"

    updates: list[Progress] = []
    weak = options_for(archive, tiny_model, tmp_path, max_steps=1, baseline=False)
    refused = train(weak, updates.append)
    assert not refused.promoted
    assert refused.reason.startswith("not promoted") and linear.version in refused.reason
    assert refused.previous_version == linear.version
    assert refused.previous_metrics is not None
    assert registry.current_version(model_dir) == linear.version
    assert refused.path.is_dir() and refused.version in [v.version for v in registry.list_versions(model_dir)]
    phases = [u.phase for u in updates]
    assert phases[0] == "data" and phases[-1] == "done"
    assert {"tokenize", "train", "evaluate", "register"} <= set(phases)
    assert any(u.phase == "evaluate" and "eval_macro_f1" in u.metrics for u in updates)
    assert any(u.phase == "train" and u.total_steps == 1 for u in updates)

    def broken(update: Progress) -> None:
        raise RuntimeError("Slack is down")

    tolerated = train(
        options_for(archive, tiny_model, tmp_path, max_steps=1, baseline=False, promotion_tolerance=1.0), broken
    )
    assert tolerated.promoted and registry.current_version(model_dir) == tolerated.version
    assert registry.rollback(model_dir) == linear.version

    forced = train(options_for(archive, tiny_model, tmp_path, max_steps=1, baseline=False, force=True))
    assert forced.promoted and forced.reason.startswith("forced")
    assert registry.current_version(model_dir) == forced.version


def test_a_failed_training_changes_nothing(archive: Path, tiny_model: Path, tmp_path: Path) -> None:
    first = train(options_for(archive, tiny_model, tmp_path, model_type="linear"))
    before = [v.version for v in registry.list_versions(tmp_path / "models")]
    with pytest.raises(TrainingError):
        train(options_for(archive, tiny_model, tmp_path, base_model=str(tmp_path / "no-such-model")))
    assert registry.current_version(tmp_path / "models") == first.version
    assert [v.version for v in registry.list_versions(tmp_path / "models")] == before
    assert not list((tmp_path / "models").glob(".staging-*"))


def run_cli(*args: str, stdin: str = "") -> list[Any]:
    out = io.StringIO()
    assert main(list(args), stdin=io.StringIO(stdin), out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_prepare_predict_and_models_commands(archive: Path, tiny_model: Path, tmp_path: Path) -> None:
    common = ("--model-dir", str(tmp_path / "models"))
    [prepared] = run_cli("prepare", "--data", str(archive), "--cache-dir", str(tmp_path / "cache"))
    assert prepared["articles"] == 180 and prepared["per_class"] == dict.fromkeys(SLUGS, 20)
    assert prepared["split"] == {"train": 144, "validation": 18, "test": 18}

    first = train(options_for(archive, tiny_model, tmp_path, model_type="linear"))
    second = train(options_for(archive, tiny_model, tmp_path, model_type="linear", linear_c=0.5))
    texts = [SAMPLES["peachy"][2], SAMPLES["smax"][0], SAMPLES["kaden-channel"][1]]
    lines = [json.dumps({"text": texts[0]}, ensure_ascii=False), texts[1], json.dumps({"text": texts[2]})]
    results = run_cli("predict", *common, "--batch-size", "2", stdin="\n".join(lines) + "\n")
    assert [r["label"] for r in results] == ["peachy", "smax", "kaden-channel"]  # input order, across batches
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-6 and r["version"] == second.version for r in results)
    [older] = run_cli("predict", *common, "--model", first.version, stdin=texts[1])
    assert older["version"] == first.version and older["label"] == "smax"

    listed = run_cli("models", *common, "list", "--json")
    assert [(v["version"], v["model_type"], v["is_current"]) for v in listed] == [
        (first.version, "linear", False),
        (second.version, "linear", True),
    ]
    assert listed[0]["metrics"]["macro_f1"] == first.metrics["macro_f1"]
    assert run_cli("models", *common, "rollback") == [{"current": first.version}]
    assert run_cli("models", *common, "promote", second.version) == [{"current": second.version}]
    out = io.StringIO()
    assert main(["models", *common, "promote", "20990101-000000-ffffff"], out=out) == 1


def test_module_runs_as_a_program_with_help() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "training", "train", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for option in ("--data", "--base-model", "--model-type", "--max-length", "--force", "--extra-examples"):
        assert option in proc.stdout
    # The Trainer's own ~100 flags are accepted but not listed: the epilog names the main ones, their short
    # spellings and the product's defaults for them.
    assert "--lr_scheduler_type LR_SCHEDULER_TYPE" not in proc.stdout and "--push_to_hub" not in proc.stdout
    text = " ".join(proc.stdout.split())
    assert "transformers.TrainingArguments taken as they are" in text
    for option in ("--epochs for --num_train_epochs", "--batch-size for --per_device_train_batch_size", "--seed"):
        assert option in text
    assert "--num_train_epochs 4.0 --per_device_train_batch_size 16" in text and "--learning_rate 3e-05" in text


def test_tokenisation_is_cached_by_tokenizer_length_and_texts(tiny_model: Path, tmp_path: Path) -> None:
    from training.bert import load_tokenizer, tokenize
    from training.corpus import CorpusArticle

    tokenizer = load_tokenizer(str(tiny_model))
    articles = [
        CorpusArticle(id=f"{slug}-{i}", slug=slug, url="", date="", title=text[:10], body=text)
        for slug, texts in SAMPLES.items()
        for i, text in enumerate(texts)
    ]
    first = tokenize(articles, tokenizer, 32, tmp_path)
    again = tokenize(articles, tokenizer, 32, tmp_path)
    assert len(list(tmp_path.glob("tokenized-*.arrow"))) == 1
    assert again["input_ids"] == first["input_ids"] and again["labels"] == [SLUGS.index(a.slug) for a in articles]
    assert first["length"] == [len(ids) for ids in first["input_ids"]]
    tokenize(articles, tokenizer, 16, tmp_path)
    tokenize(articles[:-1], tokenizer, 32, tmp_path)
    assert len(list(tmp_path.glob("tokenized-*.arrow"))) == 3


def test_options_take_the_deployment_settings_then_overrides(tmp_path: Path) -> None:
    from common.settings import Settings
    from training.api import options_from_settings

    settings = Settings(
        train_data="/data/ldcc.tar.gz",
        base_model="org/model",
        model_dir=tmp_path / "m",
        data_cache_dir=tmp_path / "c",
        train_run_dir=tmp_path / "r",
        promotion_tolerance=0.01,
    )
    options = options_from_settings(settings, model_type="linear", num_train_epochs=None, force=True)
    assert (options.data.data, options.bert.base_model, options.run.model_dir) == (
        "/data/ldcc.tar.gz",
        "org/model",
        str(tmp_path / "m"),
    )
    assert (options.data.cache_dir, options.run_root, options.run.promotion_tolerance) == (
        tmp_path / "c",
        tmp_path / "r",
        0.01,
    )
    assert (options.run.model_type, options.trainer.num_train_epochs, options.run.force) == ("linear", 4.0, True)
    assert options.data.split_path == tmp_path / "c" / "split-seed42.jsonl"
    with pytest.raises(TypeError, match="epochs"):
        options_from_settings(settings, epochs=2)


def test_the_product_defaults_of_the_trainer_are_its_tuned_values() -> None:
    from transformers import TrainingArguments

    from training.options import BertOptions, LinearOptions, trainer_field_names

    args = train_options().trainer
    tuned = {
        "num_train_epochs": 4.0,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "learning_rate": 3e-5,
        "weight_decay": 0.01,
        "warmup_steps": 0.1,
        "seed": 42,
        "gradient_accumulation_steps": 1,
        "max_steps": -1,
        "load_best_model_at_end": True,
        "metric_for_best_model": "macro_f1",
        "output_dir": "runs",
    }
    assert {name: getattr(args, name) for name in tuned} == tuned
    assert isinstance(args, TrainingArguments) and args.report_to == ["tensorboard"]
    assert (BertOptions().max_length, LinearOptions().linear_c) == (512, 1.0)
    # Ours and the Trainer's never name the same option: each flag has one owner.
    from dataclasses import fields

    from training.options import OUR_OPTIONS

    ours = [f.name for cls in OUR_OPTIONS for f in fields(cls)]
    assert len(ours) == len(set(ours)) and not set(ours) & trainer_field_names()
    assert isinstance(train_options(model_type="linear"), TrainOptions)


def test_cpu_passes_group_articles_of_about_the_same_length_only(tiny_model: Path) -> None:
    from newsmodel.bert import BertClassifier, length_chunks

    # 512-token articles go together (no padding); a 100-token one is never padded to 512.
    assert length_chunks([512, 100, 512, 512, 90], 32) == [[4, 1], [0, 2, 3]]
    assert length_chunks([512] * 5, 2) == [[0, 1], [2, 3], [4]]
    assert length_chunks([], 8) == []

    classifier = BertClassifier(tiny_model, device="cpu", batch_size=32)
    sentences = [s for texts in SAMPLES.values() for s in texts]
    articles = [Article(title=f"t{i}", body="".join(sentences[: 1 + i * 3])) for i in range(8)]
    together = classifier.predict(articles)
    assert classifier.forward_passes > 1  # lengths differ: not all padded to the longest
    alone = [classifier.predict([a])[0] for a in articles]
    for a, b in zip(together, alone, strict=True):
        assert a.slug == b.slug
        assert all(abs(a.scores[k] - b.scores[k]) < 1e-4 for k in SLUGS)
