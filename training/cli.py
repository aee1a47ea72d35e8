"""python -m training: prepare, train, evaluate, predict and manage models (a thin layer over training.api), and
export the feedback given in Slack as a dataset (``feedback export``).

Settings (MODEL_DIR, TRAIN_DATA, LABELS_FILE, BASE_MODEL, DATA_CACHE_DIR, PROMOTION_TOLERANCE) give the defaults;
options given on the command line win. Logs go to standard error; results to standard output (JSON, except the
table of `models list`, which takes --json for scripts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import UTC
from pathlib import Path
from typing import IO, Any

from common.articles import Article, article_from_text
from common.exceptions import NewsbotError
from common.settings import load_settings
from newsmodel import registry, store
from training.options import TrainOptions, options_from_settings

log = logging.getLogger(__name__)

PREDICT_BATCH = 32
TRAINER_FLAGS_EPILOG = (
    "Any other transformers.TrainingArguments flag is accepted too and passed to the Trainer as given "
    "(e.g. --lr_scheduler_type cosine, --label_smoothing_factor 0.1, --optim adafactor); "
    "see https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"
)


def _train_parser() -> argparse.ArgumentParser:
    """The ``train`` options: ours (TrainOptions) and every other ``transformers.TrainingArguments`` flag, as
    transformers' example scripts take them. Where both define a flag (``--learning_rate``, ``--seed`` …) ours is
    kept. Only the flags given land in the parsed namespace: the deployment's settings give the rest."""
    from transformers import HfArgumentParser, TrainingArguments
    from transformers.hf_argparser import DataClassType

    parser = HfArgumentParser(
        [DataClassType(TrainingArguments), DataClassType(TrainOptions)],
        add_help=False,
        allow_abbrev=False,
        conflict_handler="resolve",  # TrainOptions comes last: its definition of a shared flag wins
    )
    ours = {f.name for f in fields(TrainOptions)}
    for action in parser._actions:  # no defaults: an option not given stays out of the namespace
        action.default = argparse.SUPPRESS
        if action.dest not in ours:  # accepted, but --help lists ours only (the epilog names the rest)
            action.help = argparse.SUPPRESS
    spec = next(f for f in fields(TrainOptions) if f.name == "labels_file")
    help_text = spec.metadata["help"]
    parser.add_argument("--labels", dest="labels_file", type=Path, default=argparse.SUPPRESS, help=help_text)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    # --help of each subcommand lists the TrainOptions fields it uses, with their help text.
    prepare = commands.add_parser("prepare", help="Read the corpus and write the fixed 8:1:1 split (JSONL of ids).")
    commands.add_parser(
        "train",
        help="Train, evaluate and register a new version (also takes any transformers.TrainingArguments flag).",
        parents=[_train_parser()],
        allow_abbrev=False,
        epilog=TRAINER_FLAGS_EPILOG,
    )
    evaluate = commands.add_parser("evaluate", help="Test-split metrics of a version (default: the current one).")
    commands.add_parser("bootstrap", help="Train and promote the linear model if MODEL_DIR has no current version.")
    predict = commands.add_parser("predict", help="Classify stdin lines (JSON with 'text', or plain text).")
    for sub in (prepare, evaluate):
        for name in (
            "data",
            "labels_file",
            "data_encoding",
            "split_seed",
            "split_file",
            "keep_leaks",
            "cache_dir",
            "model_dir",
            "device",
        ):
            _add_option(sub, name)
    for sub in (evaluate, predict):
        sub.add_argument("--model", default=None, help="A model folder or a version in MODEL_DIR (default: current).")
    for name in ("model_dir", "device"):
        _add_option(predict, name)
    predict.add_argument("--batch-size", type=int, default=PREDICT_BATCH, help="Articles per model call.")
    models = commands.add_parser("models", help="List, promote or roll back registry versions.")
    _add_option(models, "model_dir")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="Every version, oldest first, with its test metrics (a table).")
    listing.add_argument("--json", action="store_true", help="Print one JSON object per version instead.")
    promote = actions.add_parser("promote", help="Make VERSION current.")
    promote.add_argument("version")
    rollback = actions.add_parser("rollback", help="Make VERSION (default: the previously current one) current.")
    rollback.add_argument("version", nargs="?", default=None)
    feedback = commands.add_parser("feedback", help="The feedback people gave in Slack (reads REDIS_URL).")
    feedback_actions = feedback.add_subparsers(dest="action", required=True)
    export = feedback_actions.add_parser(
        "export",
        help="Write every answered classification (corrections and confirmations) as JSON Lines in the dataset "
        "format (title, text, label) that --data reads.",
    )
    export.add_argument("--out", type=Path, default=None, help="The file to write (default: standard output).")
    return parser


def _add_option(parser: argparse.ArgumentParser, name: str) -> None:
    spec = next(f for f in fields(TrainOptions) if f.name == name)
    flag = "--" + name.replace("_", "-")
    if name == "keep_leaks":
        parser.add_argument(flag, action="store_true", default=None, help=spec.metadata["help"])
        return
    kinds = {"split_seed": int, "split_file": Path, "cache_dir": Path, "labels_file": Path}
    kind: Any = kinds.get(name, str)
    flags = ("--labels", flag) if name == "labels_file" else (flag,)
    parser.add_argument(*flags, dest=name, type=kind, default=None, help=spec.metadata["help"])


# Parsed arguments that are not training options.
_NOT_OPTIONS = ("command", "action", "model", "version", "json")


