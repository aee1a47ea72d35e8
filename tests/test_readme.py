"""The README documents every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from common.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in section]
    assert not missing, f"README's Configuration table lacks {missing}"
