"""Message parsing: Slack link markup, bare URLs, mentions; property-based over generated messages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.articles import (
    MIN_TEXT_BESIDE_LINKS_CHARS,
    article_from_text,
    clean_text,
    extract_urls,
    message_parts,
    remove_urls,
)

HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,10}){1,3}", fullmatch=True)
PATHS = st.from_regex(
    r"(/[A-Za-z0-9._~%-]{0,12}){0,4}(\?[a-z]{1,5}=[0-9]{1,4}(&[a-z]{1,5}=[0-9]{1,4})?)?", fullmatch=True
)
URLS = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}", st.sampled_from(["http", "https"]), HOSTS, PATHS
)
JAPANESE = st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x30FF), min_size=0, max_size=30)


def slack_markup(url: str, label: str | None) -> str:
    escaped = url.replace("&", "&amp;")
    return f"<{escaped}|{label}>" if label else f"<{escaped}>"


@given(st.lists(st.tuples(URLS, st.none() | JAPANESE.filter(bool)), min_size=1, max_size=6), JAPANESE)
def test_links_in_slack_markup_come_back_unescaped_in_order(links: list[tuple[str, str | None]], filler: str) -> None:
    message = "<@UBOT> " + f" {filler} ".join(slack_markup(url, label) for url, label in links)
    expected: list[str] = []
    for url, _label in links:
        if url not in expected:
            expected.append(url)
    assert extract_urls(message) == expected


# In prose a bare URL's trailing period or bracket is the sentence's, not the URL's.
BARE_URLS = URLS.filter(lambda url: url[-1] not in ".,;:!?)]}'\"")


@given(BARE_URLS, JAPANESE, JAPANESE)
def test_a_bare_url_between_japanese_text_is_found(url: str, before: str, after: str) -> None:
    message = f"{before} {url} 、{after}"
    assert extract_urls(message) == [url]
    assert url not in remove_urls(message)


def test_sentence_punctuation_after_a_bare_url_is_not_part_of_it() -> None:
    assert extract_urls("詳しくは http://news.example.jp/a/1. を参照") == ["http://news.example.jp/a/1"]
    assert extract_urls("(see https://example.com/x)") == ["https://example.com/x"]


@given(st.text(max_size=300))
def test_parsers_never_fail_and_return_clean_values(text: str) -> None:
    for url in extract_urls(text):
        assert url.lower().startswith(("http://", "https://"))
        assert not any(ch.isspace() for ch in url)
        assert "<" not in url and ">" not in url
    cleaned = clean_text(text)
    assert clean_text(cleaned) == cleaned  # idempotent
    article = article_from_text(text)
    assert len(article.title) <= 120
    assert article.body or not article.title  # a title never comes without a body
    parts = message_parts(text, max_links=3)
    assert len(parts.urls) <= 3
    assert parts.dropped_urls == max(0, len(extract_urls(text)) - 3)


@given(st.lists(URLS, min_size=6, max_size=10, unique=True))
def test_links_beyond_the_limit_are_counted(urls: list[str]) -> None:
    parts = message_parts(" ".join(f"<{u}>" for u in urls), max_links=5)
    assert parts.urls == urls[:5]
    assert parts.dropped_urls == len(urls) - 5
    assert parts.text is None


def test_short_text_beside_a_link_is_a_comment_long_text_is_an_article() -> None:
    short = message_parts("<@UBOT> これ読んで <https://news.example.jp/a/1>", 5)
    assert short.urls == ["https://news.example.jp/a/1"] and short.text is None
    body = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。" * 8
    assert len(body) >= MIN_TEXT_BESIDE_LINKS_CHARS
    long = message_parts(f"<@UBOT> <https://news.example.jp/a/1>\n{body}", 5)
    assert long.text is not None and long.text.body == body
    alone = message_parts("<@UBOT> 見出し\n本文です。", 5)
    assert alone.urls == [] and alone.text is not None and alone.text.title == "見出し"


def test_mentions_and_other_markup_are_not_text() -> None:
    assert clean_text("<@U123ABC> <!here> <#C1|general> 本文 &amp; more") == "本文 & more"
    assert message_parts("<@UBOT>   ", 5).text is None
