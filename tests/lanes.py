"""The two test lanes: every test that starts a process is marked ``e2e``, and no other test may start one.

Marking (:func:`mark_end_to_end`): a test is ``e2e`` when its own code, or any code of ``tests`` or
``testkit`` it reaches (helpers, classes, fixtures, followed name by name), refers to something that starts a
process: ``subprocess``, ``multiprocessing``, ``concurrent.futures.process``, ``pty`` or one of ``os``'s fork, exec,
spawn and system functions. So ``start_bot``, ``running_stack``, ``Proc`` or ``RedisServer`` (which all end in
``subprocess.Popen``) mark every test that uses them, directly or through a fixture, and nobody has to remember to.
The one exception is the shared session ``redis-server`` (fixture :data:`SHARED_FIXTURES`), which in-process tests
use: a test against it stays in the fast lane.

Enforcement (:func:`spawn_guard`, autouse): while a test that is not ``e2e`` runs (its set-up, call and
tear-down), starting a process fails with :class:`ProcessSpawnRefused`, whatever does it (an audit hook on
``subprocess.Popen``, ``os.fork``, ``os.posix_spawn``, ``os.system``, ``os.exec*``, ``os.spawn*``, plus
``multiprocessing``'s ``Process.start``, which starts ``spawn`` children without an audit event). Code the
detection cannot see (a product function that forks, a name built at run time) is caught here: mark such a test
``@pytest.mark.e2e`` by hand.

The fast lane is ``-m "not e2e and not real_corpus and not compose"`` (``scripts/check``); ``scripts/check --all``
runs everything but the compose check (``-m "not compose"``), which ``scripts/check --compose`` runs.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import importlib
import multiprocessing.process
import os
import site
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

E2E = "e2e"
# The lane selection of scripts/check without --all.
FAST_LANE = "not e2e and not real_corpus and not compose"
# The lane of scripts/check --all (CI): everything but the compose check, which needs a Docker engine and minutes.
ALL_LANE = "not compose"
# Fixtures that start a process yet keep their users in the fast lane: the one redis-server of the test session.
SHARED_FIXTURES = frozenset({"redis_server"})
# Modules whose use means a process is started.
SPAWNING_MODULES = frozenset({"subprocess", "multiprocessing", "concurrent.futures.process", "pty"})
SPAWNING_OS_FUNCTIONS = frozenset(
    {"fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp"}
    | {f"exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
)
# Audit events (sys.audit) raised when a process is started.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system"}
)
# The product's packages: the detection follows test code only (tests, testkit, conftest, test modules).
PRODUCT_PACKAGES = frozenset({"common", "newsmodel", "bot", "worker", "training"})


class ProcessSpawnRefused(RuntimeError):
    """A test outside the e2e lane tried to start a process."""


# --- marking -----------------------------------------------------------------------------------------------------


def _is_own(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and _is_own_name(module)


@functools.cache
def _is_own_name(module_name: str) -> bool:
    """Test code: a module of this checkout (not the standard library, not an installed package) outside the
    product's packages. Product code that starts a process is left to the run-time guard."""
    if module_name.split(".", 1)[0] in PRODUCT_PACKAGES:
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    installed = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    resolved = str(Path(path).resolve())
    return not any(resolved.startswith(str(Path(root).resolve()) + os.sep) for root in installed)


def _is_spawner(obj: object) -> bool:
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
    else:
        name = getattr(obj, "__module__", None) or ""
        if any(obj is getattr(os, f, None) for f in SPAWNING_OS_FUNCTIONS):
            return True
    return isinstance(name, str) and (name.split(".", 1)[0] in SPAWNING_MODULES or name in SPAWNING_MODULES)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code of every function, lambda and comprehension inside it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _references(func: types.FunctionType) -> tuple[list[object], set[str]]:
    """What ``func``'s code loads by name (globals, closure cells, imported modules) and the attribute names it
    loads (on anything: they are looked up on the modules among the former)."""
    namespace: dict[str, Any] = dict(vars(sys.modules[func.__module__])) if func.__module__ in sys.modules else {}
    namespace.update(_closure(func))
    objects: list[object] = []
    attributes: set[str] = set()
    for code in _codes(func.__code__):
        for instruction in dis.get_instructions(code):
            name = str(instruction.argval)
            if instruction.opname in {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"}:
                if name in namespace:
                    objects.append(namespace[name])
            elif instruction.opname in {"LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"}:
                attributes.add(name)
            elif instruction.opname == "IMPORT_NAME":  # an import inside the function
                with contextlib.suppress(ImportError):
                    objects.append(importlib.import_module(name))
    return objects, attributes


def _functions_of(obj: object) -> list[types.FunctionType]:
    if isinstance(obj, types.FunctionType):
        wrapped = getattr(obj, "__wrapped__", None)  # functools.wraps, contextlib.contextmanager
        return [obj, *_functions_of(wrapped)] if wrapped is not None else [obj]
    if isinstance(obj, (types.MethodType, staticmethod, classmethod)):
        return _functions_of(obj.__func__)
    if isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset, obj.fdel) if isinstance(f, types.FunctionType)]
    if isinstance(obj, type):
        return [f for value in vars(obj).values() for f in _functions_of(value)]
    return []


