"""The model registry: version names, atomic registration, listing, promotion, rollback with history."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.exceptions import ModelNotFoundError
from newsmodel import registry


def make_version(model_dir: Path, name: str, macro_f1: float | None = None) -> Path:
    staging = registry.staging_dir(model_dir, name)
    (staging / "config.json").write_text("{}", encoding="utf-8")
    if macro_f1 is not None:
        (staging / "metrics.json").write_text(json.dumps({"accuracy": macro_f1, "macro_f1": macro_f1}))
    return registry.register(model_dir, staging, name)


def test_version_names_sort_by_time_and_are_unique() -> None:
    early = registry.new_version_name(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = registry.new_version_name(datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC))
    assert re.fullmatch(r"20260102-030405-000[0-9a-f]{6}", early)
    assert early < late
    assert len({registry.new_version_name() for _ in range(50)}) == 50
    # Two versions within the same second sort in the order they were made.
    same_second = [datetime(2026, 11, 29, 14, 20, 29, ms * 1000, tzinfo=UTC) for ms in (7, 120, 999)]
    names = [registry.new_version_name(moment) for moment in same_second]
    assert sorted(names) == names and all(registry.VERSION_PATTERN.match(n) for n in names)


def test_only_fully_registered_versions_are_listed(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    make_version(model_dir, "20260101-000000-aaaaaa", 0.9)
    half = registry.staging_dir(model_dir, "20260102-000000-bbbbbb")  # a training still writing (or crashed)
    (half / "config.json").write_text("{}", encoding="utf-8")
    (model_dir / "base").mkdir()  # base models beside the versions are not versions
    versions = registry.list_versions(model_dir)
    assert [v.version for v in versions] == ["20260101-000000-aaaaaa"]
    assert versions[0].metrics == {"accuracy": 0.9, "macro_f1": 0.9}
    assert versions[0].model_type == "bert"
    assert versions[0].created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert not versions[0].is_current
    with pytest.raises(ModelNotFoundError):
        registry.promote(model_dir, "20260102-000000-bbbbbb")
    registry.discard(half)
    assert not half.exists()
    with pytest.raises(FileExistsError):
        make_version(model_dir, "20260101-000000-aaaaaa")


def test_promote_and_rollback_follow_the_history(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    a, b, c = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"
    for name in (a, b, c):
        make_version(model_dir, name)
    with pytest.raises(ModelNotFoundError):
        registry.rollback(model_dir)  # nothing current, nothing to go back to
    registry.promote(model_dir, c)
    registry.promote(model_dir, a)  # an older version can be promoted by hand
    assert registry.current_version(model_dir) == a
    assert [v.version for v in registry.list_versions(model_dir) if v.is_current] == [a]
    assert registry.rollback(model_dir) == c  # the previously current one, not the newest-but-one
    assert registry.current_version(model_dir) == c
    assert registry.rollback(model_dir, b) == b
    assert registry.rollback(model_dir) == c
    actions = [(row["action"], row["version"], row["previous"]) for row in registry.read_history(model_dir)]
    assert actions == [
        ("promote", c, None),
        ("promote", a, c),
        ("rollback", c, a),
        ("rollback", b, c),
        ("rollback", c, b),
    ]
    with pytest.raises(ModelNotFoundError):
        registry.rollback(model_dir, "20990101-000000-ffffff")
    assert registry.current_version(model_dir) == c


def test_rollback_without_history_takes_the_version_before_current(model_registry: Path) -> None:
    make_version(model_registry, "20250101-000000-000001")
    assert registry.current_version(model_registry) == "20260101-000000-tiny0001"  # set with set_current
    assert registry.rollback(model_registry) == "20250101-000000-000001"
    assert registry.read_metrics(model_registry / "20250101-000000-000001") is None
