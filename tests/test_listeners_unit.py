"""The listener functions called directly, in the style of slack-samples/bolt-python-starter-template's tests.

Slack's side (``ack``, ``say``, ``respond``, the Web API ``client``) is mocked; the job submitter is the real
one on the test's Redis, so what a listener enqueues (or does not) is read back from the queue.
"""

from __future__ import annotations

from typing import Any, TypedDict
from unittest.mock import Mock

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from rq import Queue
from slack_bolt import Ack, Respond, Say
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.app import build_app
from bot.listeners.actions import handle_retrain_promote
from bot.listeners.commands.classify_news import handle_classify_news
from bot.listeners.commands.retrain import handle_retrain
from bot.listeners.events import handle_app_mention
from bot.listeners.home import handle_home_rollback
from bot.listeners.shortcuts import handle_classify_message
from bot.submit import JobSubmitter
from common.settings import Settings
from store import retraining
from store.queues import SERIALIZER
from testkit.fake_slack import FakeSlack
from testkit.redis_server import free_port
from ui.commands import classify_usage
from ui.ids import RETRAIN_PROMOTE_ACTION
from ui.retrain import NOTHING_TO_CANCEL
from ui.texts import CLASSIFYING, MENTION_USAGE, NOTHING_TO_CLASSIFY, QUEUE_DOWN

ADMIN = "UADMIN"


def fake(callable_type: type, **kwargs: Any) -> Mock:
    """A mock of one of Bolt's callables (``ack``, ``say``, ``respond``), named after it."""
    return Mock(name=callable_type.__name__.lower(), **kwargs)


class Shared(TypedDict):
    """What bot.context puts in Bolt's context, passed to a listener by keyword as Bolt does."""

    submitter: JobSubmitter
    settings: Settings
    admins: AdminPolicy


def dependencies(conn: redis.Redis, **settings: Any) -> Shared:
    config = Settings(slack_bot_token="xoxb-test", admin_user_ids=[ADMIN], retrain_max_epochs=20, **settings)
    return Shared(submitter=JobSubmitter(conn), settings=config, admins=AdminPolicy(config))


def queued(conn: redis.Redis, queue: str = "classify") -> list[dict[str, Any]]:
    return [job.args[0] for job in Queue(queue, connection=conn, serializer=SERIALIZER).jobs]


def redis_down() -> redis.Redis:
    """A connection to a port nobody listens on, failing at once (no retries)."""
    return redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def mention_body(text: str, event_id: str = "Ev1", ts: str = "1700000000.000100") -> dict[str, Any]:
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": ts, "text": text}
    return {"type": "event_callback", "event_id": event_id, "team_id": "T0001", "event": event}


def command(text: str, name: str = "/classify-news", user: str = "U1", trigger: str = "trig-1") -> dict[str, Any]:
    return {
        "command": name,
        "text": text,
        "user_id": user,
        "channel_id": "C1",
        "trigger_id": trigger,
        "response_url": "https://hooks.slack.test/commands/1",
    }


def shortcut(text: str, trigger: str = "trig-s1") -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "classify_message",
        "trigger_id": trigger,
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "message": {"type": "message", "ts": "1700000000.000300", "text": text},
    }


# --- usage branches ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["<@UBOT>", "<@UBOT> 👍"], ids=["bare mention", "emoji only"])
def test_a_mention_without_article_text_gets_the_usage_line(redis_conn: redis.Redis, text: str) -> None:
    say = fake(Say)
    body = mention_body(text)
    handle_app_mention(event=body["event"], body=body, submitter=JobSubmitter(redis_conn), say=say)
    say.assert_called_once_with(text=MENTION_USAGE, thread_ts="1700000000.000100")
    assert queued(redis_conn) == []


def test_a_redelivered_empty_mention_is_answered_once(redis_conn: redis.Redis) -> None:
    say = fake(Say)
    deps = dependencies(redis_conn)
    for _ in range(3):
        body = mention_body("<@UBOT>", event_id="EvSame")
        handle_app_mention(event=body["event"], body=body, submitter=deps["submitter"], say=say)
    say.assert_called_once()


def test_a_failed_usage_reply_is_posted_on_the_redelivery(redis_conn: redis.Redis) -> None:
    say = fake(Say, side_effect=[OSError("Slack unreachable"), None])
    deps = dependencies(redis_conn)
    body = mention_body("<@UBOT>", event_id="EvFlaky")
    with pytest.raises(OSError, match="unreachable"):
        handle_app_mention(event=body["event"], body=body, submitter=deps["submitter"], say=say)
    handle_app_mention(event=body["event"], body=body, submitter=deps["submitter"], say=say)
    assert say.call_count == 2