def starts_processes(func: Callable[..., Any]) -> bool:
    """Whether ``func``, or any function or class of the test code (:func:`_is_own_name`) that it refers to
    (followed transitively), refers to something that starts a process."""
    if func not in _verdicts:
        _verdicts[func] = _starts_processes(func)
    return _verdicts[func]


_verdicts: dict[Callable[..., Any], bool] = {}


def _starts_processes(func: Callable[..., Any]) -> bool:
    seen: set[int] = set()
    pending = _functions_of(func)
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        objects, attributes = _references(current)
        for obj in objects:
            if obj is os:
                if attributes & SPAWNING_OS_FUNCTIONS:
                    return True
                continue
            if _is_spawner(obj):
                return True
            if isinstance(obj, types.ModuleType) and _is_own_module(obj):
                for attribute in attributes:
                    target = getattr(obj, attribute, None)
                    if target is not None and _is_spawner(target):
                        return True
                    if target is not None and _is_own(target):
                        pending.extend(_functions_of(target))
            elif _is_own(obj):
                pending.extend(_functions_of(obj))
    return False


def _is_own_module(module: types.ModuleType) -> bool:
    return _is_own_name(module.__name__)


def _closure(func: types.FunctionType) -> dict[str, Any]:
    cells = func.__closure__ or ()
    return {
        name: cell.cell_contents for name, cell in zip(func.__code__.co_freevars, cells, strict=False) if _filled(cell)
    }


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def is_end_to_end(item: pytest.Item) -> bool:
    """Whether ``item`` starts processes: its test function, or a fixture it uses (:data:`SHARED_FIXTURES` aside)."""
    function = getattr(item, "function", None)
    if function is not None and starts_processes(function):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in info.names_closure:
        if name in SHARED_FIXTURES:
            continue
        for definition in info.name2fixturedefs.get(name, ()):
            func = definition.func
            if func.__module__ != __name__ and _is_own(func) and starts_processes(func):
                return True
    return False


def mark_end_to_end(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every item that starts processes (tests/conftest.py's pytest_collection_modifyitems)."""
    for item in items:
        if item.get_closest_marker(E2E) is None and is_end_to_end(item):
            item.add_marker(E2E)


# --- enforcement -------------------------------------------------------------------------------------------------

# The node id of the test that may not start a process now (None: any process may start).
_refusing: list[str | None] = [None]
_hook_installed = False


def _refuse(what: str) -> None:
    test = _refusing[-1]
    if test is not None:
        raise ProcessSpawnRefused(
            f"{test} started a process ({what}) but is not an end-to-end test. Tests that start processes run in "
            f"the e2e lane only (scripts/check --all): they are marked e2e automatically when they use testkit's "
            f"process helpers or subprocess/multiprocessing directly; where that cannot be seen (e.g. product code "
            f"that forks), mark the test @pytest.mark.e2e. The shared session redis-server is the one exception."
        )


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in SPAWN_EVENTS:
        _refuse(f"{event} {args[0]!r}" if args else event)


def install_audit_hook() -> None:
    """Refuse processes from now on while :data:`_refusing` names a test (tests/conftest.py's pytest_configure)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # for good: an audit hook cannot be removed, so it only reads _refusing
        _hook_installed = True


_start = multiprocessing.process.BaseProcess.start


def _guarded_start(self: multiprocessing.process.BaseProcess) -> None:
    _refuse(f"multiprocessing {self.name}")
    _start(self)


@contextlib.contextmanager
def refusing_processes(test: str | None) -> Iterator[None]:
    """Within the block, starting a process raises :class:`ProcessSpawnRefused` naming ``test`` (None: allowed)."""
    _refusing.append(test)
    try:
        yield
    finally:
        _refusing.pop()


@contextlib.contextmanager
def processes_allowed() -> Iterator[None]:
    """Within the block any process may start (the shared redis-server of the session)."""
    with refusing_processes(None):
        yield


@pytest.fixture(autouse=True)
def spawn_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Outside the e2e lane, a test that starts a process fails (module docstring)."""
    node = request.node
    refused = None if node.get_closest_marker(E2E) is not None else node.nodeid
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _guarded_start)
    with refusing_processes(refused):
        yield
