"""Every Redis key the product writes is declared once in ``store``, and the docs' key table is the generated one.

- each key template is unique and starts with the product's prefix ``newsbot:``;
- the templates are the ones earlier releases wrote (data already in Redis must still be read);
- every ``newsbot:`` string in ``store`` is a registered template, and no other product package holds one;
- the table in ``docs/newsroom.md`` equals :func:`store.keys.key_table`, so it cannot drift.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import keys
from store.activity import CLASSIFIED_DAY, HomeViewer
from store.classifications import REPLY_SNAPSHOT, ClassificationRecord
from store.record import PREFIX, Key
from store.serving import ServingState
from testkit.processes import REPO_ROOT

PRODUCT_PACKAGES = ("common", "store", "newsmodel", "bot", "worker", "training")

# The keys as this and earlier releases wrote them: changing one orphans what a running Redis holds.
KNOWN_TEMPLATES = {
    "newsbot:classification:{record_id}",
    "newsbot:feedback:{record_id}",
    "newsbot:feedback:index",
    "newsbot:feedback:message:{record_id}",
    "newsbot:feedback:review:{record_id}",
    "newsbot:delivery:{delivery_key}",
    "newsbot:replied:{job_id}",
    "newsbot:training:lock",
    "newsbot:training:cancel:{job_id}",
    "newsbot:training:progress",
    "newsbot:training:corrections_cutoff",
    "newsbot:serving:{worker}",
    "newsbot:watch",
    "newsbot:routes",
    "newsbot:channel:{channel}",
    "newsbot:stats:classified:{day}",
    "newsbot:stats:live:count:{day_version}",
    "newsbot:stats:live:state:{day_version}",
    "newsbot:stats:unsure:{day}",
    "newsbot:stats:feedback:correct",
    "newsbot:stats:feedback:wrong",
    "newsbot:recent:{user}",
    "newsbot:home:viewers",
    "newsbot:home:viewer:{user}",
    "newsbot:rate:{user}",
    "newsbot:slack:pace:{slot}",
    "newsbot:slack:token",
}


def string_literals(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant in a module (f-strings' literal parts included), with its line."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def key_literals(package: str) -> dict[str, list[str]]:
    """``path:line`` → the literals starting with the key prefix, in every module of ``package``."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for line, value in string_literals(path):
            if value.startswith(PREFIX):
                found.setdefault(f"{path.relative_to(REPO_ROOT)}:{line}", []).append(value)
    return found


def test_every_key_is_unique_prefixed_and_the_one_earlier_releases_wrote() -> None:
    templates = [key.template for key in keys.registry()]
    assert len(templates) == len(set(templates)), "a key template is declared twice"
    assert all(template.startswith(PREFIX) for template in templates)
    assert set(templates) == KNOWN_TEMPLATES


def test_records_build_the_keys_earlier_releases_wrote() -> None:
    assert ClassificationRecord.key_for("C1-1.2-0") == "newsbot:classification:C1-1.2-0"
    assert REPLY_SNAPSHOT.key_for("r1") == "newsbot:feedback:message:r1"
    assert HomeViewer.key_for("U1") == "newsbot:home:viewer:U1"
    assert CLASSIFIED_DAY.key_for("2026-12-05") == "newsbot:stats:classified:2026-12-05"
    assert ServingState.KEY.part_of(ServingState.key_for("host:1")) == "host:1"


def test_a_scanned_family_matches_no_other_key() -> None:
    # serving_states() SCANs newsbot:serving:*: no other key may start so.
    others = [key for key in keys.registry() if key is not ServingState.KEY]
    assert not [key.template for key in others if key.template.startswith(ServingState.KEY.prefix)]


def test_a_key_has_at_most_one_part_at_its_end_and_is_filled_with_exactly_that() -> None:
    key = Key("newsbot:test:{user}", "v", "l", 60)
    assert (key.key_for("U1"), key.pattern, key.shown) == ("newsbot:test:U1", "newsbot:test:*", "newsbot:test:<user>")
    fixed = Key("newsbot:test", "v", "l")
    assert (fixed.key_for(), fixed.pattern, fixed.ttl_s) == ("newsbot:test", "newsbot:test", None)
    with pytest.raises(TypeError):
        key.key_for()
    with pytest.raises(TypeError):
        fixed.key_for("x")
    for bad in ("rq:test:{x}", "newsbot:{a}:{b}", "newsbot:{a}:tail", "newsbot:test:{}", "newsbot:test}"):
        with pytest.raises(ValueError):
            Key(bad, "v", "l")


def test_every_key_string_in_store_is_a_registered_template() -> None:
    allowed = {key.template for key in keys.registry()} | {PREFIX}
    strays = {at: values for at, values in key_literals("store").items() if set(values) - allowed}
    assert strays == {}, "a key written in store/ but not declared as a Key (so not in the table)"


def test_no_product_module_outside_store_writes_a_key_string() -> None:
    found = {package: key_literals(package) for package in PRODUCT_PACKAGES if package != "store"}
    assert {package: hits for package, hits in found.items() if hits} == {}


def test_the_docs_key_table_is_the_generated_one() -> None:
    text = (REPO_ROOT / keys.DOCS).read_text(encoding="utf-8")
    assert keys.BEGIN in text and keys.END in text
    assert keys.with_table(text, keys.key_table()) == text, "run python -m store --write"
    for key in keys.registry():
        assert f"| `{key.shown}` |" in text


def test_the_command_checks_and_rewrites_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# Keys\n\n{keys.BEGIN}\n| stale |\n{keys.END}\n\nafter\n", encoding="utf-8")
    assert keys.main(["--check", str(page)]) == 1
    assert keys.main(["--write", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == f"# Keys\n\n{keys.BEGIN}\n{keys.key_table()}{keys.END}\n\nafter\n"
    assert keys.main(["--check", str(page)]) == 0
    capsys.readouterr()
    assert keys.main([]) == 0
    assert capsys.readouterr().out == keys.key_table()
    page.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError):
        keys.main(["--write", str(page)])
