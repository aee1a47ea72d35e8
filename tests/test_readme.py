"""The README documents every setting the code reads, and its layout names every module of the product."""

from __future__ import annotations

import re
from pathlib import Path

from common.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in section]
    assert not missing, f"README's Configuration table lacks {missing}"


PRODUCT_PACKAGES = ("common", "telemetry", "store", "ui", "newsmodel", "bot", "worker", "training")


def _layout_entries() -> dict[str, str]:
    """README's layout list: package → its bullet's text."""
    text = README.read_text(encoding="utf-8")
    layout = text[text.index("- `common/`") : text.index("## Creating the Slack app")]
    entries = {}
    for bullet in re.split(r"\n- ", "\n" + layout):
        found = re.match(r"`(\w+)/`", bullet.strip())
        if found:
            entries[found[1]] = " ".join(bullet.split())
    return entries


def test_the_layout_names_every_module_and_only_modules_that_exist() -> None:
    """The layout drifted: it named worker/reports.py (moved to ui/) and left out thirteen modules added since
    (store/live.py, newsmodel/confidence.py, training/openset.py, …). Each product package's bullet names each of
    its modules (``name.py``, or ``name`` in store's list and for the listener kinds), and every ``name.py`` it
    names exists in that package."""
    entries = _layout_entries()
    root = README.parent
    assert set(PRODUCT_PACKAGES) <= set(entries)
    for package in PRODUCT_PACKAGES:
        bullet = entries[package]
        for named in re.findall(r"`([\w/]+)\.py`", bullet):
            path = root / f"{named}.py" if "/" in named else root / package / f"{named}.py"
            assert path.exists(), f"README names {path.relative_to(root)}, which is gone"
        for module in sorted((root / package).glob("*.py")):
            if module.stem == "__init__":
                continue
            names = {f"`{module.stem}.py`", f"`{module.stem}`", f"`{package}/{module.stem}.py`"}
            if module.stem == "__main__":
                names |= {f"python -m {package}"}
            assert any(name in bullet for name in names), f"README omits {module.relative_to(root)}"
    listeners = entries["bot"]
    for module in sorted((root / "bot" / "listeners").glob("*.py")):
        if module.stem != "__init__":
            assert re.search(rf"\b{module.stem}\b", listeners), f"README omits the {module.stem} listeners"
