"""/retrain option parsing: what is accepted, and every malformed or out-of-range option refused with why."""

from __future__ import annotations

import pytest

from bot.options import CancelCommand, RollbackCommand, StatusCommand, TrainCommand, parse_retrain
from common.exceptions import InvalidRetrainOptionsError


def test_defaults_and_each_option() -> None:
    assert parse_retrain("") == TrainCommand()
    assert parse_retrain("  epochs=3 base=tohoku-nlp/bert-base-japanese-v3 type=linear force ") == TrainCommand(
        epochs=3.0, base_model="tohoku-nlp/bert-base-japanese-v3", model_type="linear", force=True
    )
    assert parse_retrain("epochs=0.5 base=tiny-bert").base_model == "tiny-bert"  # type: ignore[union-attr]
    assert parse_retrain("status") == StatusCommand()
    assert parse_retrain("rollback") == RollbackCommand(None)
    assert parse_retrain("rollback 20260101-000000-tiny0001") == RollbackCommand("20260101-000000-tiny0001")
    assert parse_retrain("cancel") == parse_retrain(" CANCEL ") == CancelCommand()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("epochs=-1", "greater than 0"),
        ("epochs=0", "greater than 0"),
        ("epochs=1000", "at most 20"),
        ("epochs=nan", "greater than 0"),
        ("epochs=inf", "greater than 0"),
        ("epochs=three", "must be a number"),
        ("epochs=", "needs a value"),
        ("epochs=1 epochs=2", "given twice"),
        ("base=../../etc", "base must be"),
        ("base=/etc/passwd", "base must be"),
        ("base=org/../../etc", "base must be"),
        ("base=a/b/c", "base must be"),
        ("base=..", "base must be"),
        ("base=~root", "base must be"),
        ("type=gpt", "bert or linear"),
        ("lr=0.1", "unknown option `lr`"),
        ("fast", "unknown option `fast`"),
        ("status now", "status takes no options"),
        ("rollback ../x", "not a model version name"),
        ("rollback a b", "at most one version"),
        ("cancel now", "cancel takes no options"),
    ],
)
def test_malformed_options_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidRetrainOptionsError) as caught:
        parse_retrain(text, max_epochs=20)
    assert reason in caught.value.user_message
    assert "/retrain のオプションが正しくありません" in caught.value.user_message  # Japanese too
