"""Issue 19, items 5 and 6, end to end: editors label today's unsure articles from the App Home's list, and the live
figures move. Real mentions (signed ``app_mention`` events to the running bot in HTTP mode) are answered by the
running worker with the calibrated linear model at CONFIDENCE_THRESHOLD=0.9 (some answers unsure, the stack of
tests/test_confidence_mention.py); an editor (EDITOR_USER_IDS) opens the Home (a signed ``app_home_opened``) and picks
a label in the list (a signed ``block_actions`` from the Home view), and the fake Slack Web API receives every
``views.publish``. The bot's live gauges are read from its /metrics (METRICS_ON_SLACK_PORT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from store.feedback import FeedbackStore
from testkit.fake_slack import FakeSlack
from testkit.processes import running_stack
from testkit.redis_server import RedisServer
from tests.home_models import all_text
from tests.test_bot_home import click_home, homes, open_home
from tests.test_confidence_mention import NOT_SURE, SECRET, TEXTS, mention_all, stack_env
from tests.test_mention_e2e import scrape, value
from tests.test_newsroom_categories import record_id_of
from training.api import TrainOutcome
from ui.admin import EDITORS_ONLY_LABELS
from ui.home import LISTED_UNSURE
from ui.ids import unsure_block_id, unsure_record

EDITOR = "UEDITOR"
MEMBER = "UMEMBER"
LIVE = "実測 / Live"
# Stories from desks the model does not know, which it answers unsure at 0.9 (with two of TEXTS): a list to order.
LOCAL_NEWS = [
    "町内会の秋祭りでは子どもたちが神輿を担ぎ、商店街がにぎわった。",
    "新しい橋の開通式が行われ、地元の住民がテープカットに参加した。",
    "A local bakery won a regional award for its sourdough bread.",
]


def pick(url: str, fake: FakeSlack, user: str, home: dict[str, Any], record_id: str, label: str) -> dict[str, Any]:
    """``user`` picks ``label`` in ``record_id``'s select of the Home ``home`` (the option as the view offers it);
    the Home the bot published next for ``user``."""
    block = next(b for b in home["blocks"] if b.get("block_id") == unsure_block_id(record_id))
    (select,) = block["elements"]
    option = next(o for o in select["options"] if o["value"] == label)
    before = len(homes(fake, user))
    action = {"action_id": select["action_id"], "block_id": block["block_id"], "type": select["type"]}
    click_home(url, user, {**action, "selected_option": option}, secret=SECRET)
    fake.wait_for(lambda f: len(homes(f, user)) > before, timeout=15)
    return homes(fake, user)[-1]


def listed(home: dict[str, Any]) -> list[str]:
    """The record ids of the Home's unsure list, top to bottom."""
    return [rid for b in home["blocks"] if (rid := unsure_record(str(b.get("block_id") or ""))) is not None]


def live_line(home: dict[str, Any]) -> str:
    return next(line for line in all_text(home).splitlines() if line.startswith(LIVE))


def test_an_editor_labels_unsure_articles_from_the_home_list_and_the_live_figures_move(
    tmp_path: Path,
    redis_server: RedisServer,
    fake_slack: FakeSlack,
    redis_conn: redis.Redis,
    calibrated_linear: TrainOutcome,
) -> None:
    version = calibrated_linear.version
    env = stack_env(
        redis_server, fake_slack, calibrated_linear.path.parent, EDITOR_USER_IDS=EDITOR, METRICS_ON_SLACK_PORT="true"
    )
    redis_server.flush()
    with running_stack(env, tmp_path / "run") as (url, _):
        metrics = url.removesuffix("/slack/events") + "/metrics"
        stamps = mention_all(url, [*TEXTS, *LOCAL_NEWS])
        fake_slack.wait_for_calls("chat.postMessage", len(stamps), timeout=60)
        replies = {c.params["thread_ts"]: c.params for c in fake_slack.calls_to("chat.postMessage")}
        unsure = [record_id_of(replies[ts]) for ts in stamps if NOT_SURE in replies[ts]["text"]]
        assert len(unsure) >= 3, [replies[ts]["text"] for ts in stamps]
        store = FeedbackStore(redis_conn)
        predicted = {rid: store.classification(rid).slug for rid in unsure}

        # The editor's Home lists today's unsure articles in the order they were asked about, oldest first (at
        # most LISTED_UNSURE: the rest are counted), with nothing labelled yet.
        home = open_home(url, fake_slack, EDITOR, secret=SECRET)
        assert "Today's unsure articles" in all_text(home)
        assert listed(home) == unsure[:LISTED_UNSURE]
        assert "no answers yet" not in live_line(home)
        assert f"unsure {len(unsure) / len(stamps):.1%} of {len(stamps)} answers" in live_line(home)
        assert "(編集者の確認・訂正 0 件" in live_line(home)
        before = scrape(metrics)
        assert value(before, "newsbot_live_answered", version=version) == len(stamps)
        assert value(before, "newsbot_live_labelled", version=version) == 0
        assert ("newsbot_live_accuracy", frozenset({("version", version)})) not in before  # not measured yet
        # A member's Home has no such list.
        assert "Today's unsure articles" not in all_text(open_home(url, fake_slack, MEMBER, secret=SECRET))

        # Someone who is not an editor picks a label from an editor's Home (as a forged or stale click would):
        # refused on their Home, nothing stored, nothing counted.
        first, second = unsure[0], unsure[1]
        wrong = next(label for label in calibrated_linear.labels.labels if label != predicted[first])
        refused = pick(url, fake_slack, MEMBER, home, first, wrong)
        assert EDITORS_ONLY_LABELS in all_text(refused)
        assert store.for_record(first) == []
        assert value(scrape(metrics), "newsbot_live_labelled", version=version) == 0

        # The editor corrects the oldest: stored as their answer through the feedback path, the article leaves the
        # republished list, and the live figures count one corrected answer (accuracy 0 % of 1).
        after = pick(url, fake_slack, EDITOR, home, first, wrong)
        (answer,) = store.for_record(first)
        assert (answer.user, answer.predicted, answer.chosen) == (EDITOR, predicted[first], wrong)
        assert listed(after) == unsure[1 : LISTED_UNSURE + 1]
        assert "Thanks! Recorded the right category" in all_text(after)
        assert "accuracy 0.0% (編集者の確認・訂正 1 件" in live_line(after)
        scraped = scrape(metrics)
        assert value(scraped, "newsbot_live_labelled", version=version) == 1
        assert value(scraped, "newsbot_live_accuracy", version=version) == 0.0

        # The editor confirms the next one's guess: accuracy 50 % of 2.
        after = pick(url, fake_slack, EDITOR, after, second, predicted[second])
        assert [(a.user, a.chosen) for a in store.for_record(second)] == [(EDITOR, predicted[second])]
        assert listed(after) == unsure[2 : LISTED_UNSURE + 2]
        assert "Recorded as correct" in all_text(after)
        assert "accuracy 50.0% (編集者の確認・訂正 2 件" in live_line(after)
        scraped = scrape(metrics)
        assert value(scraped, "newsbot_live_labelled", version=version) == 2
        assert value(scraped, "newsbot_live_accuracy", version=version) == 0.5
        # Opening the Home again shows the same: the list and the figures are what Redis holds, not the click's.
        again = open_home(url, fake_slack, EDITOR, secret=SECRET)
        assert listed(again) == unsure[2 : LISTED_UNSURE + 2] and live_line(again) == live_line(after)
