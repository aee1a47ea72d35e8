"""The packages' boundaries, read from the source with ``ast``: no import cycle, and each package imports only
what it may. Imports inside functions count as much as those at the top of a module.

- store (everything kept in Redis) imports only common, redis and rq of the product's packages;
- newsmodel (the served model) imports neither training, Slack, RQ, redis nor store;
- worker imports training only in worker/retrain.py (the /retrain job);
- bot never loads torch, transformers or the BERT classifier;
- ui (every message and view) imports only common, and store for the records a view shows: both bot and worker
  import it;
- common (contracts) imports no other product package and nothing beyond the base install (pydantic);
- telemetry (metrics, health endpoint) imports only common and prometheus_client;
- reading the registry loads neither torch nor transformers (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit.processes import REPO_ROOT, product_env

PRODUCT_PACKAGES = ("common", "store", "telemetry", "newsmodel", "ui", "bot", "worker", "training")


@dataclass
class ImportGraph:
    """Product modules, the product modules each imports (``edges``) and every module name it imports (``names``)."""

    edges: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, set[str]] = field(default_factory=dict)


def module_of(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """Every module named by an import anywhere in ``tree`` (``from a import b`` names ``a`` and ``a.b``)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def build_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    files = {module_of(root, p): p for package in packages for p in sorted((root / package).rglob("*.py"))}
    graph = ImportGraph()
    for module, path in files.items():
        names = imported_names(module, path.name == "__init__.py", ast.parse(path.read_text(encoding="utf-8")))
        graph.names[module] = names
        graph.edges[module] = {name for name in names if name in files and name != module}
    return graph


def find_cycle(edges: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, …, a]``, or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def offending_imports(
    graph: ImportGraph, package: str, forbidden: Iterable[str], allowed_in: Iterable[str] = ()
) -> dict[str, list[str]]:
    """The modules of ``package`` (except ``allowed_in``) that import a forbidden module or one below it."""
    banned = tuple(forbidden)
    found: dict[str, list[str]] = {}
    for module, names in graph.names.items():
        if (module == package or module.startswith(package + ".")) and module not in set(allowed_in):
            hits = sorted(n for n in names if any(n == b or n.startswith(b + ".") for b in banned))
            if hits:
                found[module] = hits
    return found


def reachable(edges: Mapping[str, set[str]], starts: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges.get(module, ()))
    return seen


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph(REPO_ROOT, PRODUCT_PACKAGES)


# -- the checks check: a tiny synthetic tree breaking every rule ------------------------------------------


