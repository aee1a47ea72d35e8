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
from transformers.trainer_utils import IntervalStrategy

from common.articles import Article
from common.labels import SLUGS, LabelSet
from newsmodel.encoding import MAX_TITLE_CHARS, encode_article
from training.corpus import CorpusArticle
from training.fit import Clock, Fit, TrainingData
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


def run_arguments(args: TrainingArguments, run_dir: Path, train_size: int, device: str | None) -> TrainingArguments:
    """The Trainer's arguments for one run: ``args`` (taken as given) with what depends on the run.

    Its checkpoints and logs go into ``run_dir`` (``<output_dir>/<version>``); it logs at least every quarter
    epoch; a run shorter than an epoch (``max_steps``) evaluates and checkpoints once, at its end, where ``args``
    say each epoch; ``device="cpu"`` keeps it on the CPU.
    """
    steps_per_epoch = max(
        1, math.ceil(train_size / (args.per_device_train_batch_size * args.gradient_accumulation_steps))
    )
    changes: dict[str, Any] = {"output_dir": str(run_dir)}
    if args.logging_steps >= 1:
        changes["logging_steps"] = max(1, min(int(args.logging_steps), steps_per_epoch // 4))
    if 0 < args.max_steps < steps_per_epoch and args.eval_strategy == IntervalStrategy.EPOCH:
        changes.update(
            eval_strategy="steps", save_strategy="steps", eval_steps=args.max_steps, save_steps=args.max_steps
        )
    if device == "cpu":
        changes["use_cpu"] = True
    return replace(args, **changes)


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
        "base_model": options.bert.base_model,
        "max_length": options.bert.max_length,
        "epochs": args.num_train_epochs,
        "max_steps": args.max_steps,
        "batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "weight_decay": args.weight_decay,
        "warmup": args.warmup_steps,
        "seed": args.seed,
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
    """Fine-tune ``options.bert.base_model`` on ``train`` with a new classification head for ``labels`` (its
    ``id2label``), keep the best epoch on ``validation``, save it to ``out_dir`` and predict ``test``."""
    started = time.monotonic()
    base_model = options.bert.base_model
    tokenizer = load_tokenizer(base_model)
    report(Progress("tokenize", 0, 0, None, 0.0, None, {}, "tokenising the articles"))
    cache = options.data.cache_dir / "tokenized"
    datasets = {
        name: tokenize(part, tokenizer, options.bert.max_length, cache, labels.labels)
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model,
        num_labels=len(labels),
        id2label=labels.id2label(),
        label2id=labels.label2id(),
        ignore_mismatched_sizes=True,
    )
    trainer = Trainer(
        model=model,
        args=run_arguments(options.trainer, run_dir, len(train), options.run.device),
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
        base_model=base_model,
        best_validation=best,
        run_dir=run_dir,
        trainer_args=json.loads(trainer.args.to_json_string()),  # type: ignore[no-untyped-call]
        seconds=time.monotonic() - started,
    )


def fit_bert_model(options: TrainOptions, data: TrainingData, out_dir: Path, run_dir: Path, clock: Clock) -> Fit:
    """The bert kind's fitting step: fine-tune on the train split, keep the best epoch, save it to ``out_dir``,
    predict the test split; checkpoints and TensorBoard logs in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    clock.phase("tokenize", f"loading {options.bert.base_model}; run folder {run_dir}")
    split = data.split
    return fine_tune(
        options,
        data.labels,
        data.train_set,
        split.validation,
        split.test,
        run_dir=run_dir,
        out_dir=out_dir,
        report=clock.report,
    )
