"""Fine-tuning a (Japanese) BERT for the data's categories with the Hugging Face Trainer.

Articles are tokenised exactly as serving does (:func:`newsmodel.encoding.encode_article`: title and body as a
sentence pair, only the body truncated), once, with ``datasets.map`` (batched, cached on disk by a key of the
tokenizer, the length and the texts). Batches are padded dynamically and grouped by length. Evaluation runs each
epoch; the checkpoint with the best validation macro-F1 is kept; TensorBoard logs go into the run folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from common.articles import Article
from common.labels import SLUGS, LabelSet
from newsmodel.encoding import MAX_TITLE_CHARS, encode_article
from training.corpus import CorpusArticle
from training.fit import Fit
from training.options import TrainOptions
from training.progress import Progress

log = logging.getLogger(__name__)


def load_tokenizer(name_or_dir: str) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(name_or_dir)
    return tokenizer


def _cache_key(
    tokenizer: PreTrainedTokenizerBase, articles: Sequence[CorpusArticle], max_length: int, labels: Sequence[str]
) -> str:
    digest = hashlib.sha256()
    vocab = tokenizer.get_vocab()
    digest.update(f"{type(tokenizer).__name__}|{len(vocab)}|{max_length}|{MAX_TITLE_CHARS}|".encode())
    digest.update(json.dumps(list(labels), ensure_ascii=False).encode("utf-8"))
    digest.update(hashlib.sha256("\n".join(sorted(vocab)).encode("utf-8")).digest())
    for article in articles:
        digest.update(f"{article.id}\x00{article.slug}\x00{article.title}\x00{article.body}\x01".encode())
    return digest.hexdigest()[:24]


def tokenize(
    articles: Sequence[CorpusArticle],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: Path | None = None,
    labels: Sequence[str] = SLUGS,
) -> Any:
    """A ``datasets.Dataset`` with input_ids/attention_mask/token_type_ids, ``labels`` (the label ids in
    ``labels``' order) and ``length``.

    With ``cache_dir``, the result is kept in an Arrow file named by a digest of the tokenizer, the length,
    the labels and the articles, and reused by the next run with the same inputs.
    """
    from datasets import Dataset

    order = list(labels)
    table = Dataset.from_dict(
        {
            "title": [a.title for a in articles],
            "body": [a.body for a in articles],
            "labels": [order.index(a.slug) for a in articles],
        }
    )

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for title, body in zip(batch["title"], batch["body"], strict=True):
            for key, value in encode_article(tokenizer, Article(title=title, body=body), max_length).items():
                out.setdefault(key, []).append(value)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    key = _cache_key(tokenizer, articles, max_length, order)
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = str(cache_dir / f"tokenized-{key}.arrow")
    return table.map(
        encode,
        batched=True,
        batch_size=256,
        remove_columns=["title", "body"],
        cache_file_name=cache_file,
        load_from_cache_file=cache_file is not None,
        new_fingerprint=key,  # our own key: the closure over the tokenizer cannot be hashed by datasets
        desc="tokenize",
    )


def metrics_for(count: int) -> Callable[[EvalPrediction], dict[str, float]]:
    """The Trainer's validation metrics (accuracy, macro-F1 over all ``count`` labels)."""

    def metrics(prediction: EvalPrediction) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.asarray(logits).argmax(axis=-1)
        truth = np.asarray(prediction.label_ids)
        return {
            "accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro", labels=list(range(count)), zero_division=0)),
        }

    return metrics


class ProgressCallback(TrainerCallback):
    """Reports the Trainer's steps and evaluations to a :class:`Progress` callback (errors in it are logged)."""

    def __init__(self, report: Callable[[Progress], None]) -> None:
        self.report = report
        self.started = time.monotonic()
        self.metrics: dict[str, float] = {}

    def _send(self, phase: str, state: TrainerState, message: str = "") -> None:
        elapsed = time.monotonic() - self.started
        step, total = state.global_step, state.max_steps
        eta = elapsed / step * (total - step) if step and total else None
        self.report(
            Progress(
                phase=phase,
                step=step,
                total_steps=total,
                epoch=state.epoch,
                elapsed_s=elapsed,
                eta_s=eta,
                metrics=dict(self.metrics),
                message=message,
            )
        )

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.started = time.monotonic()
        self._send("train", state, "training started")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._send("train", state)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        metrics = kwargs.get("metrics") or {}
        self.metrics = {k: float(v) for k, v in metrics.items() if k.startswith("eval_") and isinstance(v, int | float)}
        self._send("evaluate", state, "validation: " + ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items()))


def mixed_precision() -> tuple[bool, bool]:
    """(bf16, fp16): bf16 on a GPU that supports it, else fp16 on a GPU, else full precision."""
    if not torch.cuda.is_available():
        return False, False
    bf16 = torch.cuda.is_bf16_supported()
    return bf16, not bf16


