"""Every exception the product raises on purpose, in one flat module.

Each one that can reach a Slack user carries ``user_message``: plain words in Japanese and English.
"""

from __future__ import annotations


class NewsbotError(Exception):
    """Base class. ``user_message`` is what a Slack user is told."""

    user_message: str = "内部エラーが発生しました。/ Something went wrong on our side."


class SettingsError(NewsbotError):
    """A setting is missing or malformed; the process stops at start with this one line."""


class UnknownCategoryError(NewsbotError, KeyError):
    """A slug that is not one of the nine livedoor categories, or a label not in a model's label set."""

    user_message = (
        "そのカテゴリは、この記事を分類したモデルのカテゴリにありません。\n"
        "That category is not one of the categories of the model that classified this article."
    )

    def __init__(self, slug: str) -> None:
        super().__init__(slug)
        self.slug = slug

    def __str__(self) -> str:
        return f"unknown category slug: {self.slug!r}"


class ModelNotFoundError(NewsbotError):
    """No model to serve: nothing trained yet, or MODEL_PATH/MODEL_DIR points nowhere."""

    user_message = (
        "まだ分類モデルがありません。管理者が /retrain を実行してください。\n"
        "No model has been trained yet: an admin must run /retrain."
    )


class InvalidModelError(NewsbotError):
    """A model folder that does not honour the contract (id2label: at least two unique labels, ids 0…n-1; a
    ``labels.json`` that agrees with it), or is corrupt."""

    user_message = (
        "分類モデルが壊れているため使えません。管理者に連絡してください。\n"
        "The classification model is broken; please tell an admin."
    )


class EmptyArticleError(NewsbotError):
    """Nothing to classify after removing mentions, markup and whitespace."""

    user_message = (
        "分類する本文がありません。記事の本文かリンクを送ってください。\n"
        "There is no article text to classify: send the article's text or a link to it."
    )


class CorpusError(NewsbotError):
    """The training corpus cannot be found, downloaded, verified or parsed."""

    user_message = (
        "学習データ (livedoor ニュースコーパス) を読み込めませんでした。管理者に連絡してください。\n"
        "The training data (livedoor news corpus) could not be read; please tell an admin."
    )


class LabelSetError(NewsbotError, ValueError):
    """A label set that cannot be used: fewer than two labels, a repeated or blank one, bad display names."""

    user_message = (
        "カテゴリ (ラベル) の設定が正しくありません。管理者に連絡してください。\n"
        "The category (label) set is not valid; please tell an admin."
    )


class DatasetError(CorpusError):
    """Training data that cannot be used, found before any training starts: ``where`` names the file (and the
    line or row), ``reason_ja``/``reason_en`` say what is wrong and how to fix it."""

    def __init__(self, where: str, reason_ja: str, reason_en: str) -> None:
        super().__init__(f"{where}: {reason_en}")
        self.where = where
        self.reason_ja = reason_ja
        self.reason_en = reason_en
        self.user_message = (
            f"学習データを使えません ({where}): {reason_ja}\nThe training data cannot be used ({where}): {reason_en}"
        )


class TrainingError(NewsbotError):
    """A training run failed; nothing was promoted and ``current`` is unchanged."""

    user_message = (
        "学習に失敗しました。現在のモデルはそのまま使われます。\nTraining failed; the current model is kept as it is."
    )


class TrainingStoppedError(NewsbotError):
    """A training stopped before its end: cancelled by admin ``cancelled_by``, or (None) its worker shutting down.

    Raised from the training's progress callback; nothing is registered or promoted.
    """

    def __init__(self, cancelled_by: str | None = None) -> None:
        super().__init__(f"cancelled by {cancelled_by}" if cancelled_by else "the training worker is shutting down")
        self.cancelled_by = cancelled_by


class InvalidRetrainOptionsError(NewsbotError, ValueError):
    """A /retrain option that is unknown, malformed or out of range; nothing is enqueued."""

    def __init__(self, reason_ja: str, reason_en: str, usage: str) -> None:
        """``usage``: the command's usage line (the bot's ``ui.commands.retrain_usage``)."""
        super().__init__(reason_en)
        self.user_message = (
            f"/retrain のオプションが正しくありません: {reason_ja}\nInvalid /retrain option: {reason_en}\n{usage}"
        )


