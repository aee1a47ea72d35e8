"""What newsbot says about the newsroom: answers to the admins' watch and route subcommands, desk posts, and the
notes and warnings about routes. Channel and user ids come from Slack; labels (a newsroom's dataset names them),
what an admin typed and Slack's error codes go through :func:`common.mrkdwn.code` or :func:`~common.mrkdwn.literal`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.audience import Audience
from common.mrkdwn import code, literal
from common.mrkdwn import link as mrkdwn_link
from store.newsroom import Route, Watch
from ui.blocks import context, section
from ui.replies import ArticleResult, reply_message

# --- answers to /classify-news watch · unwatch · watching · route … (to the admin alone) ------------------------


def watching_on(channel: str, audience: Audience | None = None) -> str:
    text = (
        f"<#{channel}> を監視します。リンクか200文字以上の本文がある新しいメッセージを自動で分類します。"
        "ボットがまだこのチャンネルにいない場合は `/invite @newsbot` を実行してください。\n"
        f"Watching <#{channel}>: every new message with a link or 200+ characters of text is classified. "
        "If the bot is not in this channel yet, run `/invite @newsbot`."
    )
    if audience is not None and (audience.private or audience.external):
        text += "\n" + watched_audience_note(channel, audience)
    return text


def watched_audience_note(channel: str, audience: Audience) -> str:
    """What a private or externally shared watched channel means for the routes."""
    ja, en = audience_words(audience)
    if audience.private:
        return (
            f":lock: <#{channel}> は{ja}です。ここの記事は、公開範囲がこのチャンネルより広い転送先 (公開チャンネル、"
            "社外共有チャンネル) には転送しません。スレッドにその旨を書き、転送を設定した管理者に知らせます。"
            "転送したい転送先には `/classify-news route <label> #channel allow-wider` で明示的に許可してください。\n"
            f"<#{channel}> is {en}: its articles are not cross-posted to desks with a wider audience (public or "
            "externally shared channels); the thread says so and the admin who set the route is told. To allow a "
            "desk anyway, set its route with `/classify-news route <label> #channel allow-wider`."
        )
    return (
        f":globe_with_meridians: <#{channel}> は{ja}です。社外の参加者の投稿も分類します。ここの記事は社外共有の"
        "転送先にも転送します。\n"
        f"<#{channel}> is {en}: posts by people of the other organisation are classified too, and its articles "
        "may be cross-posted to externally shared desks as well."
    )


def watching_off(channel: str, was_watched: bool) -> str:
    if not was_watched:
        return f"<#{channel}> は監視していません。\n<#{channel}> was not being watched."
    return f"<#{channel}> の監視をやめました。\nStopped watching <#{channel}>."


def watch_list(watches: Sequence[Watch]) -> str:
    if not watches:
        return "監視中のチャンネルはありません。\nNo channel is being watched."
    lines = ["*監視中のチャンネル / Watched channels*"]
    lines.extend(f"• <#{w.channel}> (by <@{w.by}>)" for w in watches)
    return "\n".join(lines)


def route_list(routes: Sequence[Route]) -> str:
    if not routes:
        return "転送先はまだありません。\nNo routes yet: `/classify-news route <label> #channel`."
    lines = ["*転送先 / Routes*"]
    for route in routes:
        line = f"• {code(route.label)} → <#{route.channel}> (by <@{route.by}>)"
        if route.warned:
            line += " :warning: ボットがチャンネルにいません / the bot is not in that channel"
        if route.allow_wider:
            line += " :unlock: allow-wider"
        if route.paused:
            ja, en = PAUSE_REASONS.get(route.paused, (route.paused, route.paused))
            line += f" :double_vertical_bar: 停止中 ({ja}) / paused ({en})"
        lines.append(line)
    return "\n".join(lines)


def route_checking(label: str, desk: str) -> str:
    return f"<#{desk}> を確認しています… / Checking <#{desk}> for {code(label)}…"


def route_cleared(label: str, had_route: bool) -> str:
    if not had_route:
        return f"{code(label)} の転送先はありません。\n{code(label)} had no route."
    return f"{code(label)} の転送をやめました。\n{code(label)} is no longer cross-posted."


def route_set(
    label: str, desk: str, bot_is_member: bool, audience: Audience | None = None, allow_wider: bool = False
) -> str:
    """The worker stored the route (and says how to invite the bot where it is not in the desk yet); with the
    desk's ``audience``, what that means for articles from narrower channels, or the risk an ``allow_wider``
    route takes."""
    text = (
        f"確信度の高い {code(label)} の記事を <#{desk}> に転送します。\n"
        f"Confident {code(label)} articles from watched channels will be cross-posted to <#{desk}>."
    )
    if not bot_is_member:
        text += (
            f"\n:warning: ボットはまだ <#{desk}> にいません。`/invite @newsbot` を実行してください。"
            f"\nThe bot is not in <#{desk}> yet: run `/invite @newsbot` there."
        )
    if audience is not None:
        text += "\n" + (allow_wider_risk(label, desk, audience) if allow_wider else desk_audience_note(desk, audience))
    return text


# Each audience (common.audience), in words.
AUDIENCE_WORDS: dict[str, tuple[str, str]] = {
    "private": ("非公開チャンネル", "a private channel"),
    "internal": ("ワークスペース内の公開チャンネル", "a public channel of this workspace"),
    "shared": (
        "社外と共有されたチャンネル (Slack コネクト)",
        "a channel shared with another organisation (Slack Connect)",
    ),
    "private-shared": (
        "社外と共有された非公開チャンネル (Slack コネクト)",
        "a private channel shared with another organisation (Slack Connect)",
    ),
}


def audience_words(audience: Audience) -> tuple[str, str]:
    return AUDIENCE_WORDS[audience.key]


def desk_audience_note(desk: str, audience: Audience) -> str:
    """What a desk's audience means for the articles routed to it (no ``allow-wider``)."""
    ja, en = audience_words(audience)
    if audience.private and not audience.external:
        return (
            f"<#{desk}> は{ja}です。非公開チャンネルの記事も転送します。\n"
            f"<#{desk}> is {en}: articles from private watched channels are cross-posted there too."
        )
    return (
        f"<#{desk}> は{ja}です。これより公開範囲の狭いチャンネル (非公開など) の記事は転送しません。\n"
        f"<#{desk}> is {en}: articles from watched channels with a narrower audience (private ones, say) are not "
        "cross-posted there."
    )


