"""MODEL_DIR on an object store: a real S3-compatible server (moto's server mode) over HTTP, real s3fs.

The registry API (register, list, promote, rollback, history), the completion marker (a half-uploaded version
is never listed, promoted, downloaded or served), the CLI from another process, and two real `python -m worker`
processes, each with its own empty local cache, that download the current version and hot-reload a version
trained and promoted by a third process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus

from common.articles import Article
from common.exceptions import ModelNotFoundError
from newsmodel import registry, store
from store.queues import classify_queue
from store.serving import ServingState
from testkit.fake_corpus import build_text_folder
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify
from testkit.processes import Proc, launch_worker, product_env, wait_started
from testkit.redis_server import RedisServer
from testkit.s3_server import CREDENTIALS, S3Server
from testkit.samples import SAMPLES, all_texts
from testkit.waiting import wait_until

V1, V2, V3 = "20260101-000000-000aaaaaa", "20260102-000000-000bbbbbb", "20260103-000000-000cccccc"
HALF = "20260104-000000-000dddddd"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> str:
    name = "models-" + str(abs(hash(request.node.nodeid)) % 10**9)
    s3.create_bucket(name)
    return name


@pytest.fixture
def s3_registry(s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<bucket>/registry`` for this test process (endpoint and cache configured, dummy credentials)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    store.configure(s3.url, tmp_path / "trainer-cache")
    yield f"s3://{bucket}/registry"
    store.configure()


def linear_folder(folder: Path, seed: int, macro_f1: float) -> Path:
    """A real linear model (fit on the sample texts) with a metrics.json, as training writes it."""
    from training.linear import fit_linear, save_linear

    texts = [text for texts in SAMPLES.values() for text in texts]
    slugs = [slug for slug, texts in SAMPLES.items() for _ in texts]
    save_linear(fit_linear(texts, slugs, seed=seed), folder)
    metrics = {"accuracy": macro_f1 + 0.01, "macro_f1": macro_f1, "labels": list(SAMPLES)}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def register_linear(model_dir: str, version: str, seed: int = 0, macro_f1: float = 0.5) -> Path:
    return registry.register(
        model_dir, linear_folder(registry.staging_dir(model_dir, version), seed, macro_f1), version
    )


def half_upload(s3: S3Server, bucket: str, version: str, source: Path) -> None:
    """Upload a version's files but not its completion marker: an upload still running, or one that crashed."""
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.name != store.MARKER_FILE):
        s3.put(bucket, f"registry/{version}/{path.relative_to(source).as_posix()}", path.read_bytes())


def test_the_registry_api_on_an_object_store(s3: S3Server, bucket: str, s3_registry: str, tmp_path: Path) -> None:
    assert registry.list_versions(s3_registry) == [] and registry.current_version(s3_registry) is None
    local = register_linear(s3_registry, V1, seed=1, macro_f1=0.7)
    assert local == tmp_path / "trainer-cache" / V1 and local.is_dir()  # the trainer keeps its local copy
    register_linear(s3_registry, V2, seed=2, macro_f1=0.8)
    keys = s3.keys(bucket, f"registry/{V1}/")
    assert f"registry/{V1}/{store.MARKER_FILE}" in keys and f"registry/{V1}/metrics.json" in keys
    marker = json.loads(s3.get(bucket, f"registry/{V1}/{store.MARKER_FILE}"))
    assert set(marker["files"]) == {k.split("/", 2)[2] for k in keys} - {store.MARKER_FILE}
    with pytest.raises(FileExistsError):
        register_linear(s3_registry, V1)

    # A half-uploaded version (no marker) is not listed, cannot be promoted, is never downloaded.
    half_upload(s3, bucket, HALF, local)
    assert [v.version for v in registry.list_versions(s3_registry)] == [V1, V2]
    assert not registry.has_version(s3_registry, HALF)
    with pytest.raises(ModelNotFoundError):
        registry.promote(s3_registry, HALF)
    with pytest.raises(ModelNotFoundError):
        registry.local_version(s3_registry, HALF, tmp_path / "cache")
    assert not (tmp_path / "cache" / HALF).exists()

    registry.promote(s3_registry, V2)
    registry.promote(s3_registry, V1)
    assert s3.get(bucket, "registry/current") == f"{V1}\n".encode()  # one small object
    versions = registry.list_versions(s3_registry)
    assert [(v.version, v.model_type, v.is_current, v.label_count) for v in versions] == [
        (V1, "linear", True, 9),
        (V2, "linear", False, 9),
    ]
    assert versions[1].metrics == {"accuracy": 0.81, "macro_f1": 0.8, "labels": list(SAMPLES)}
    assert versions[1].path == f"{s3_registry}/{V2}"
    assert registry.version_metrics(s3_registry, V2) == versions[1].metrics
    assert registry.rollback(s3_registry) == V2
    assert [(h["action"], h["version"], h["previous"]) for h in registry.read_history(s3_registry)] == [
        ("promote", V2, None),
        ("promote", V1, V2),
        ("rollback", V2, V1),
    ]

    # A worker's cache: the current version is downloaded once, whole, and loads from there.
    path, version = registry.resolve_serving_path(s3_registry, None, tmp_path / "cache")
    assert (path, version) == (tmp_path / "cache" / V2, V2)
    from newsmodel.loading import load_classifier

    (prediction,) = load_classifier(path, version).predict([Article(title="", body=SAMPLES["smax"][0])])
    assert prediction.slug in SAMPLES
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no partial download left

    # `current` naming a half upload (written by hand) is refused, not served.
    s3.put(bucket, "registry/current", f"{HALF}\n".encode())
    with pytest.raises(ModelNotFoundError):
        registry.resolve_serving_path(s3_registry, None, tmp_path / "cache")
    with pytest.raises(ModelNotFoundError):
        registry.set_current(s3_registry, HALF)