def _options(args: argparse.Namespace) -> TrainOptions:
    """Settings' defaults, overridden by the options given on the command line (an option not given is absent
    from ``args``, or None); the TrainingArguments flags given that are not ours go to ``trainer_args``."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    if args.command == "predict":
        given.pop("batch_size")  # articles per model call, not a training option
    names = {f.name for f in fields(TrainOptions)}
    overrides = {k: v for k, v in given.items() if k in names}
    trainer_args = {k: v for k, v in given.items() if k not in names}
    return options_from_settings(load_settings(), **overrides, trainer_args=trainer_args or None)


def _print(data: Any, out: IO[str]) -> None:
    out.write(json.dumps(data, ensure_ascii=False) + "\n")
    out.flush()


def _batches(lines: Iterator[str], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for line in lines:
        text = line.rstrip("\n")
        if text.lstrip().startswith("{"):
            try:
                row = json.loads(text)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and isinstance(row.get("text"), str):
                text = row["text"]
        batch.append(article_from_text(text))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_prepare(options: TrainOptions, out: IO[str]) -> None:
    from training.api import prepare_data

    data, split = prepare_data(options)
    articles = data.articles
    per_split = {name: dict(Counter(a.slug for a in split.of(name))) for name in ("train", "validation", "test")}
    counts = Counter(a.slug for a in articles)
    _print(
        {
            "articles": len(articles),
            "kind": data.kind,
            "labels": data.labels.to_dict(),
            "per_class": {label: counts[label] for label in data.labels},
            "duplicates_skipped": data.duplicates,
            "conflicting_duplicates": data.conflicting,
            "split_file": str(options.split_path),
            "split": {name: sum(counts.values()) for name, counts in per_split.items()},
            "test_fingerprint": split.test_fingerprint,
            "strip_leaks": not options.keep_leaks,
        },
        out,
    )


def cmd_train(options: TrainOptions, out: IO[str]) -> None:
    from training.api import train

    log.info("training %s from %s into %s (runs in %s)", options.model_type, options.data, options.model_dir,
             options.run_dir)  # fmt: skip
    # The Trainer prints its log dicts on stdout: keep stdout for the result, so its last line is the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = train(options)
    log.info("model: %s; metrics: %s; confusion matrix: %s", outcome.path, outcome.path / "metrics.json",
             outcome.confusion_png)  # fmt: skip
    if options.model_type == "bert":
        log.info("run folder (TensorBoard logs): %s", options.run_dir / outcome.version)
    log.info("%s", outcome.reason)
    _print(outcome.summary(), out)


def cmd_predict(args: argparse.Namespace, options: TrainOptions, stdin: IO[str], out: IO[str]) -> None:
    from newsmodel.loading import load_classifier
    from training.api import resolve_model

    path, version = resolve_model(options.model_dir, args.model)
    classifier = load_classifier(path, version, device=options.device)
    for batch in _batches(iter(stdin), max(1, args.batch_size)):
        for prediction in classifier.predict(batch):
            _print({"label": prediction.label, "scores": prediction.scores, "version": version}, out)


def _metric(metrics: dict[str, Any] | None, name: str) -> str:
    value = (metrics or {}).get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def versions_table(versions: Sequence[registry.VersionInfo]) -> str:
    """The versions as a table for people: the current one marked with ``*``."""
    header = ("", "VERSION", "TYPE", "CREATED (UTC)", "TEST ACC", "MACRO-F1", "LABELS")
    rows = [
        (
            "*" if info.is_current else "",
            info.version,
            info.model_type,
            info.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            _metric(info.metrics, "accuracy"),
            _metric(info.metrics, "macro_f1"),
            "-" if info.label_count is None else str(info.label_count),
        )
        for info in versions
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in
             (header, *rows)]  # fmt: skip
    if not rows:
        lines.append("(no versions yet)")
    elif any(info.is_current for info in versions):
        lines.append("* current")
    return "\n".join(lines) + "\n"


def cmd_models(args: argparse.Namespace, options: TrainOptions, out: IO[str]) -> None:
    if args.action == "list":
        versions = registry.list_versions(options.model_dir)
        if args.json:
            for info in versions:
                _print(info.to_dict(), out)
        else:
            out.write(versions_table(versions))
            out.flush()
    elif args.action == "promote":
        registry.promote(options.model_dir, args.version)
        _print({"current": args.version}, out)
    else:
        _print({"current": registry.rollback(options.model_dir, args.version)}, out)


def cmd_feedback(args: argparse.Namespace, out: IO[str]) -> None:
    from training.feedback import export_feedback  # the one subcommand that talks to Redis

    summary = export_feedback(load_settings(), out, args.out)
    if args.out is None:
        log.info("feedback exported: %s", summary.to_dict())
    else:
        _print(summary.to_dict(), out)


def main(argv: Sequence[str] | None = None, stdin: IO[str] | None = None, out: IO[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stdin, out = stdin or sys.stdin, out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "feedback":
            cmd_feedback(args, out)
            return 0
        store.configure(settings.model_store_endpoint_url, settings.model_cache_dir, settings.model_cache_keep)
        options = _options(args)
        if args.command == "prepare":
            cmd_prepare(options, out)
        elif args.command == "train":
            cmd_train(options, out)
        elif args.command == "evaluate":
            from training.api import evaluate

            _print(evaluate(options, args.model), out)
        elif args.command == "bootstrap":
            from training.bootstrap import bootstrap

            _print(bootstrap(load_settings()), out)
        elif args.command == "predict":
            cmd_predict(args, options, stdin, out)
        else:
            cmd_models(args, options, out)
    except NewsbotError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
