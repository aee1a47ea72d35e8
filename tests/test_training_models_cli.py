"""`python -m training models list` for people (a table) and for scripts (--json); --help texts are plain sentences."""

from __future__ import annotations

import argparse
import io
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from newsmodel import registry
from training.cli import _parser, main
from training.options import OUR_OPTIONS

A, B = "20260101-000000-000aaaaaa", "20260102-093000-000bbbbbb"
SPHINX = re.compile(r":[a-z]+:`|``|`[^`]+`_")


def make_version(model_dir: Path, name: str, metrics: dict[str, object] | None) -> None:
    staging = registry.staging_dir(model_dir, name)
    (staging / "config.json").write_text("{}", encoding="utf-8")
    if metrics is not None:
        (staging / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    registry.register(model_dir, staging, name)


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> str:
    monkeypatch.chdir(model_dir.parent)
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    out = io.StringIO()
    assert main(argv, out=out) == 0
    return out.getvalue()


def test_models_list_prints_a_table_and_json_for_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = tmp_path / "models"
    assert run(["models", "list"], monkeypatch, model_dir).splitlines()[-1] == "(no versions yet)"
    labels = ["sports-watch", "smax", "peachy"]
    make_version(model_dir, A, None)
    make_version(model_dir, B, {"accuracy": 0.91234, "macro_f1": 0.9, "labels": labels})
    registry.promote(model_dir, B)

    lines = run(["models", "list"], monkeypatch, model_dir).splitlines()
    assert [line.split() for line in lines] == [
        ["VERSION", "TYPE", "CREATED", "(UTC)", "TEST", "ACC", "MACRO-F1", "LABELS"],
        [A, "bert", "2026-01-01", "00:00", "-", "-", "-"],
        ["*", B, "bert", "2026-01-02", "09:30", "0.9123", "0.9000", "3"],
        ["*", "current"],
    ]
    assert lines[0].index("VERSION") == lines[1].index(A) == lines[2].index(B)  # aligned columns
    assert not lines[0].lstrip().startswith("{")

    rows = [json.loads(line) for line in run(["models", "list", "--json"], monkeypatch, model_dir).splitlines()]
    assert [(r["version"], r["is_current"], r["model_type"]) for r in rows] == [(A, False, "bert"), (B, True, "bert")]
    assert rows[1]["metrics"]["labels"] == labels and rows[1]["path"] == str(model_dir / B)


def help_texts(parser: argparse.ArgumentParser, ours: set[str]) -> list[str]:
    """The description and every option's help of ``parser`` and its subcommands (of ``train``: only ours)."""
    texts = [parser.description or ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts.extend(str(choice.help or "") for choice in action._choices_actions)
            for name, sub in action.choices.items():
                texts.extend(
                    help_texts(sub, {f.name for c in OUR_OPTIONS for f in fields(c)} if name == "train" else ours)
                )
        elif not ours or action.dest in ours:
            texts.append(str(action.help or ""))
    return [text for text in texts if text and text != argparse.SUPPRESS]


def test_help_texts_are_plain_sentences() -> None:
    texts = help_texts(_parser(), set())
    texts += [str(f.metadata["help"]) for cls in OUR_OPTIONS for f in fields(cls)]
    assert len(texts) > 40
    marked = [text for text in texts if SPHINX.search(text)]
    assert marked == []
    assert SPHINX.search("a layer over :mod:`training.api`") and SPHINX.search("``--seed``")  # the check checks
    assert any("(a table)" in text for text in texts) and any("--json" not in t and "JSON" in t for t in texts)