def test_a_mention_with_text_is_enqueued_not_answered(redis_conn: redis.Redis) -> None:
    say = fake(Say)
    body = mention_body("<@UBOT> 日本代表は試合終了間際のゴールで勝利した。", ts="1700000000.000500")
    handle_app_mention(event=body["event"], body=body, submitter=JobSubmitter(redis_conn), say=say)
    say.assert_not_called()
    ((payload),) = queued(redis_conn)
    assert (payload["source"], payload["thread_ts"], payload["request_id"]) == ("mention", "1700000000.000500", "Ev1")


@pytest.mark.parametrize("text", ["", "   ", "👍", "<@U2>"])
def test_an_empty_classify_news_is_acked_with_its_usage(redis_conn: redis.Redis, text: str) -> None:
    ack, respond = fake(Ack), fake(Respond)
    handle_classify_news(ack=ack, command=command(text), **dependencies(redis_conn), respond=respond)
    ack.assert_called_once_with(text=classify_usage(), response_type="ephemeral")
    respond.assert_not_called()
    assert queued(redis_conn) == []


@pytest.mark.parametrize("text", ["", "  \n ", "🎉🎉"])
def test_the_shortcut_on_an_empty_message_says_there_is_nothing_to_classify(redis_conn: redis.Redis, text: str) -> None:
    ack, client = fake(Ack), Mock(WebClient)
    handle_classify_message(ack=ack, shortcut=shortcut(text), submitter=JobSubmitter(redis_conn), client=client)
    ack.assert_called_once_with()
    client.chat_postEphemeral.assert_called_once_with(
        channel="C1", user="U1", text=NOTHING_TO_CLASSIFY, thread_ts="1700000000.000300"
    )
    assert queued(redis_conn) == []


# --- refusals ------------------------------------------------------------------------------------------------
def test_retrain_by_a_non_admin_is_refused(redis_conn: redis.Redis) -> None:
    ack, respond, client = fake(Ack), fake(Respond), Mock(WebClient)
    handle_retrain(
        ack=ack,
        command=command("", "/retrain", user="UNOBODY"),
        **dependencies(redis_conn),
        client=client,
        respond=respond,
    )
    ack.assert_called_once_with()
    (refusal,) = respond.call_args_list
    assert "only newsbot admins" in refusal.kwargs["text"] and "管理者のみ" in refusal.kwargs["text"]
    assert refusal.kwargs["response_type"] == "ephemeral"
    client.users_info.assert_not_called()  # ADMINS_INCLUDE_WORKSPACE_ADMINS is off
    assert queued(redis_conn, "train") == [] and queued(redis_conn) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("epochs=-1", "greater than 0"),
        ("epochs=1000", "at most 20"),
        ("base=../../etc", "base must be"),
        ("type=gpt", "bert or linear"),
        ("speed=fast", "unknown option"),
    ],
)
def test_bad_retrain_options_are_refused_with_the_reason(redis_conn: redis.Redis, text: str, reason: str) -> None:
    ack, respond = fake(Ack), fake(Respond)
    deps = dependencies(redis_conn)
    handle_retrain(
        ack=ack,
        command=command(text, "/retrain", user=ADMIN),
        **deps,
        client=Mock(WebClient),
        respond=respond,
    )
    (answer,) = respond.call_args_list
    assert reason in answer.kwargs["text"] and "オプションが正しくありません" in answer.kwargs["text"]
    assert queued(redis_conn, "train") == []
    assert retraining.training_lock(redis_conn) is None  # refused before the lock is taken


def test_retrain_while_a_training_is_queued_is_refused_with_its_status(redis_conn: redis.Redis) -> None:
    deps = dependencies(redis_conn)
    first, second = fake(Respond), fake(Respond)
    retrain = command("type=linear", "/retrain", user=ADMIN, trigger="trig-r1")
    handle_retrain(ack=fake(Ack), command=retrain, **deps, client=Mock(WebClient), respond=first)
    assert "Training queued" in first.call_args.kwargs["text"]
    (job,) = Queue("train", connection=redis_conn, serializer=SERIALIZER).jobs

    again = command("force", "/retrain", user=ADMIN, trigger="trig-r2")
    handle_retrain(ack=fake(Ack), command=again, **deps, client=Mock(WebClient), respond=second)
    (busy,) = second.call_args_list
    assert job.id in busy.kwargs["text"] and "already" in busy.kwargs["text"]
    assert len(queued(redis_conn, "train")) == 1