def test_a_workers_cache_keeps_the_most_recently_used_versions(
    s3: S3Server, bucket: str, s3_registry: str, tmp_path: Path
) -> None:
    """MODEL_CACHE_KEEP: when a new version arrives, the cache drops the least recently used beyond it, never the
    one arriving nor a download or training in progress; a version dropped is downloaded again when asked for."""
    store.configure(s3.url, tmp_path / "trainer-cache", cache_keep=2)
    names = [f"2026010{n}-000000-keep{n}" for n in range(1, 5)]
    for n, name in enumerate(names):
        register_linear(s3_registry, name, seed=n)
    trainer_cache = tmp_path / "trainer-cache"
    assert sorted(p.name for p in trainer_cache.iterdir() if not p.name.startswith(".")) == names[2:]

    cache = tmp_path / "worker-cache"
    in_progress = cache / ".download-20260109-000000-busy-1-abc"
    in_progress.mkdir(parents=True)
    registry.local_version(s3_registry, names[0], cache)
    registry.local_version(s3_registry, names[1], cache)
    os.utime(cache / names[0], (1, 1))  # names[0] used long ago, names[1] just now
    registry.local_version(s3_registry, names[2], cache)  # a third arrives: the least recently used goes
    assert sorted(p.name for p in cache.iterdir()) == [in_progress.name, names[1], names[2]]
    registry.local_version(s3_registry, names[1], cache)  # in the cache: used again, nothing downloaded or dropped
    registry.local_version(s3_registry, names[3], cache)
    assert sorted(p.name for p in cache.iterdir()) == [in_progress.name, names[1], names[3]]
    again = registry.local_version(s3_registry, names[0], cache)  # a rollback to a dropped version downloads it
    assert again.is_dir() and (again / store.MARKER_FILE).is_file()
    assert sorted(p.name for p in cache.iterdir()) == [in_progress.name, names[0], names[3]]
    os.utime(cache / names[0], (1, 1))
    assert store.evict(cache, keep=1, protect={names[0]}) == []  # the protected one stays, however old
    assert store.evict(cache, keep=1) == [names[0]]
    assert sorted(p.name for p in cache.iterdir()) == [in_progress.name, names[3]]


def tamper_same_size(s3: S3Server, bucket: str, version: str) -> str:
    """Alter the last byte of the largest file of an uploaded version in the store (the weights' data, not their
    header: the file still loads), keeping its size; the file's name."""
    marker = json.loads(s3.get(bucket, f"registry/{version}/{store.MARKER_FILE}"))
    name = max(marker["files"], key=lambda n: marker["files"][n])
    original = s3.get(bucket, f"registry/{version}/{name}")
    altered = original[:-1] + bytes([original[-1] ^ 0x01])
    s3.put(bucket, f"registry/{version}/{name}", altered)
    assert len(altered) == marker["files"][name]
    return str(name)


