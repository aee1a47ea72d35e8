"""Classification records (what the worker classified, kept for feedback and retraining) and the reply
snapshot of each (the reply as Slack last showed it, so that its counts can be updated later)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from common.articles import Article
from common.exceptions import ClassificationNotFoundError, LabelSetError
from common.labels import LIVEDOOR, LabelSet
from store.answers import FeedbackAnswer
from store.record import Key, str_fields

# What a classification record keeps of an article's body. The model reads at most 512 tokens (about 1,000 to
# 1,500 characters of Japanese), from the head or from head and tail; livedoor news articles run 1,000–3,000
# characters. 20,000 characters (about 60 KB in UTF-8) keep every real article whole for retraining while a
# page that is mostly comments or boilerplate cannot cost more (it was 50,000: about 150 KB a record).
RECORD_BODY_MAX_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class ClassificationRecord:
    """What the worker classified for one article, kept for feedback and retraining.

    ``labels`` is the label set (with display names) of the model that classified it, so that the bot offers
    exactly those labels when someone says the prediction is wrong (the bot never reads MODEL_DIR); None for a
    record written before records carried it, which were all livedoor's (:attr:`label_set`).
    """

    KEY: ClassVar[Key] = Key(
        "newsbot:classification:{record_id}",
        "hash, ClassificationRecord",
        "RECORD_TTL_DAYS (setting); none once it has feedback",
    )

    record_id: str
    title: str
    body: str
    url: str
    slug: str
    model_version: str
    channel: str
    ts: str = ""  # the reply's ts ("" until replied, and for replies through response_url)
    created_at: str = ""
    labels: LabelSet | None = None
    unsure: bool = False  # the served decision (False for a record of a release before it: they carried none)

    @property
    def article(self) -> Article:
        return Article(title=self.title, body=self.body)

    @property
    def label_set(self) -> LabelSet:
        """The labels of the model that classified the article (livedoor's for a record without them)."""
        return self.labels if self.labels is not None else LIVEDOOR

    @classmethod
    def key_for(cls, record_id: str) -> str:
        return cls.KEY.key_for(record_id)

    def encode(self) -> dict[str, str]:
        fields = {name: str(getattr(self, name)) for name in _RECORD_TEXT_FIELDS}
        fields["body"] = self.body[:RECORD_BODY_MAX_CHARS]
        fields["labels"] = encode_labels(self.labels)
        fields["unsure"] = "1" if self.unsure else "0"
        return fields

    @classmethod
    def decode(cls, record_id: str, raw: Mapping[Any, Any]) -> ClassificationRecord:
        fields = str_fields(raw)
        title = fields.get("title", "")
        body = fields.get("body")
        if body is None:  # written by an earlier release: `text` held the title and the body together
            text = fields.get("text", "")
            body = text.removeprefix(f"{title}\n") if title else text
        return cls(
            record_id=record_id,
            title=title,
            body=body,
            url=fields.get("url", ""),
            slug=fields.get("slug", ""),
            model_version=fields.get("model_version", ""),
            channel=fields.get("channel", ""),
            ts=fields.get("ts", ""),
            created_at=fields.get("created_at", ""),
            labels=decode_labels(fields.get("labels", "")),
            unsure=fields.get("unsure", "0") == "1",
        )


_RECORD_TEXT_FIELDS = ("title", "body", "url", "slug", "model_version", "channel", "ts", "created_at")


def encode_labels(labels: LabelSet | None) -> str:
    """A label set as compact JSON (:meth:`LabelSet.to_dict`), "" for none."""
    if labels is None:
        return ""
    return json.dumps(labels.to_dict(), ensure_ascii=False, separators=(",", ":"))


def decode_labels(raw: str) -> LabelSet | None:
    """The label set :func:`encode_labels` wrote; None for "" or anything unreadable."""
    if not raw:
        return None
    try:
        return LabelSet.from_json(raw)
    except LabelSetError:
        return None


# HSET the record (ARGV[2..]: field, value, …); EXPIRE it after ARGV[1] s unless 0 or the record has feedback.
_PUT_RECORD = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 1
"""


def put_classification(connection: Redis, record: ClassificationRecord, ttl_s: int = 0) -> None:
    """Store (or overwrite, for a retried job) one classification record.

    It expires after ``ttl_s`` (RECORD_TTL_DAYS; 0: never) unless feedback arrives on it
    (:func:`store.feedback.put_feedback` makes it permanent); a record that already has feedback keeps no TTL.
    """
    fields = [part for item in record.encode().items() for part in item]
    keys = [ClassificationRecord.key_for(record.record_id), FeedbackAnswer.key_for(record.record_id)]
    connection.eval(_PUT_RECORD, len(keys), *keys, max(0, int(ttl_s)), *fields)


def set_reply_ts(connection: Redis, record_ids: Iterable[str], ts: str) -> None:
    """Note on each record the ts of the Slack reply that shows it."""
    with connection.pipeline() as pipe:
        for record_id in record_ids:
            pipe.hset(ClassificationRecord.key_for(record_id), "ts", ts)
        pipe.execute()


def get_classification(connection: Redis, record_id: str) -> ClassificationRecord:
    """The record, or :class:`ClassificationNotFoundError`."""
    raw: dict[Any, Any] = connection.hgetall(ClassificationRecord.key_for(record_id))
    if not raw:
        raise ClassificationNotFoundError(record_id)
    return ClassificationRecord.decode(record_id, raw)


# The reply as Slack last showed it (channel, ts, text, blocks), one per classification record.
REPLY_SNAPSHOT = Key("newsbot:feedback:message:{record_id}", "JSON, the reply as shown", "as its classification record")


# SET the snapshot with the TTL its record has now (none when the record has none); nothing when it is gone.
_PUT_SNAPSHOT = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl == -2 then
    return 0
elseif ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
    redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


def put_reply_snapshot(connection: Redis, record_id: str, message: Mapping[str, Any]) -> None:
    """Remember the classification reply as Slack last showed it (channel, ts, text, blocks).

    It expires with its classification record (kept as long once the record has feedback); a snapshot of a
    record that is gone is not kept.
    """
    keys = [REPLY_SNAPSHOT.key_for(record_id), ClassificationRecord.key_for(record_id)]
    connection.eval(_PUT_SNAPSHOT, len(keys), *keys, json.dumps(dict(message), ensure_ascii=False))


def reply_snapshot(connection: Redis, record_id: str) -> dict[str, Any] | None:
    raw: Any = connection.get(REPLY_SNAPSHOT.key_for(record_id))
    if not raw:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data
