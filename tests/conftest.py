from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from hypothesis import HealthCheck, settings

from testkit.fake_slack import FakeSlack
from testkit.fake_socket_mode import FakeSocketMode
from testkit.redis_server import RedisServer
from testkit.samples import all_texts
from testkit.tiny_bert import build_tiny_bert
from tests import lanes
from tests.compose_files import walk
from tests.lanes import processes_allowed, spawn_guard

if TYPE_CHECKING:  # training is imported by the tests that train, not by every test session
    from training.api import TrainOutcome

pytest_plugins = ("pytester",)  # tests/test_lanes.py runs small test sessions in-process
# The lanes: tests that start processes are marked e2e, and no other test may start one (tests/lanes.py).
__all__ = ["spawn_guard"]  # the autouse fixture of tests/lanes.py, active for every test collected here

# Property tests run on a busy 2-core CI machine: judge them by their examples, not by wall-clock speed.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REAL_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ldcc-20140209.tar.gz"

# The longest test files (20 s to about three minutes each on a 2-core machine), run first, longest first: with two
# test processes (pytest-xdist, a file each at a time) a long file started last would leave the other process idle
# at the end. The real-corpus file (about 150 s in CI with its open-set hold-out) now outlasts test_faults (~110 s).
LONGEST_FIRST = (
    "test_training_real_corpus.py",
    "test_faults.py",
    "test_retrain_stop.py",
    "test_registry_object_store.py",
    "test_newsroom_categories.py",
    "test_container_stack.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # matplotlib builds its font cache on first import by running ``fc-list``: on a fresh machine (a clean CI
    # clone) that first import would happen inside a fast-lane training test and be refused by the spawn guard.
    # Build it here, once per test process, before the guard is installed.
    import matplotlib.font_manager  # noqa: F401

    lanes.install_audit_hook()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start processes marked e2e (tests/lanes.py); the files of LONGEST_FIRST first, in that order;
    every file's own tests keep their order."""
    lanes.mark_end_to_end(items)

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The test session's one redis-server, shared by the in-process tests of the fast lane (each test gets it
    flushed through ``redis_conn``): the one process a test outside the e2e lane may have started for it."""
    with processes_allowed():
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_conn(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    yield conn
    conn.flushall()  # and after: a job a test left queued must not reach the next file's worker
    conn.close()


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> FakeSlack:
    fake_slack_server.reset()
    return fake_slack_server


@pytest.fixture
def socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """A fake Socket Mode server that ``apps.connections.open`` on the fake Slack points the bot to."""
    server = FakeSocketMode().start()
    fake_slack.socket_mode_url = server.url
    yield server
    fake_slack.socket_mode_url = None
    server.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight BERT saved with save_pretrained (id2label = the nine slugs)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert", all_texts())


@pytest.fixture(scope="session")
def calibrated_linear(tmp_path_factory: pytest.TempPathFactory) -> TrainOutcome:
    """The calibrated linear model of testkit/linear_model.py, trained once per test process for the tests that
    only read it (its registry is ``.path.parent``): training it takes seconds."""
    from testkit.linear_model import train_calibrated_linear

    return train_calibrated_linear(tmp_path_factory.mktemp("calibrated"))


@pytest.fixture
def model_registry(tmp_path: Path, tiny_model: Path) -> Path:
    """A MODEL_DIR with the tiny model as its current version."""
    import shutil

    from newsmodel.registry import set_current

    registry = tmp_path / "models"
    shutil.copytree(tiny_model, registry / "20260101-000000-tiny0001")
    set_current(registry, "20260101-000000-tiny0001")
    return registry


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    if not REAL_CORPUS.is_file():
        pytest.skip(f"real livedoor corpus not found at {REAL_CORPUS} (it lives in ../shared/data beside the repo)")
    return REAL_CORPUS


@pytest.fixture
def container_root() -> Iterator[Path]:
    """A temporary folder every user can reach (pytest's tmp_path is private to root), for container conditions."""
    root = Path(tempfile.mkdtemp(prefix="newsbot-container-"))
    root.chmod(0o755)
    yield root
    for path in walk(root):  # the read-only app folder first needs its write bits back to be removed
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(root)