def test_a_file_altered_in_the_store_at_the_same_size_is_refused(
    s3: S3Server, bucket: str, s3_registry: str, tmp_path: Path
) -> None:
    """The marker records each file's sha256 at upload; a download checks it and refuses the whole version."""
    local = register_linear(s3_registry, V1, seed=1)
    marker = json.loads(s3.get(bucket, f"registry/{V1}/{store.MARKER_FILE}"))
    assert set(marker["sha256"]) == set(marker["files"])
    for name, digest in marker["sha256"].items():
        assert digest == hashlib.sha256((local / name).read_bytes()).hexdigest()
    assert registry.local_version(s3_registry, V1, tmp_path / "intact").is_dir()  # untouched: served

    name = tamper_same_size(s3, bucket, V1)
    cache = tmp_path / "cache"
    with pytest.raises(store.ModelIntegrityError, match="sha256") as refused:
        registry.local_version(s3_registry, V1, cache)
    assert name in str(refused.value) and "\n" not in str(refused.value)
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing of it reaches the cache, not even a partial
    registry.set_current(s3_registry, V1)
    with pytest.raises(store.ModelIntegrityError):
        registry.resolve_serving_path(s3_registry, None, cache)


def test_the_worker_keeps_serving_when_a_promoted_version_was_altered_in_the_store(
    s3: S3Server, bucket: str, s3_registry: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.classifier import ModelService

    register_linear(s3_registry, V1, seed=1)
    registry.promote(s3_registry, V1)
    service = ModelService(s3_registry, None, cache_dir=tmp_path / "worker-cache")
    assert service.load() and service.version == V1

    register_linear(s3_registry, V2, seed=2)
    name = tamper_same_size(s3, bucket, V2)
    registry.promote(s3_registry, V2)
    with caplog.at_level(logging.ERROR, logger="worker.classifier"):
        assert service.check_for_update() is False
    assert service.version == V1  # what it served keeps serving
    assert service.last_error is not None and "sha256" in service.last_error and name in service.last_error
    (line,) = [r.getMessage() for r in caplog.records if "not swapped in" in r.getMessage()]
    assert V2 in line and "sha256" in line and "\n" not in line  # why, in one line
    (prediction,), _ = service.predict([Article(title="", body=SAMPLES["smax"][0])])
    assert prediction.slug in SAMPLES
    assert not (tmp_path / "worker-cache" / V2).exists()


def test_a_marker_without_sha256_is_accepted_on_sizes_with_a_warning(
    s3: S3Server, bucket: str, s3_registry: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Versions uploaded before the sha256 were recorded keep serving (checked on sizes, with a warning); a
    marker that records sha256 but not for every file refuses the version."""
    register_linear(s3_registry, V1, seed=1)
    key = f"registry/{V1}/{store.MARKER_FILE}"
    marker = json.loads(s3.get(bucket, key))
    old = {k: v for k, v in marker.items() if k != "sha256"}
    s3.put(bucket, key, json.dumps(old).encode())
    with caplog.at_level(logging.WARNING, logger="newsmodel.store"):
        assert registry.local_version(s3_registry, V1, tmp_path / "old").is_dir()
    assert any(V1 in r.getMessage() and "no sha256" in r.getMessage() for r in caplog.records)

    name = max(marker["files"], key=lambda n: marker["files"][n])
    s3.put(bucket, f"registry/{V1}/{name}", s3.get(bucket, f"registry/{V1}/{name}") + b"x")
    with pytest.raises(store.ModelIntegrityError, match="bytes"):
        registry.local_version(s3_registry, V1, tmp_path / "grown")  # sizes are still checked

    partial = {**marker, "sha256": {k: v for k, v in marker["sha256"].items() if k != name}}
    s3.put(bucket, key, json.dumps(partial).encode())
    with pytest.raises(store.ModelIntegrityError, match="no valid sha256"):
        registry.local_version(s3_registry, V1, tmp_path / "partial")


def test_the_cli_manages_an_object_store_registry_from_another_process(
    s3: S3Server, s3_registry: str, tmp_path: Path
) -> None:
    register_linear(s3_registry, V1, macro_f1=0.6)
    register_linear(s3_registry, V2, macro_f1=0.75)
    env = product_env(MODEL_DIR=s3_registry, MODEL_STORE_ENDPOINT_URL=s3.url, **CREDENTIALS)

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "training", "models", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    assert json.loads(cli("promote", V2)) == {"current": V2}
    assert registry.current_version(s3_registry) == V2
    table = cli("list").splitlines()
    assert table[0].split() == ["VERSION", "TYPE", "CREATED", "(UTC)", "TEST", "ACC", "MACRO-F1", "LABELS"]
    assert table[2].split() == ["*", V2, "linear", "2026-01-02", "00:00", "0.7600", "0.7500", "9"]
    rows = [json.loads(line) for line in cli("list", "--json").splitlines()]
    assert [(r["version"], r["is_current"], r["path"]) for r in rows] == [
        (V1, False, f"{s3_registry}/{V1}"),
        (V2, True, f"{s3_registry}/{V2}"),
    ]


# -- two real workers on one object-store registry -------------------------------------------------------


def serving_of(conn: redis.Redis, name: str) -> dict[str, str]:
    keys = conn.keys(f"{ServingState.KEY.prefix}{name}-*")
    if len(keys) != 1:
        return {}
    return {k.decode(): v.decode() for k, v in conn.hgetall(keys[0]).items()}


def wait_for(predicate: Callable[[], bool], what: str, procs: list[Proc], timeout: float = 120.0) -> None:
    """wait_until, with the processes' logs when it times out."""
    wait_until(predicate, what, timeout, details=lambda: "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in procs))


@pytest.mark.slow
def test_two_workers_hot_reload_a_version_promoted_by_another_process(
    s3: S3Server,
    bucket: str,
    s3_registry: str,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
) -> None:
    # Process one (this test): register and promote V1.
    register_linear(s3_registry, V1, seed=1)
    registry.promote(s3_registry, V1)
    common = {
        "REDIS_URL": redis_server.url,
        "SLACK_API_URL": fake_slack.api_url,
        "MODEL_DIR": s3_registry,
        "MODEL_STORE_ENDPOINT_URL": s3.url,
        "MODEL_POLL_INTERVAL_S": "0.3",
        **CREDENTIALS,
    }
    caches = {name: tmp_path / f"cache-{name}" for name in ("a", "b")}
    workers: list[Proc] = []
    try:
        # Two workers, as on two machines: each starts with an empty cache and downloads the current version.
        workers = wait_started(
            *(
                launch_worker(
                    product_env(**common, MODEL_CACHE_DIR=str(cache)), tmp_path / f"run-{name}", name=f"worker-{name}"
                )
                for name, cache in caches.items()
            )
        )
        for name, cache in caches.items():
            wait_for(lambda n=name: serving_of(redis_conn, f"worker-{n}").get("version") == V1, "V1", workers)
            assert serving_of(redis_conn, f"worker-{name}")["path"] == str(cache / V1)

        # A half upload named in `current` (by hand, or a promote racing an upload) is never served.
        half_upload(s3, bucket, HALF, caches["a"] / V1)
        s3.put(bucket, "registry/current", f"{HALF}\n".encode())
        for name in caches:
            wait_for(lambda n=name: HALF in serving_of(redis_conn, f"worker-{n}").get("last_error", ""), "error",
                       workers)  # fmt: skip
            assert serving_of(redis_conn, f"worker-{name}")["version"] == V1
        assert not any((cache / HALF).exists() for cache in caches.values())
        registry.set_current(s3_registry, V1)

        # Process three: `python -m training train` fits a linear model, uploads it and promotes it.
        corpus = build_text_folder(tmp_path / "corpus", per_class=10)
        trainer_env = product_env(
            MODEL_DIR=s3_registry,
            MODEL_STORE_ENDPOINT_URL=s3.url,
            MODEL_CACHE_DIR=str(tmp_path / "cache-trainer"),
            DATA_CACHE_DIR=str(tmp_path / "data-cache"),
            **CREDENTIALS,
        )
        args = ["train", "--model-type", "linear", "--data", str(corpus / "text"), "--force"]
        trained = subprocess.run(
            [sys.executable, "-m", "training", *args],
            env=trainer_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert trained.returncode == 0, trained.stderr[-4000:]
        summary = json.loads(trained.stdout.splitlines()[-1])
        new = summary["version"]
        assert summary["promoted"] is True and summary["previous_version"] == V1
        assert Path(summary["path"]) == tmp_path / "cache-trainer" / new
        assert registry.current_version(s3_registry) == new

        # Both workers download it into their own cache and swap it in.
        for name, cache in caches.items():
            wait_for(lambda n=name: serving_of(redis_conn, f"worker-{n}").get("version") == new, "new", workers)
            state = serving_of(redis_conn, f"worker-{name}")
            assert state["path"] == str(cache / new) and state["last_error"] == ""
            assert (cache / new / "metrics.json").is_file()

        queue = classify_queue(redis_conn)
        texts = all_texts()
        jobs = [enqueue_classify(queue, f"ニュース\n{texts[n]}", n) for n in range(6)]
        wait_for(lambda: len(fake_slack.calls_to("chat.postMessage")) >= len(jobs), "replies", workers)
    finally:
        for worker in workers:
            worker.stop()
    for job in jobs:
        job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
        assert job.get_status() == JobStatus.FINISHED
        assert (job.return_value() or {})["model_version"] == new
    assert all(f"model {new}" in call.params["text"] for call in fake_slack.calls_to("chat.postMessage"))