def test_retrain_cancel_with_nothing_running_says_so(redis_conn: redis.Redis) -> None:
    respond = fake(Respond)
    cancel = command("cancel", "/retrain", user=ADMIN, trigger="trig-c0")
    handle_retrain(ack=fake(Ack), command=cancel, **dependencies(redis_conn), client=Mock(WebClient), respond=respond)
    (answer,) = respond.call_args_list
    assert answer.kwargs == {"text": NOTHING_TO_CANCEL, "response_type": "ephemeral"}
    assert "nothing to cancel" in NOTHING_TO_CANCEL and "実行中の学習はありません" in NOTHING_TO_CANCEL


def test_retrain_cancel_by_a_non_admin_is_refused_and_cancels_nothing(redis_conn: redis.Redis) -> None:
    deps = dependencies(redis_conn)
    retrain = command("type=linear", "/retrain", user=ADMIN, trigger="trig-r1")
    handle_retrain(ack=fake(Ack), command=retrain, **deps, client=Mock(WebClient), respond=fake(Respond))
    (job,) = Queue("train", connection=redis_conn, serializer=SERIALIZER).jobs
    respond = fake(Respond)
    cancel = command("cancel", "/retrain", user="UNOBODY", trigger="trig-c1")
    handle_retrain(ack=fake(Ack), command=cancel, **deps, client=Mock(WebClient), respond=respond)
    assert "only newsbot admins" in respond.call_args.kwargs["text"]
    assert retraining.training_cancel(redis_conn, job.id) is None
    assert len(queued(redis_conn, "train")) == 1 and retraining.training_lock(redis_conn) is not None


def test_retrain_cancel_of_a_queued_training_drops_it_and_frees_the_lock(redis_conn: redis.Redis) -> None:
    deps = dependencies(redis_conn)
    retrain = command("type=linear", "/retrain", user=ADMIN, trigger="trig-r1")
    handle_retrain(ack=fake(Ack), command=retrain, **deps, client=Mock(WebClient), respond=fake(Respond))
    (job,) = Queue("train", connection=redis_conn, serializer=SERIALIZER).jobs
    respond = fake(Respond)
    cancel = command("cancel", "/retrain", user=ADMIN, trigger="trig-c1")
    handle_retrain(ack=fake(Ack), command=cancel, **deps, client=Mock(WebClient), respond=respond)
    (answer,) = respond.call_args_list
    assert job.id in answer.kwargs["text"] and "cancelled before it started" in answer.kwargs["text"]
    assert queued(redis_conn, "train") == [] and retraining.training_lock(redis_conn) is None
    assert job.get_status(refresh=True) == "canceled"
    assert retraining.training_cancel(redis_conn, job.id) == retraining.TrainingCancel(job.id, ADMIN)
    # The next /retrain starts at once.
    again, answer2 = command("type=linear", "/retrain", user=ADMIN, trigger="trig-r2"), fake(Respond)
    handle_retrain(ack=fake(Ack), command=again, **deps, client=Mock(WebClient), respond=answer2)
    assert "Training queued" in answer2.call_args.kwargs["text"]


# --- ack first -----------------------------------------------------------------------------------------------
def test_classify_news_acks_before_it_enqueues(redis_conn: redis.Redis) -> None:
    queue_at_ack: list[int] = []
    ack = fake(Ack, side_effect=lambda **_: queue_at_ack.append(len(queued(redis_conn))))
    handle_classify_news(ack=ack, command=command("試合の記事"), **dependencies(redis_conn), respond=Mock())
    ack.assert_called_once_with(text=CLASSIFYING, response_type="ephemeral")
    assert queue_at_ack == [0] and len(queued(redis_conn)) == 1


def test_retrain_acks_before_asking_slack_who_is_an_admin(redis_conn: redis.Redis) -> None:
    slack = Mock()  # one parent, so the order of calls across ack, client and respond is recorded
    slack.client.users_info.return_value = {"user": {"id": "UOWNER", "is_owner": True, "team_id": "T0001"}}
    slack.client.auth_test.return_value = {"team_id": "T0001"}
    deps = dependencies(redis_conn, admins_include_workspace_admins=True)
    handle_retrain(
        ack=slack.ack,
        command=command("status", "/retrain", user="UOWNER"),
        **deps,
        client=slack.client,
        respond=slack.respond,
    )
    names = [name for name, _args, _kwargs in slack.mock_calls]
    assert names[0] == "ack" and "client.users_info" in names[1:]
    ((payload),) = queued(redis_conn)
    assert payload["user"] == "UOWNER"