def allow_wider_risk(label: str, desk: str, audience: Audience) -> str:
    """The warning an admin gets when a route is opted in with ``allow-wider``."""
    ja, en = audience_words(audience)
    name = literal(label)
    return (
        f":warning: *allow-wider*: <#{desk}> は{ja}です。非公開チャンネルの記事 (解禁前・社外秘の記事も) が、"
        f"そのタイトル、元のチャンネル名、リンクとともに <#{desk}> の全員"
        + ("と社外の参加者" if audience.external else "")
        + "に見えるようになります。やめるには `/classify-news route "
        + f"{name} <#{desk}>` をもう一度 (allow-wider なしで) 実行してください。\n"
        f"*allow-wider*: <#{desk}> is {en}. Articles from private watched channels, embargoed stories included, "
        f"will be shown with their title, source channel and link to everyone in <#{desk}>"
        + (", people of other organisations included" if audience.external else "")
        + f". To undo it, run `/classify-news route {name} <#{desk}>` again without allow-wider."
    )


def route_refusal(desk: str, reason_ja: str, reason_en: str) -> str:
    """The worker refused ``desk`` as a desk channel, for the reason given; nothing was stored."""
    return (
        f":warning: <#{desk}> を転送先にできません: {reason_ja}\n"
        f"<#{desk}> cannot be a desk: {reason_en}\n転送先は変わっていません。/ No route was changed."
    )


def desk_unknown(error: str) -> tuple[str, str]:
    return (
        f"チャンネルが見つかりません ({literal(error)})。非公開チャンネルなら先にボットを招待してください。",
        f"Slack does not know this channel ({literal(error)}); for a private channel, invite the bot first.",
    )


PAUSE_REASONS: dict[str, tuple[str, str]] = {
    "archived": ("チャンネルがアーカイブされました", "the channel was archived"),
    "removed": ("ボットがチャンネルから外されました", "the bot was removed from the channel"),
}


NOT_A_DESK = ("アーカイブ済み、またはチャンネルではありません。", "it is archived, or not a channel.")


