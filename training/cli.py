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
from typing import IO, TYPE_CHECKING, Any

from common.articles import Article, article_from_text
from common.exceptions import NewsbotError
from common.settings import Settings, load_settings
from newsmodel import registry, store
from training.options import (
    OUR_OPTIONS,
    TRAINER_FLAG_ALIASES,
    TRAINER_HYPERPARAMETERS,
    BertOptions,
    DataOptions,
    LinearOptions,
    RunOptions,
    TrainOptions,
    deployment_defaults,
    options_of,
    trainer_defaults,
)

if TYPE_CHECKING:
    from transformers import HfArgumentParser, TrainingArguments

log = logging.getLogger(__name__)

PREDICT_BATCH = 32


def _trainer_epilog() -> str:
    defaults = " ".join(f"--{name} {value}" for name, value in TRAINER_HYPERPARAMETERS.items())
    aliases = ", ".join(f"{alias} for --{name}" for alias, (name, _) in TRAINER_FLAG_ALIASES.items())
    return (
        "The Trainer's own options are its flags, transformers.TrainingArguments taken as they are "
        "(e.g. --num_train_epochs 2, --per_device_train_batch_size 8, --learning_rate 5e-5, --seed 1, --max_steps 100, "
        "--lr_scheduler_type cosine, --optim adafactor); see "
        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments . "
        f"Also {aliases}. --output_dir is the runs folder (TRAIN_RUN_DIR, default runs): each run's checkpoints and "
        f"TensorBoard logs go into <output_dir>/<version>. The product's tuned defaults: {defaults} (all its defaults: "
        "training.options.TRAINER_DEFAULTS)."
    )


def _train_options_parser(settings: Settings | None) -> HfArgumentParser:
    """The ``train`` options of ours (one dataclass per concern), their defaults the deployment's settings."""
    from transformers import HfArgumentParser
    from transformers.hf_argparser import DataClassType

    parser = HfArgumentParser([DataClassType(cls) for cls in OUR_OPTIONS], add_help=False, allow_abbrev=False)
    if settings is not None:
        ours = {f.name for cls in OUR_OPTIONS for f in fields(cls)}
        parser.set_defaults(**{k: v for k, v in deployment_defaults(settings).items() if k in ours})
    return parser


def _trainer_parser(settings: Settings | None) -> HfArgumentParser:
    """The Trainer's own flags (``transformers.TrainingArguments``), with the product's defaults and short aliases."""
    from transformers import HfArgumentParser, TrainingArguments
    from transformers.hf_argparser import DataClassType

    parser = HfArgumentParser(DataClassType(TrainingArguments), prog="python -m training train", allow_abbrev=False)
    runs = {} if settings is None else {"output_dir": deployment_defaults(settings)["output_dir"]}
    parser.set_defaults(**{**trainer_defaults(), **runs})
    for alias, (name, kind) in TRAINER_FLAG_ALIASES.items():
        parser.add_argument(alias, dest=name, type=kind, default=argparse.SUPPRESS, help=f"--{name}")
    return parser


def trainer_args_from(argv: Sequence[str], settings: Settings | None = None) -> TrainingArguments:
    """The Trainer's arguments from its flags in ``argv`` (what ``train`` left), over the product's defaults."""
    from transformers import TrainingArguments

    return TrainingArguments(**vars(_trainer_parser(settings).parse_args(list(argv))))