def training_arguments(options: TrainOptions, run_dir: Path, train_size: int) -> TrainingArguments:
    """The Trainer's arguments from ``options``, then ``options.trainer_args`` over them."""
    steps_per_epoch = max(1, math.ceil(train_size / (options.batch_size * options.gradient_accumulation_steps)))
    # Evaluate (and checkpoint) each epoch; a run shorter than an epoch evaluates once, at its end.
    short = 0 < options.max_steps < steps_per_epoch
    strategy = "steps" if short else "epoch"
    every = options.max_steps if short else 500
    bf16, fp16 = mixed_precision()
    ours: dict[str, Any] = {
        "output_dir": str(run_dir),
        "num_train_epochs": options.epochs,
        "max_steps": options.max_steps,
        "per_device_train_batch_size": options.batch_size,
        "per_device_eval_batch_size": options.eval_batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "learning_rate": options.learning_rate,
        "weight_decay": options.weight_decay,
        "warmup_steps": options.warmup,
        "lr_scheduler_type": "linear",
        "seed": options.seed,
        "eval_strategy": strategy,
        "save_strategy": strategy,
        "eval_steps": every,
        "save_steps": every,
        "logging_strategy": "steps",
        "logging_steps": max(1, min(50, steps_per_epoch // 4)),
        "load_best_model_at_end": True,
        "metric_for_best_model": "macro_f1",
        "greater_is_better": True,
        "save_total_limit": 1,
        "save_only_model": True,
        "train_sampling_strategy": "group_by_length",
        "length_column_name": "length",
        "report_to": ["tensorboard"],
        "dataloader_num_workers": 0,
        "use_cpu": options.device == "cpu",
        "disable_tqdm": False,
        "bf16": bf16,
        "fp16": fp16,
    }
    return TrainingArguments(**{**ours, **options.trainer_args})


def _predict_in_order(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Any,
    articles: Sequence[CorpusArticle],
    labels: LabelSet,
) -> list[str]:
    """The labels predicted for ``dataset`` (the tokenised ``articles``), in the articles' order."""
    # The Trainer groups evaluation batches by length too (a shuffled order): predict the split in order.
    in_order = Trainer(
        model=trainer.model,
        args=replace(
            trainer.args,
            train_sampling_strategy="sequential",
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            report_to=[],
            disable_tqdm=True,
        ),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    output = in_order.predict(dataset)
    if list(np.asarray(output.label_ids).tolist()) != [labels.index(a.slug) for a in articles]:
        raise RuntimeError("test predictions came back in another order than the test articles")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return [labels.labels[i] for i in np.asarray(logits).argmax(axis=-1).tolist()]


def _hyperparameters(options: TrainOptions, args: TrainingArguments, train_loss: float) -> dict[str, Any]:
    return {
        "base_model": options.base_model,
        "epochs": options.epochs,
        "max_steps": options.max_steps,
        "batch_size": options.batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "learning_rate": options.learning_rate,
        "weight_decay": options.weight_decay,
        "warmup": options.warmup,
        "max_length": options.max_length,
        "seed": options.seed,
        **{f"trainer.{key}": value for key, value in sorted(options.trainer_args.items())},
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        "devices": max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1,
        "train_loss": train_loss,
    }


def fine_tune(
    options: TrainOptions,
    labels: LabelSet,
    train: Sequence[CorpusArticle],
    validation: Sequence[CorpusArticle],
    test: Sequence[CorpusArticle],
    *,
    run_dir: Path,
    out_dir: Path,
    report: Callable[[Progress], None],
) -> Fit:
    """Fine-tune ``options.base_model`` on ``train`` with a new classification head for ``labels`` (its
    ``id2label``), keep the best epoch on ``validation``, save it to ``out_dir`` and predict ``test``."""
    started = time.monotonic()
    tokenizer = load_tokenizer(options.base_model)
    report(Progress("tokenize", 0, 0, None, 0.0, None, {}, "tokenising the articles"))
    cache = options.cache_dir / "tokenized"
    datasets = {
        name: tokenize(part, tokenizer, options.max_length, cache, labels.labels)
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }
    model = AutoModelForSequenceClassification.from_pretrained(
        options.base_model,
        num_labels=len(labels),
        id2label=labels.id2label(),
        label2id=labels.label2id(),
        ignore_mismatched_sizes=True,
    )
    trainer = Trainer(
        model=model,
        args=training_arguments(options, run_dir, len(train)),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_for(len(labels)),
        callbacks=[ProgressCallback(report)],
    )
    result = trainer.train()
    best = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, int | float)}
    report(Progress("evaluate", trainer.state.global_step, trainer.state.max_steps, trainer.state.epoch,
                    0.0, None, best, "evaluating on the test split"))  # fmt: skip
    predicted = _predict_in_order(trainer, tokenizer, datasets["test"], test, labels)
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    for checkpoint in run_dir.glob("checkpoint-*"):  # the best one is now in out_dir; the run keeps its logs
        shutil.rmtree(checkpoint, ignore_errors=True)
    return Fit(
        test_predictions=predicted,
        hyperparameters=_hyperparameters(options, trainer.args, float(result.training_loss)),
        base_model=options.base_model,
        best_validation=best,
        run_dir=run_dir,
        trainer_args=json.loads(trainer.args.to_json_string()),  # type: ignore[no-untyped-call]
        seconds=time.monotonic() - started,
    )