# Why a route or watch subcommand was refused (RouteRefusedError's Japanese and English reasons).
NO_WATCH_IN_DM = (
    "ダイレクトメッセージは監視できません (送られた記事は常に分類します)。",
    "A direct message cannot be watched (articles sent to me there are always classified).",
)


def unknown_label(value: str, labels: Sequence[str]) -> tuple[str, str]:
    return (
        f"ラベル {code(value)} は現在のモデルにありません。",
        f"The current model has no label {code(value)}. Labels: " + ", ".join(code(label) for label in labels),
    )


def not_a_channel(value: str) -> tuple[str, str]:
    return (
        f"{code(value)} はチャンネルとして読めません。"
        "入力候補からチャンネルを選ぶか、チャンネル ID (C…) を指定してください。",
        f"{code(value)} is not a channel I can read: pick the channel from Slack's suggestions, or give its id (C…, "
        "at the bottom of the channel's details).",
    )


# --- watched channels' articles: thread notes and desk posts --------------------------------------------------


def unrouted_note(item: ArticleResult, route: Route) -> str:
    """Why a routed article was not cross-posted: the served model was not sure of it (its rule, or
    CONFIDENCE_THRESHOLD's bar, :func:`newsmodel.confidence.judge`)."""
    return (
        f"モデルが確信できないため (確信度 {item.confidence:.0%})、<#{route.channel}> ({code(route.label)}) には"
        "転送しませんでした。\n"
        f"Not cross-posted to <#{route.channel}> ({code(route.label)}): the model is not sure of it (confidence "
        f"{item.confidence:.0%})."
    )