def test_the_checks_find_a_function_level_cycle_and_forbidden_imports(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("import os\n\ndef thing():\n    from . import c\n")
    (tmp_path / "pkg" / "c.py").write_text("def late():\n    import pkg.a\n    import redis.client\n")
    (tmp_path / "pkg" / "d.py").write_text("from .b import thing\n")
    synthetic = build_graph(tmp_path, ["pkg"])
    assert synthetic.edges["pkg.b"] == {"pkg", "pkg.c"}  # a relative import inside a function is an edge
    assert find_cycle(synthetic.edges) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": set(), "w": {"w"}}) == ["w", "w"]
    assert find_cycle({"x": {"y", "z"}, "y": {"z"}, "z": set()}) is None  # a diamond is no cycle
    assert offending_imports(synthetic, "pkg", ["redis"]) == {"pkg.c": ["redis.client"]}
    assert offending_imports(synthetic, "pkg", ["redis"], allowed_in=["pkg.c"]) == {}
    assert reachable(synthetic.edges, ["pkg.d"]) == {"pkg.d", "pkg.b", "pkg", "pkg.c", "pkg.a"}


# -- the rules ----------------------------------------------------------------------------------------


def test_the_graph_covers_every_product_package(graph: ImportGraph) -> None:
    for package in PRODUCT_PACKAGES:
        assert package in graph.edges
    expected = {"newsmodel.registry", "newsmodel.loading", "training.api", "worker.retrain", "store.keys"}
    assert expected <= set(graph.edges)
    assert "newsmodel.prediction" in graph.edges["newsmodel.bert"]


def test_no_import_cycle_between_product_modules(graph: ImportGraph) -> None:
    cycle = find_cycle(graph.edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_store_imports_no_bot_worker_training_newsmodel_ui_slack_or_torch(graph: ImportGraph) -> None:
    forbidden = ["bot", "worker", "training", "newsmodel", "ui", "slack_sdk", "slack_bolt", "torch", "transformers"]
    assert offending_imports(graph, "store", forbidden) == {}  # common and telemetry (its counters) it may use


def test_common_imports_no_other_product_package_and_only_the_base_install(graph: ImportGraph) -> None:
    forbidden = [p for p in PRODUCT_PACKAGES if p != "common"]
    assert offending_imports(graph, "common", forbidden) == {}
    base_install = {"pydantic", "pydantic_settings", "common"}  # pyproject's [project] dependencies
    outside = {
        module: sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names | base_install)
        for module, names in graph.names.items()
        if module.split(".")[0] == "common"
    }
    assert {m: names for m, names in outside.items() if names} == {}


def test_telemetry_imports_only_common_and_prometheus(graph: ImportGraph) -> None:
    allowed = set(sys.stdlib_module_names) | {"common", "telemetry", "prometheus_client"}
    outside = {
        module: sorted(n for n in names if n.split(".")[0] not in allowed)
        for module, names in graph.names.items()
        if module.split(".")[0] == "telemetry"
    }
    assert {m: names for m, names in outside.items() if names} == {}


def test_newsmodel_imports_no_training_slack_rq_or_redis(graph: ImportGraph) -> None:
    forbidden = ["training", "slack_sdk", "slack_bolt", "rq", "redis", "bot", "worker", "store"]
    assert offending_imports(graph, "newsmodel", forbidden) == {}


def test_worker_imports_training_only_for_retraining(graph: ImportGraph) -> None:
    assert offending_imports(graph, "worker", ["training"], allowed_in=["worker.retrain"]) == {}


def test_bot_reaches_no_torch_transformers_or_bert(graph: ImportGraph) -> None:
    loaded = reachable(graph.edges, [m for m in graph.edges if m == "bot" or m.startswith("bot.")])
    assert "newsmodel.bert" not in loaded and not any(m.startswith(("worker", "training")) for m in loaded)
    heavy = {m: offending_imports(graph, m, ["torch", "transformers"]) for m in loaded}
    assert {m: hits for m, hits in heavy.items() if hits} == {}


def test_ui_imports_only_common_and_store_and_serves_bot_and_worker(graph: ImportGraph) -> None:
    forbidden = ["bot", "worker", "training", "newsmodel", "torch", "transformers", "slack_bolt", "rq"]
    assert offending_imports(graph, "ui", forbidden) == {}
    product = {m for m in graph.edges if m.split(".")[0] in PRODUCT_PACKAGES}
    ui_reaches = {
        m for m in reachable(graph.edges, [m for m in graph.edges if m.split(".")[0] == "ui"]) if m in product
    }
    assert {m.split(".")[0] for m in ui_reaches} <= {"ui", "common", "store", "telemetry"}
    users = {m.split(".")[0] for m, targets in graph.edges.items() if any(t.split(".")[0] == "ui" for t in targets)}
    assert {"bot", "worker"} <= users


def test_common_holds_no_view(graph: ImportGraph) -> None:
    """Block Kit and the Home live in ui: common is contracts only."""
    assert "common.home" not in graph.edges
    assert offending_imports(graph, "common", ["ui", "slack_sdk", "slack_bolt"]) == {}


# -- the registry is read without torch, in a fresh interpreter ------------------------------------------

READ_REGISTRY = """
import json, sys
from pathlib import Path
from newsmodel import registry

model_dir = Path(sys.argv[1])
print(json.dumps({
    "versions": [(v.version, v.model_type, v.is_current) for v in registry.list_versions(model_dir)],
    "current": registry.current_version(model_dir),
    "history": [row["action"] for row in registry.read_history(model_dir)],
    "loaded": sorted(m for m in ("torch", "transformers", "newsmodel.bert") if m in sys.modules),
}))
"""


def test_reading_the_registry_loads_no_torch(tmp_path: Path, tiny_model: Path) -> None:
    from testkit.samples import SAMPLES
    from training.linear import fit_linear, save_linear

    model_dir = tmp_path / "models"
    linear, bert = "20260101-000000-000aaaaaa", "20260102-000000-000bbbbbb"
    texts = [text for texts in SAMPLES.values() for text in texts]
    slugs = [slug for slug, texts in SAMPLES.items() for _ in texts]
    save_linear(fit_linear(texts, slugs), model_dir / linear)
    shutil.copytree(tiny_model, model_dir / bert)
    from newsmodel import registry

    registry.promote(model_dir, bert)
    registry.rollback(model_dir, linear)

    proc = subprocess.run(
        [sys.executable, "-c", READ_REGISTRY, str(model_dir)],
        env=product_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["versions"] == [[linear, "linear", True], [bert, "bert", False]]
    assert seen["current"] == linear and seen["history"] == ["promote", "rollback"]
    assert seen["loaded"] == []
