"""Corrections by trust, in-process: how corrections are sorted (editors, review, daily cap, holdout), who is an
editor (settings and a Slack user group), and the App Home's review queue with its accept and reject buttons."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import redis
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.editors import EditorPolicy
from bot.listeners.home import handle_home_review
from common.labels import LIVEDOOR
from common.settings import Settings
from store import classifications, feedback
from store.answers import FeedbackAnswer
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.reviews import reviews_of
from store.trust import TrustPolicy, in_holdout, sort_by_trust
from testkit.fake_slack import FakeSlack
from tests.home_models import action_ids, all_text, view_of
from ui import home
from ui.ids import HOME_REVIEW_ACCEPT_ACTION, HOME_REVIEW_REJECT_ACTION, review_value

DAY = 1_764_590_400.0  # 2025-12-01 12:00 UTC
EDITORS = TrustPolicy(editors=frozenset({"UEDITOR"}), daily_cap=2, timezone="UTC", holdout_share=0.0)


def answer(record_id: str, user: str, chosen: str, at: float = DAY, predicted: str = "smax") -> FeedbackAnswer:
    return FeedbackAnswer(record_id, user, predicted, chosen, "v1", at)


def put_record(conn: redis.Redis, record_id: str, title: str = "見出し", slug: str = "smax") -> None:
    record = ClassificationRecord(record_id, title, f"{title}の本文です。", "", slug, "v1", "C1", labels=LIVEDOOR)
    classifications.put_classification(conn, record)


# -- sorting by trust ------------------------------------------------------------------------------------------


def test_a_members_correction_is_held_until_an_editor_accepts_it_and_rejected_ones_never_count() -> None:
    from store.reviews import Review

    answers = {
        "r1": [answer("r1", "UMEMBER", "peachy")],
        "r2": [answer("r2", "UMEMBER", "peachy")],
        "r3": [answer("r3", "UMEMBER", "peachy")],
        "r4": [answer("r4", "UMEMBER", "movie-enter")],
        "r5": [answer("r5", "UEDITOR", "peachy", at=DAY + 1)],
    }
    reviews = {
        "r2": {"UMEMBER": Review("r2", "UMEMBER", "peachy", True, "UEDITOR", DAY)},
        "r3": {"UMEMBER": Review("r3", "UMEMBER", "peachy", False, "UEDITOR", DAY)},
        # accepted for another label than the member's answer now: reviewed again
        "r4": {"UMEMBER": Review("r4", "UMEMBER", "peachy", True, "UEDITOR", DAY)},
    }
    sorted_ = sort_by_trust(answers, reviews, EDITORS)
    assert {r: (t.label, t.statuses) for r, t in sorted_.items()} == {
        "r1": (None, {"UMEMBER": "held"}),
        "r2": ("peachy", {"UMEMBER": "used"}),
        "r3": (None, {"UMEMBER": "rejected"}),
        "r4": (None, {"UMEMBER": "held"}),
        "r5": ("peachy", {"UEDITOR": "used"}),
    }


def test_at_most_the_daily_cap_of_a_members_corrections_count_each_day_earliest_first() -> None:
    editor = TrustPolicy(editors=frozenset({"UEDITOR"}), daily_cap=2, timezone="Asia/Tokyo")
    times = [DAY, DAY + 60, DAY + 120, DAY + 86_400]  # three on one day, one the next
    answers = {f"r{n}": [answer(f"r{n}", "UEDITOR", "peachy", at=at)] for n, at in enumerate(times)}
    statuses = {r: t.statuses["UEDITOR"] for r, t in sort_by_trust(answers, {}, editor).items()}
    assert statuses == {"r0": "used", "r1": "used", "r2": "capped", "r3": "used"}


def test_only_counted_answers_vote_and_a_members_confirmation_cannot_outvote_an_editor() -> None:
    answers = {
        "r1": [
            answer("r1", "UEDITOR", "peachy"),
            answer("r1", "UMEMBER", "smax", at=DAY + 1),  # a confirmation by a member: not counted
            answer("r1", "UOTHER", "smax", at=DAY + 2),
        ],
        "r2": [answer("r2", "UEDITOR", "smax"), answer("r2", "UEDITOR2", "peachy", at=DAY + 1)],
    }
    two = replace(EDITORS, editors=frozenset({"UEDITOR", "UEDITOR2"}))
    sorted_ = sort_by_trust(answers, {}, two)
    assert sorted_["r1"].label == "peachy" and sorted_["r1"].statuses == {"UEDITOR": "used"}
    assert sorted_["r2"].label == "peachy"  # one confirmation, one correction: the latest breaks the tie


def test_the_holdout_is_a_fixed_share_of_the_records() -> None:
    ids = [f"C1-{n}.0-0" for n in range(2000)]
    held = [i for i in ids if in_holdout(i, 0.2)]
    assert 300 < len(held) < 500 and held == [i for i in ids if in_holdout(i, 0.2)]
    assert not any(in_holdout(i, 0.0) for i in ids)


def test_the_export_trains_on_trusted_corrections_and_holds_out_editor_confirmed_records(
    redis_conn: redis.Redis, tmp_path: Path
) -> None:
    store = FeedbackStore(redis_conn)
    for n in range(40):
        put_record(redis_conn, f"e{n}")
        feedback.put_feedback(redis_conn, answer(f"e{n}", "UEDITOR", "peachy" if n % 2 else "smax", at=DAY + n))
    put_record(redis_conn, "m1")
    feedback.put_feedback(redis_conn, answer("m1", "UMEMBER", "peachy"))
    policy = TrustPolicy(editors=frozenset({"UEDITOR"}), daily_cap=100, timezone="UTC", holdout_share=0.25)

    summary = store.export_corrections(tmp_path / "train.jsonl", policy, tmp_path / "holdout.jsonl")

    held_out = [f"e{n}" for n in range(40) if in_holdout(f"e{n}", 0.25)]
    trained = [f"e{n}" for n in range(1, 40, 2) if f"e{n}" not in held_out]
    assert summary.held_out == len(held_out) > 0  # confirmations and corrections alike
    assert summary.written == len(trained)
    assert len((tmp_path / "holdout.jsonl").read_text(encoding="utf-8").splitlines()) == len(held_out)
    members = summary.members
    assert members["UMEMBER"].held == 1 and members["UMEMBER"].used == 0
    assert members["UEDITOR"].used == len(trained)
    assert members["UEDITOR"].held_out == sum(1 for r in held_out if int(r[1:]) % 2)


# -- who is an editor --------------------------------------------------------------------------------------------


def test_editors_are_the_admins_the_named_editors_and_the_user_groups_members(fake_slack: FakeSlack) -> None:
    fake_slack.usergroups["SEDITORS"] = ["UGROUP"]
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    settings = Settings(admin_user_ids="UADMIN", editor_user_ids="UEDITOR", editor_usergroup="SEDITORS")
    policy = EditorPolicy(settings)
    assert policy.editors(client) == {"UADMIN", "UEDITOR", "UGROUP"}
    assert not policy.is_editor(client, "UMEMBER") and policy.is_editor(client, "UGROUP")
    (asked,) = fake_slack.calls_to("usergroups.users.list")  # listed once a minute at most, for every policy
    assert asked.params["usergroup"] == "SEDITORS"
    assert EditorPolicy(settings).is_editor(client, "UGROUP") and len(fake_slack.calls_to("usergroups.users.list")) == 1
    trust = policy.trust_policy(client)
    assert (trust.daily_cap, trust.holdout_share, trust.timezone) == (20, 0.2, "Asia/Tokyo")

    unreadable = EditorPolicy(Settings(admin_user_ids="UADMIN", editor_usergroup="SMISSING"))
    assert unreadable.editors(client) == {"UADMIN"}  # a group Slack will not list makes nobody an editor


# -- the App Home's review queue ---------------------------------------------------------------------------------


def click(fake_slack: FakeSlack, conn: redis.Redis, user: str, action_id: str, value: str) -> dict[str, Any]:
    settings = Settings(slack_bot_token="xoxb-test", admin_user_ids="UADMIN", editor_user_ids="UEDITOR")
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    body = {"user": {"id": user}, "trigger_id": "t1"}
    action = {"action_id": action_id, "value": value}
    handle_home_review(Mock(), body, action, FeedbackStore(conn), settings, AdminPolicy(settings), client)
    published = [c for c in fake_slack.calls_to("views.publish") if c.params.get("user_id") == user]
    return view_of(published[-1].params)


def test_an_editor_reviews_a_members_correction_in_the_app_home_and_nothing_is_deleted(
    redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    store = FeedbackStore(redis_conn)
    put_record(redis_conn, "r1", title="新型スマホ <!channel> 発表")
    put_record(redis_conn, "r2", title="美容の記事")
    store.record("r1", "UMEMBER", "peachy")
    store.record("r2", "UMEMBER", "movie-enter")
    store.record("r2", "UEDITOR", "peachy")  # an editor's own correction waits for nobody
    trust = TrustPolicy(editors=frozenset({"UADMIN", "UEDITOR"}))

    view = home.home_view(
        home.gather(redis_conn, "UEDITOR", False, timezone="UTC", classify_response_type="in_channel", trust=trust)
    )
    text = all_text(view)
    assert "Corrections to review" in text and "新型スマホ &lt;!channel&gt; 発表" in text
    assert "<!channel>" not in text
    assert (
        "<@UMEMBER>: モデルの答え / model's answer *エスマックス (スマホ) / S-MAX Smartphones* → 提案 / proposed "
        "*Peachy (女性向け) / Women's Lifestyle*"
    ) in text
    assert action_ids(view).count(HOME_REVIEW_ACCEPT_ACTION) == 2
    member_view = home.home_view(
        home.gather(redis_conn, "UMEMBER", False, timezone="UTC", classify_response_type="in_channel", trust=trust)
    )
    assert "Corrections to review" not in all_text(member_view)  # members see no queue

    # A member cannot review (checked on the server, whatever the view showed).
    refused = click(fake_slack, redis_conn, "UMEMBER", HOME_REVIEW_ACCEPT_ACTION, review_value("UMEMBER", "r1"))
    assert "Only editors" in all_text(refused) and reviews_of(redis_conn, "r1") == {}

    accepted = click(fake_slack, redis_conn, "UEDITOR", HOME_REVIEW_ACCEPT_ACTION, review_value("UMEMBER", "r1"))
    assert "Accepted <@UMEMBER>'s correction" in all_text(accepted)
    decision = reviews_of(redis_conn, "r1")["UMEMBER"]
    assert (decision.accepted, decision.chosen, decision.editor) == (True, "peachy", "UEDITOR")

    rejected = click(fake_slack, redis_conn, "UADMIN", HOME_REVIEW_REJECT_ACTION, review_value("UMEMBER", "r2"))
    text = all_text(rejected)
    assert "Rejected <@UMEMBER>'s correction" in text
    assert "Rejected corrections (kept)" in text and "美容の記事" in text  # still visible to editors
    assert "No corrections wait for review" in text
    assert store.of_user("r2", "UMEMBER") is not None  # nothing deleted
    assert [p.answer.record_id for p in store.pending_reviews(trust)] == []
    exported = io.StringIO()
    store.export_dataset(exported)  # the dataset export shows every correction with its review state
    rows = {row["record_id"]: row["reviews"] for row in map(json.loads, exported.getvalue().splitlines())}
    assert rows == {"r1": {"UMEMBER": "accepted"}, "r2": {"UMEMBER": "rejected", "UEDITOR": "undecided"}}
