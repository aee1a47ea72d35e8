"""Issue 19, item 5: an unsure answer asks the editors "which desk?" with its top three labels as buttons, and a
click is stored as that editor's labelled answer through the feedback path (the bot in HTTP mode, the fake Slack)."""

from __future__ import annotations

import redis

from store.feedback import FeedbackStore
from testkit.fake_slack import FakeSlack
from testkit.slack_requests import block_action
from tests.test_bot_commands import bot_url, classified, counts_block
from ui.ids import pick_action_id, pick_value

__all__ = ["bot_url"]  # the module's bot (a fixture)


def test_an_editor_labels_an_unsure_article_from_its_buttons(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    message = classified(redis_conn, "unsure1")  # predicted sports-watch
    pick = {
        "action_id": pick_action_id(1),
        "block_id": "feedback",
        "value": pick_value("unsure1", "topic-news"),
        "type": "button",
    }
    assert (
        block_action(bot_url, pick, user="UED", message=message, response_url="http://127.0.0.1:9/x").status_code == 200
    )
    (thanks,) = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert thanks.params["user"] == "UED" and "Topic News" in thanks.params["text"]
    (update,) = fake_slack.wait_for_calls("chat.update", 1)
    assert "Wrong: 1" in counts_block(update.params) and "Topic News ×1" in counts_block(update.params)
    answer = FeedbackStore(redis_conn).of_user("unsure1", "UED")
    assert answer is not None and (answer.predicted, answer.chosen) == ("sports-watch", "topic-news")
    # The predicted label among the buttons: recorded as correct.
    pick = {**pick, "action_id": pick_action_id(0), "value": pick_value("unsure1", "sports-watch")}
    block_action(bot_url, pick, user="UED2", message=message, response_url="http://127.0.0.1:9/x")
    thanks = fake_slack.wait_for_calls("chat.postEphemeral", 2)[1]
    assert "Recorded as correct" in thanks.params["text"]