def test_the_shortcut_acks_before_enqueueing_or_calling_slack(redis_conn: redis.Redis) -> None:
    slack = Mock()
    queue_at_ack: list[int] = []
    slack.ack.side_effect = lambda: queue_at_ack.append(len(queued(redis_conn)))
    deps = dependencies(redis_conn)
    handle_classify_message(
        ack=slack.ack,
        shortcut=shortcut("新型スマートフォンの記事です。"),
        submitter=deps["submitter"],
        client=slack.client,
    )
    handle_classify_message(
        ack=slack.ack, shortcut=shortcut("", trigger="trig-s2"), submitter=deps["submitter"], client=slack.client
    )
    names = [name for name, _args, _kwargs in slack.mock_calls]
    assert names == ["ack", "ack", "client.chat_postEphemeral"]
    assert queue_at_ack == [0, 1]


# --- Redis down ----------------------------------------------------------------------------------------------
def test_with_redis_down_a_mention_raises_so_that_slack_redelivers_it() -> None:
    say = fake(Say)
    body = mention_body("<@UBOT> 横綱が千秋楽で優勝を決めた。")
    with pytest.raises(RedisError):
        handle_app_mention(event=body["event"], body=body, submitter=JobSubmitter(redis_down()), say=say)
    with pytest.raises(RedisError):  # an empty one too: its usage reply is claimed in Redis first
        handle_app_mention(
            event=body["event"] | {"text": "<@UBOT>"}, body=body, submitter=JobSubmitter(redis_down()), say=say
        )
    say.assert_not_called()


def test_with_redis_down_commands_and_shortcuts_say_the_queue_is_unavailable() -> None:
    respond = fake(Respond)
    handle_classify_news(ack=fake(Ack), command=command("試合の記事"), **dependencies(redis_down()), respond=respond)
    respond.assert_called_once_with(text=QUEUE_DOWN, response_type="ephemeral")

    client = Mock(WebClient)
    handle_classify_message(
        ack=fake(Ack),
        shortcut=shortcut("新型スマートフォンの記事です。"),
        submitter=JobSubmitter(redis_down()),
        client=client,
    )
    client.chat_postEphemeral.assert_called_once_with(
        channel="C1", user="U1", text=QUEUE_DOWN, thread_ts="1700000000.000300"
    )
    assert "ただいま受け付けできません" in QUEUE_DOWN and "cannot take requests" in QUEUE_DOWN


# --- the app -------------------------------------------------------------------------------------------------
def test_the_apps_slack_client_times_out_after_slack_timeout_s(redis_conn: redis.Redis, fake_slack: FakeSlack) -> None:
    settings = Settings(slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url, slack_timeout_s=7)
    app = build_app(settings, JobSubmitter(redis_conn, settings.classify_job_timeout_s))
    assert app.client.timeout == 7


def test_the_submitter_takes_the_classify_timeout_from_the_settings_default(redis_conn: redis.Redis) -> None:
    assert JobSubmitter(redis_conn).classify_timeout_s == Settings(slack_bot_token="x").classify_job_timeout_s


# --- buttons -------------------------------------------------------------------------------------------------
def test_a_home_button_by_a_non_admin_is_refused_on_the_home_and_enqueues_nothing(redis_conn: redis.Redis) -> None:
    ack, client = fake(Ack), Mock(WebClient)
    body = {"type": "block_actions", "user": {"id": "UNOBODY"}, "trigger_id": "trig-h1"}
    handle_home_rollback(ack=ack, body=body, **dependencies(redis_conn), client=client)
    ack.assert_called_once_with()
    (publish,) = client.views_publish.call_args_list
    assert publish.kwargs["user_id"] == "UNOBODY" and ":no_entry:" in str(publish.kwargs["view"])
    assert queued(redis_conn) == []


def test_the_reports_promote_button_by_an_admin_enqueues_the_rollback_job(redis_conn: redis.Redis) -> None:
    ack, respond, client = fake(Ack), fake(Respond), Mock(WebClient)
    body = {"type": "block_actions", "user": {"id": ADMIN}, "trigger_id": "trig-p1", "channel": {"id": "C1"}}
    action = {"action_id": RETRAIN_PROMOTE_ACTION, "value": "20260101-000000-tiny0001"}
    deps = dependencies(redis_conn)
    submitter, admins = deps["submitter"], deps["admins"]
    handle_retrain_promote(
        ack=ack, body=body, action=action, submitter=submitter, admins=admins, client=client, respond=respond
    )
    ((payload),) = queued(redis_conn)
    assert (payload["user"], payload["version"]) == (ADMIN, "20260101-000000-tiny0001")
    assert "20260101-000000-tiny0001" in respond.call_args.kwargs["text"]