def with_notes(message: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``message`` with the routing notes added (as context blocks), or the notes alone."""
    if not notes:
        return message
    blocks = [context(note) for note in notes]
    text = "\n".join(part for part in (message["text"], *notes) if part)
    return {"text": text, "blocks": [*(message.get("blocks") or []), *blocks]}


def desk_message(item: ArticleResult, channel: str, link: str | None) -> dict[str, Any]:
    """The cross-post: where the article was posted (``channel``, and its permalink ``link``), then the article's
    usual result."""
    source = f"<#{channel}>"
    if link:
        source += " · " + mrkdwn_link(link, "元のメッセージ / original message")
    head = f":newspaper: {source}"
    base = reply_message([item])
    return {"text": f"{head}\n{base['text']}", "blocks": [section(head), *base["blocks"]]}


def desk_warning(route: Route, error: str) -> str:
    """The DM to the admin who set ``route``: its desk channel cannot be posted in (``error``)."""
    label, clear, why = code(route.label), code(f"/classify-news route clear {route.label}"), literal(error)
    return (
        f"{label} の記事を <#{route.channel}> に転送できませんでした ({why})。"
        f"ボットがそのチャンネルに参加していません。<#{route.channel}> で `/invite @newsbot` を実行してください"
        f" (転送をやめるには {clear})。\n"
        f"I could not cross-post {label} articles to <#{route.channel}> ({why}): the bot is not in that "
        f"channel. Run `/invite @newsbot` in <#{route.channel}>, or {clear} to "
        "stop routing them."
    )


def held_note(label: str) -> str:
    """The thread note of an article held back: its desk reaches a wider audience (the desk is not named)."""
    name = literal(label)
    return (
        f"`{name}` の転送先はこのチャンネルより公開範囲が広いため、転送しませんでした (転送を設定した管理者に"
        "知らせました)。\n"
        f"Not cross-posted: the `{name}` desk reaches a wider audience than this channel (the admin who set the "
        "route was told)."
    )


def held_warning(route: Route, source: str, source_audience: Audience | None, desk_audience: Audience | None) -> str:
    """The DM to the admin who set ``route``: an article of ``source`` was held back (once per route and reason)."""
    name = literal(route.label)
    desk = f"<#{route.channel}>"
    if source_audience is None or desk_audience is None:
        return (
            f"<#{source}> の `{name}` の記事を {desk} に転送しませんでした: チャンネルの公開範囲を Slack で確認でき"
            "ませんでした。確認できるまで転送しません。\n"
            f"I held back a `{name}` article of <#{source}> from {desk}: Slack would not tell me who can read the "
            "channels, so nothing is cross-posted until it does."
        )
    (src_ja, src_en), (desk_ja, desk_en) = audience_words(source_audience), audience_words(desk_audience)
    return (
        f"<#{source}> ({src_ja}) の `{name}` の記事を {desk} ({desk_ja}) に転送しませんでした: 転送先のほうが"
        "公開範囲が広く、記事 (解禁前・社外秘の記事かもしれません) がそのチャンネルの読めない人に見えてしまいます。"
        f"それでも転送するには `/classify-news route {name} {desk} allow-wider`、転送をやめるには "
        f"`/classify-news route clear {name}` を実行してください。\n"
        f"I held back a `{name}` article of <#{source}> ({src_en}) from {desk} ({desk_en}): the desk reaches a wider "
        "audience, so people who cannot read the article's channel would see it (it may be embargoed). To "
        f"cross-post such articles anyway, run `/classify-news route {name} {desk} allow-wider`; to stop, "
        f"`/classify-news route clear {name}`."
    )


# --- channel lifecycle: what the admin who set a watch or route is told ---------------------------------------

LIFECYCLE_WORDS: dict[str, tuple[str, str]] = {
    "archived": ("アーカイブされました", "was archived"),
    "deleted": ("削除されました", "was deleted"),
    "removed": ("からボットが外されました", "no longer has the bot in it (it was removed)"),
}


def watch_ended(channel: str, what: str) -> str:
    """The watch of ``channel`` was removed because the channel ``what`` (archived, deleted, bot removed)."""
    ja, en = LIFECYCLE_WORDS[what]
    return (
        f"<#{channel}> {ja}。このチャンネルの監視をやめました。再開するには、ボットを招待して (`/invite @newsbot`) "
        "チャンネルで `/classify-news watch` を実行してください。\n"
        f"<#{channel}> {en}, so I stopped watching it. To watch it again, invite the bot (`/invite @newsbot`) and "
        "run `/classify-news watch` there."
    )


def route_ended(route: Route, what: str, paused: bool) -> str:
    """The route of ``route.label`` was paused (or removed: its desk was deleted) because the desk ``what``."""
    ja, en = LIFECYCLE_WORDS[what]
    name = literal(route.label)
    desk = f"<#{route.channel}>"
    if not paused:
        return (
            f"転送先 {desk} {ja}。`{name}` の転送設定を削除しました。別の転送先は "
            f"`/classify-news route {name} #channel` で設定できます。\n"
            f"The desk {desk} {en}, so I removed the `{name}` route. Set another desk with "
            f"`/classify-news route {name} #channel`."
        )
    return (
        f"転送先 {desk} {ja}。`{name}` の転送を一時停止しました。再開するには、ボットが投稿できるようにしてから "
        f"`/classify-news route {name} {desk}` を実行してください (やめるには `/classify-news route clear {name}`)。\n"
        f"The desk {desk} {en}, so I paused the `{name}` route. To resume it, make sure the bot can post there, "
        f"then run `/classify-news route {name} {desk}` (or `/classify-news route clear {name}` to drop it)."
    )


def desk_audience_changed(route: Route, audience: Audience, held: bool) -> str:
    """A desk's privacy or sharing changed: its new audience, and whether articles of narrower channels are now
    held (or an ``allow-wider`` opt-in no longer covers it)."""
    ja, en = audience_words(audience)
    name = literal(route.label)
    desk = f"<#{route.channel}>"
    text = f"転送先 {desk} (`{name}`) の公開範囲が変わり、{ja}になりました。\nThe desk {desk} (`{name}`) is now {en}."
    if held:
        text += (
            "\nこれより公開範囲の狭いチャンネルの記事は転送しません"
            + (" (以前の allow-wider はこの公開範囲には及びません)" if route.allow_wider else "")
            + f"。必要なら `/classify-news route {name} {desk} allow-wider` で許可してください。"
            "\nArticles from watched channels with a narrower audience will be held back"
            + (" (the earlier allow-wider does not cover this audience)" if route.allow_wider else "")
            + f"; to allow them, run `/classify-news route {name} {desk} allow-wider`."
        )
    return text


def watched_audience_changed(channel: str, audience: Audience) -> str:
    """A watched channel's privacy or sharing changed: what that means for its articles' routes."""
    ja, en = audience_words(audience)
    text = f"監視中の <#{channel}> の公開範囲が変わり、{ja}になりました。\nThe watched <#{channel}> is now {en}."
    if audience.private or audience.external:
        text += "\n" + watched_audience_note(channel, audience)
    return text