def _parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; ``train``'s defaults are ``settings``' when given. ``train`` leaves the Trainer's own
    flags to :func:`trainer_args_from` (parse with ``parse_known_args``)."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    # --help of each subcommand lists the options it uses, with their help text.
    prepare = commands.add_parser("prepare", help="Read the corpus and write the fixed 8:1:1 split (JSONL of ids).")
    commands.add_parser(
        "train",
        help="Train, evaluate and register a new version (also takes any transformers.TrainingArguments flag).",
        parents=[_train_options_parser(settings)],
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=_trainer_epilog(),
    )
    openset = commands.add_parser(
        "openset",
        help="Open-set evaluation: train with each label left out in turn, judge the whole test split as the bot "
        "would, and report per label left out the share of its articles called unsure, the coverage of the others "
        "and the precision when sure (takes train's options; nothing is registered).",
        parents=[_train_options_parser(settings)],
        allow_abbrev=False,
    )
    openset.add_argument(
        "--hold-out", action="append", default=None, help="A label to leave out (repeatable; default: each in turn)."
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
    """One of our options for a subcommand other than ``train``; not given, it stays None (the settings' default)."""
    spec = next(f for cls in OUR_OPTIONS for f in fields(cls) if f.name == name)
    flag = "--" + name.replace("_", "-")
    if name == "keep_leaks":
        parser.add_argument(flag, action="store_true", default=None, help=spec.metadata["help"])
        return
    kinds = {"split_seed": int, "split_file": Path, "cache_dir": Path, "labels_file": Path}
    kind: Any = kinds.get(name, str)
    flags = ("--labels", flag) if name == "labels_file" else (flag,)
    parser.add_argument(*flags, dest=name, type=kind, default=None, help=spec.metadata["help"])


def _given(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The deployment's defaults, overridden by the options given on the command line (not None)."""
    return {**deployment_defaults(settings), **{k: v for k, v in vars(args).items() if v is not None}}


def _rounded(data: Any) -> Any:
    """``data`` with its floats rounded to 4 places (a report for people)."""
    if isinstance(data, float):
        return round(data, 4)
    if isinstance(data, dict):
        return {k: _rounded(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_rounded(v) for v in data]
    return data


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


def cmd_prepare(options: DataOptions, out: IO[str]) -> None:
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

    log.info("training %s from %s into %s (runs in %s)", options.run.model_type, options.data.data,
             options.run.model_dir, options.run_root)  # fmt: skip
    # The Trainer prints its log dicts on stdout: keep stdout for the result, so its last line is the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = train(options)
    log.info("model: %s; metrics: %s; confusion matrix: %s", outcome.path, outcome.path / "metrics.json",
             outcome.confusion_png)  # fmt: skip
    run_folder = options.run_root / outcome.version
    if run_folder.is_dir():  # a kind that keeps checkpoints and logs (bert)
        log.info("run folder (TensorBoard logs): %s", run_folder)
    log.info("%s", outcome.reason)
    _print(outcome.summary(), out)


def cmd_predict(
    args: argparse.Namespace, options: RunOptions, stdin: IO[str], out: IO[str], threshold: float | None = None
) -> None:
    """One JSON line per input row: the served answer, exactly as the bot decides it (calibrated scores, and
    ``unsure`` by the model's rule or by ``threshold``, CONFIDENCE_THRESHOLD when set:
    :func:`newsmodel.confidence.judge`)."""
    from newsmodel.confidence import judge, read_confidence
    from newsmodel.loading import load_classifier
    from training.api import resolve_model

    path, version = resolve_model(options.model_dir, args.model)
    classifier = load_classifier(path, version, device=options.device)
    confidence = read_confidence(path).with_override(threshold)
    for batch in _batches(iter(stdin), max(1, args.batch_size)):
        for prediction in judge(classifier.predict(batch), confidence):
            row = {
                "label": prediction.label,
                "confidence": prediction.confidence,
                "unsure": prediction.unsure,
                "threshold": prediction.threshold,
                "rule": confidence.rule.source,
                "calibrated": confidence.calibrated,
                "scores": prediction.scores,
                "version": version,
            }
            _print(row, out)


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


def cmd_models(args: argparse.Namespace, options: RunOptions, out: IO[str]) -> None:
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
    try:
        settings = load_settings()
    except NewsbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    parser = _parser(settings)
    args, rest = parser.parse_known_args(argv)
    trainer = trainer_args_from(rest, settings) if args.command in ("train", "openset") else None
    if rest and trainer is None:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "feedback":
            cmd_feedback(args, out)
            return 0
        store.configure(settings.model_store_endpoint_url, settings.model_cache_dir, settings.model_cache_keep)
        values = _given(args, settings)
        data, run = options_of(DataOptions, values), options_of(RunOptions, values)
        if trainer is not None:
            bert, linear = options_of(BertOptions, values), options_of(LinearOptions, values)
            options = TrainOptions(trainer=trainer, data=data, run=run, bert=bert, linear=linear)
            if args.command == "openset":
                from training.openset import open_set

                with contextlib.redirect_stdout(sys.stderr):
                    _print(_rounded(open_set(options, args.hold_out)), out)
            else:
                cmd_train(options, out)
        elif args.command == "prepare":
            cmd_prepare(data, out)
        elif args.command == "evaluate":
            from training.api import evaluate

            _print(evaluate(data, run, args.model), out)
        elif args.command == "bootstrap":
            from training.bootstrap import bootstrap

            _print(bootstrap(settings), out)
        elif args.command == "predict":
            cmd_predict(args, run, stdin, out, settings.confidence_threshold)
        else:
            cmd_models(args, run, out)
    except NewsbotError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