class NotAdminError(NewsbotError, PermissionError):
    """Someone who is not an admin asked for an admin action (/retrain, rollback, promote)."""

    user_message = (
        "申し訳ありませんが、この操作は管理者のみ実行できます。\n"
        "Sorry, only newsbot admins can do this. Ask an admin to add you to ADMIN_USER_IDS."
    )


class TrainingInProgressError(NewsbotError):
    """A /retrain while another training is queued or running; the running one is reported instead."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.user_message = (
            f"学習はすでに実行中です (`{job_id}`)。新しい学習は開始しませんでした。\n"
            f"A training is already queued or running (`{job_id}`); no new one was started."
        )


class BaseModelNotFoundError(NewsbotError):
    """``base=<folder>`` names no folder in the allowed base-models area."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(f"{name!r} not found in {where}")
        self.user_message = (
            f"ベースモデル `{name}` が見つかりません。\nBase model `{name}` was not found in the base-models folder."
        )


class ClassificationNotFoundError(NewsbotError, KeyError):
    """Feedback on a classification whose record is gone (or never existed)."""

    user_message = (
        "この分類結果の記録が見つからないため、フィードバックを保存できませんでした。\n"
        "This classification is no longer on record, so the feedback could not be saved."
    )


# --- links and serving (worker) ------------------------------------------------------------------


class LinkError(NewsbotError):
    """A linked page could not be used; ``url`` names it and ``user_message`` says why in both languages."""

    reason_ja: str = "このリンクのページを読めませんでした。"
    reason_en: str = "The linked page could not be read."

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__(f"{url}: {detail}" if detail else url)
        self.url = url
        self.detail = detail
        self.user_message = f"{self.reason_ja}\n{self.reason_en}"


class LinkRefusedError(LinkError):
    """The link's scheme or address is not one the fetcher may open (SSRF guard)."""

    reason_ja = "安全のため、このリンクは開けません (内部・特殊なアドレス、または http/https 以外)。"
    reason_en = "For safety this link was not opened (internal or special address, or not http/https)."


class LinkUnreachableError(LinkError):
    """The page did not answer in time, refused the connection, answered with an error, or redirected too often."""

    reason_ja = "リンク先のページに接続できませんでした。"
    reason_en = "The linked page could not be reached."


class UnsupportedContentError(LinkError):
    """The page is not HTML or plain text, or announces a body far larger than an article."""

    reason_ja = "リンク先は記事のページではありません (HTML またはテキストではない、または大きすぎます)。"
    reason_en = "The link does not lead to an article page (not HTML or text, or far too large)."


class UnusableArticleError(LinkError):
    """Nothing usable was extracted: too short, not an article, or behind a paywall."""

    reason_ja = "リンク先から記事の本文を取り出せませんでした (短すぎる、記事ではない、または有料記事の可能性)。"
    reason_en = "No usable article text was found at the link (too short, not an article, or behind a paywall)."


# --- the newsroom workflow: watched channels, desks, threads --------------------------------------


class RouteRefusedError(NewsbotError, ValueError):
    """A ``/classify-news route`` or ``watch`` command that cannot be carried out; nothing is stored."""

    def __init__(self, reason_ja: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.user_message = f"{reason_ja}\n{reason_en}"


class ThreadParentError(NewsbotError):
    """The first message of a thread could not be read (conversations.replies refused or found nothing)."""

    user_message = (
        "スレッドの最初のメッセージを読めませんでした。記事の本文かリンクを添えてメンションしてください。\n"
        "The thread's first message could not be read; mention me with the article's text or link instead."
    )


class BotNotInChannelError(NewsbotError):
    """Slack refused a post because the bot is not a member of the channel (``not_in_channel``)."""

    user_message = (
        "ボットがこのチャンネルに参加していないため、結果はあなたにだけ表示しています。"
        "スレッドに返信させるには、チャンネルで `/invite @newsbot` を実行してください。\n"
        "The bot is not in this channel, so only you see this. To get answers in the thread, "
        "run `/invite @newsbot` in the channel."
    )
