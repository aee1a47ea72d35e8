"""The model kinds are declared once (common.kinds) and told apart in two tables only (newsmodel.kinds for serving,
training.kinds for training); each default has one source. Read from the source with ``ast``."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path
from typing import get_args

import pytest

from common.kinds import MODEL_KINDS, ModelKind, model_kind
from common.settings import DEFAULT_BASE_MODEL, LIVEDOOR_CORPUS_URL, Settings
from newsmodel.kinds import SERVED_KINDS
from testkit.processes import REPO_ROOT
from training.kinds import TRAINED_KINDS

PRODUCT_PACKAGES = ("common", "store", "telemetry", "newsmodel", "ui", "bot", "worker", "training")
# Where a kind's name may be tested: the contract and the two tables.
KIND_MODULES = {"common/kinds.py", "newsmodel/kinds.py", "training/kinds.py"}
# The classes of one kind: an isinstance test against one of them is a branch on the kind.
KIND_CLASSES = {"BertClassifier", "LinearClassifier", "LinearModel"}


def product_sources(root: Path = REPO_ROOT, packages: tuple[str, ...] = PRODUCT_PACKAGES) -> dict[str, ast.Module]:
    return {
        path.relative_to(root).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def _kind_names(node: ast.expr) -> list[str]:
    """The kind names that ``node`` is or holds as string literals (``"bert"``, ``("bert", "linear")``)."""
    if isinstance(node, ast.Constant) and node.value in MODEL_KINDS:
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [name for element in node.elts for name in _kind_names(element)]
    return []


def _class_names(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Tuple):
        return [name for element in node.elts for name in _class_names(element)]
    if isinstance(node, ast.BinOp):  # A | B
        return _class_names(node.left) + _class_names(node.right)
    return []


def kind_branches(tree: ast.Module) -> list[str]:
    """Every test on a kind in ``tree``: a comparison or ``in`` against a kind name literal, a ``case`` on one, an
    ``isinstance`` against a kind's class, a ``Literal[...]`` of kind names. As ``line: what``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = [n for operand in (node.left, *node.comparators) for n in _kind_names(operand)]
            if names:
                found.append(f"{node.lineno}: compares with {names}")
        elif isinstance(node, ast.MatchValue) and _kind_names(node.value):
            found.append(f"{node.lineno}: case {_kind_names(node.value)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            classes = [name for arg in node.args[1:] for name in _class_names(arg) if name in KIND_CLASSES]
            if classes:
                found.append(f"{node.lineno}: isinstance of {classes}")
        elif isinstance(node, ast.Subscript) and _class_names(node.value) == ["Literal"] and _kind_names(node.slice):
            found.append(f"{node.lineno}: Literal of {_kind_names(node.slice)}")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_the_check_finds_every_kind_of_branch_on_a_kind_name() -> None:
    source = """
from typing import Literal
kind: Literal["bert", "linear"] = "bert"          # 3: declared again
if kind == "linear": pass                          # 4
if kind in ("bert", "other"): pass                 # 5
flag = "x" if "bert" != kind else "y"              # 6
match kind:
    case "linear": pass                            # 8
ok = isinstance(kind, BertClassifier)              # 9
ok = isinstance(kind, (str, newsmodel.linear.LinearModel))   # 10
name = "bert"                                      # an assignment is no branch
if kind == MODEL_KINDS[0]: pass                    # nor a comparison with no literal
"""
    found = kind_branches(ast.parse(source))
    assert [line.split(":")[0] for line in found] == ["3", "4", "5", "6", "8", "9", "10"]


def test_no_module_branches_on_a_kind_name_outside_the_kind_tables() -> None:
    sources = product_sources()
    assert set(sources) >= KIND_MODULES
    found = {path: hits for path, tree in sources.items() if path not in KIND_MODULES if (hits := kind_branches(tree))}
    assert found == {}, "route these through newsmodel.kinds.SERVED_KINDS or training.kinds.TRAINED_KINDS"


def test_the_kinds_are_declared_once_and_each_table_covers_exactly_them() -> None:
    assert get_args(ModelKind) == MODEL_KINDS and len(set(MODEL_KINDS)) == len(MODEL_KINDS) >= 2
    assert set(SERVED_KINDS) == set(MODEL_KINDS)
    assert set(TRAINED_KINDS) == set(MODEL_KINDS)
    assert all(kind.name == name for name, kind in SERVED_KINDS.items())
    assert all(kind.name == name for name, kind in TRAINED_KINDS.items())
    assert [model_kind(name) for name in MODEL_KINDS] == list(MODEL_KINDS)
    assert model_kind("BERT") is None and model_kind("") is None


def test_the_training_kinds_say_which_options_they_take() -> None:
    assert (TRAINED_KINDS["bert"].takes_base_model, TRAINED_KINDS["bert"].takes_epochs) == (True, True)
    assert (TRAINED_KINDS["linear"].takes_base_model, TRAINED_KINDS["linear"].takes_epochs) == (False, False)
    assert [name for name, kind in TRAINED_KINDS.items() if kind.is_baseline] == ["linear"]


@pytest.mark.parametrize(
    ("value", "setting"), [(DEFAULT_BASE_MODEL, "base_model"), (LIVEDOOR_CORPUS_URL, "train_data")]
)
def test_each_default_has_one_source(value: str, setting: str) -> None:
    holders = sorted(
        path
        for path, tree in product_sources().items()
        if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and value in n.value for n in ast.walk(tree))
    )
    assert holders == ["common/settings.py"]
    assert Settings.model_fields[setting].default == value


def test_the_training_options_default_to_the_settings_constants() -> None:
    from training.options import BertOptions, DataOptions

    assert BertOptions().base_model == DEFAULT_BASE_MODEL and DataOptions().data == LIVEDOOR_CORPUS_URL
    assert {f.name for f in fields(BertOptions)} >= {"base_model"}


def test_serving_recognises_loads_and_configures_each_kind_by_its_table_row(tmp_path: Path, tiny_model: Path) -> None:
    from newsmodel.kinds import served_kind_of
    from newsmodel.loading import load_served, model_type_of
    from newsmodel.prediction import Serving
    from testkit.samples import SAMPLES
    from training.linear import fit_linear, save_linear

    texts = [text for texts in SAMPLES.values() for text in texts]
    save_linear(fit_linear(texts, [slug for slug, texts in SAMPLES.items() for _ in texts]), tmp_path / "linear")
    (tmp_path / "empty").mkdir()
    assert [model_type_of(tmp_path / name) for name in ("linear", "empty")] == ["linear", "unknown"]
    assert served_kind_of(tiny_model) is SERVED_KINDS["bert"] and served_kind_of(tmp_path / "empty") is None

    kind, linear = load_served(tmp_path / "linear", "v1")
    assert kind is SERVED_KINDS["linear"] and linear.version == "v1"
    kind.configure(linear, Serving(max_length=64))
    assert kind.device(linear) is None
    bert_kind, bert = load_served(tiny_model, "v2", device="cpu")
    bert_kind.configure(bert, Serving(max_length=64, batch_size=4))
    assert bert_kind.device(bert) == "cpu" and (bert.max_length, bert.batch_size) == (64, 4)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        bert_kind.configure(linear, Serving())
