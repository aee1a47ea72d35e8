"""The guarded fetcher against local HTTP servers over real sockets (127.0.0.1 and 127.0.0.2)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.exceptions import LinkRefusedError, LinkUnreachableError, UnsupportedContentError, UnusableArticleError
from testkit.page_server import PageHandler, serve_pages
from worker.extract import article_from_page
from worker.fetch import AddressPolicy, GuardedFetcher, decode_body, is_public

ARTICLE = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。" * 8
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
ONLY_FIRST = [ipaddress.ip_network("127.0.0.1/32")]


def html(title: str, body: str, meta: str = "") -> str:
    head = f"<head>{meta}<title>{title}</title></head>"
    return f"<html>{head}<body><article><h1>{title}</h1><p>{body}</p></article></body></html>"


class Handler(PageHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/utf8":
            self.send(200, html("サッカー日本代表が勝利", ARTICLE).encode(), "text/html; charset=utf-8")
        elif path == "/sjis":
            self.send(200, html("野球の開幕戦", ARTICLE).encode("shift_jis"), "text/html; charset=Shift_JIS")
        elif path == "/eucjp-meta":
            meta = '<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">'
            self.send(200, html("相撲の千秋楽", ARTICLE, meta).encode("euc_jp"), "text/html")
        elif path == "/plain":
            self.send(200, f"テキストの記事\n{ARTICLE}".encode(), "text/plain; charset=utf-8")
        elif path == "/pdf":
            self.send(200, b"%PDF-1.4 ...", "application/pdf")
        elif path == "/short":
            self.send(200, html("会員限定記事", "続きは有料会員になるとお読みいただけます。").encode(), "text/html")
        elif path == "/redirect":
            self.send(302, b"", None, {"Location": query["to"]})
        elif path == "/loop":
            n = int(query.get("n", "0"))
            self.send(302, b"", None, {"Location": f"/loop?n={n + 1}"})
        elif path == "/status404":
            self.send(404, b"not found", "text/html")
        elif path == "/huge-length":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(5 * 1024**3))
            self.end_headers()
            self.wfile.write(b"<html>")
        elif path == "/six-mb":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Connection", "close")  # no Content-Length: the body runs until the socket closes
            self.end_headers()
            chunk = (html("大きなページ", ARTICLE) + "\n").encode() * 64
            sent = 0
            try:
                while sent < 6 * 1024 * 1024:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        elif path == "/slow-headers":
            time.sleep(float(query.get("s", "5")))
            self.send(200, html("遅い", ARTICLE).encode(), "text/html")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"<p>a</p>")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send(404, b"", "text/plain")


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[str, str]]:
    with serve_pages(Handler, "127.0.0.1") as first, serve_pages(Handler, "127.0.0.2") as second:
        yield first, second


def test_loopback_and_private_targets_are_refused_unless_allowed(sites: tuple[str, str]) -> None:
    site, _ = sites
    for url in (f"{site}/utf8", "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"):
        with pytest.raises(LinkRefusedError):
            GuardedFetcher().fetch(url)
    page = GuardedFetcher(LOOPBACK).fetch(f"{site}/utf8")
    assert "サッカー日本代表が勝利" in page.text


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:{port}/utf8",  # 127.0.0.1 as one decimal number
        "http://0x7f000001:{port}/utf8",  # hex
        "http://0x7f.1:{port}/utf8",  # short hex form
        "http://0177.0.0.1:{port}/utf8",  # octal
        "http://127.1:{port}/utf8",  # short dotted form
        "http://[::1]:{port}/utf8",  # IPv6 loopback
        "http://[::ffff:127.0.0.1]:{port}/utf8",  # IPv4-mapped IPv6
        "http://localhost:{port}/utf8",
    ],
)
def test_odd_spellings_of_loopback_are_refused(sites: tuple[str, str], url: str) -> None:
    port = sites[0].rsplit(":", 1)[1]
    with pytest.raises(LinkRefusedError):
        GuardedFetcher().fetch(url.format(port=port))


def test_only_http_and_https(sites: tuple[str, str]) -> None:
    for url in (
        "file:///etc/passwd",
        "ftp://example.com/a",
        "gopher://127.0.0.1:6379/_INFO",
        "http://user:pw@example.com/",
    ):
        with pytest.raises(LinkRefusedError):
            GuardedFetcher(LOOPBACK).fetch(url)


def test_a_redirect_to_a_refused_address_is_refused(sites: tuple[str, str]) -> None:
    allowed, other = sites
    # Allowed: 127.0.0.1 only. The allowed host redirects to 127.0.0.2 (a server that would answer).
    with pytest.raises(LinkRefusedError):
        GuardedFetcher(ONLY_FIRST).fetch(f"{allowed}/redirect?to={other}/utf8")
    with pytest.raises(LinkRefusedError):
        GuardedFetcher(ONLY_FIRST).fetch(f"{allowed}/redirect?to=http://169.254.169.254/")
    # The same redirect is followed when 127.0.0.2 is allowed too: it was the guard that refused it.
    page = GuardedFetcher(LOOPBACK).fetch(f"{allowed}/redirect?to={other}/utf8")
    assert page.final_url == f"{other}/utf8"
    assert "サッカー" in page.text


def test_at_most_five_redirects(sites: tuple[str, str]) -> None:
    with pytest.raises(LinkUnreachableError, match="redirects"):
        GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/loop")


def test_a_six_megabyte_body_is_cut_at_the_limit(sites: tuple[str, str]) -> None:
    page = GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/six-mb")
    assert page.truncated
    assert page.size == 5 * 1024 * 1024
    assert len(page.text.encode()) <= 5 * 1024 * 1024
    assert "\ufffd" not in page.text[-3:]


def test_a_five_gigabyte_content_length_is_refused_up_front(sites: tuple[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(UnsupportedContentError, match="Content-Length"):
        GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/huge-length")
    assert time.monotonic() - started < 2


def test_a_slow_server_is_timed_out(sites: tuple[str, str]) -> None:
    for path in ("/slow-headers?s=5", "/drip"):  # silent, then trickling: one deadline for the whole fetch
        started = time.monotonic()
        with pytest.raises(LinkUnreachableError, match="within"):
            GuardedFetcher(LOOPBACK, timeout_s=1.0).fetch(f"{sites[0]}{path}")
        assert time.monotonic() - started < 2.0


def test_shift_jis_and_euc_jp_pages_are_decoded(sites: tuple[str, str]) -> None:
    fetcher = GuardedFetcher(LOOPBACK)
    sjis = fetcher.fetch(f"{sites[0]}/sjis")
    assert sjis.charset == "cp932"
    assert "野球の開幕戦" in sjis.text
    euc = fetcher.fetch(f"{sites[0]}/eucjp-meta")  # charset only in <meta>
    assert euc.charset == "euc_jp"
    assert "相撲の千秋楽" in euc.text
    article = article_from_page(euc)
    assert article.title == "相撲の千秋楽"
    assert "日本代表" in article.body


def test_only_html_or_plain_text(sites: tuple[str, str]) -> None:
    with pytest.raises(UnsupportedContentError, match="application/pdf"):
        GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/pdf")
    plain = article_from_page(GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/plain"))
    assert plain.title == "テキストの記事"


def test_error_status_and_closed_port_are_unreachable(sites: tuple[str, str]) -> None:
    with pytest.raises(LinkUnreachableError, match="404"):
        GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/status404")
    with pytest.raises(LinkUnreachableError):
        GuardedFetcher(LOOPBACK).fetch("http://127.0.0.1:9/")  # discard port: nothing listens


def test_too_little_text_is_not_an_article(sites: tuple[str, str]) -> None:
    with pytest.raises(UnusableArticleError):
        article_from_page(GuardedFetcher(LOOPBACK).fetch(f"{sites[0]}/short"))


# -- properties of the address policy and the decoder -------------------------------------------------


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_ipv6_mapped_form_get_the_same_verdict(ip: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    policy = AddressPolicy()
    assert policy.allows(ip) == policy.allows(mapped)


@given(
    st.sampled_from(
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10"]
    ).flatmap(lambda net: st.integers(0, ipaddress.ip_network(net).num_addresses - 1).map(lambda i, n=net: (n, i)))
)
def test_internal_ipv4_ranges_are_never_public(net_and_index: tuple[str, int]) -> None:
    net, index = net_and_index
    ip = ipaddress.ip_network(net)[index]
    assert not is_public(ip)
    assert not AddressPolicy().allows(ip)
    assert AddressPolicy([ipaddress.ip_network(net)]).allows(ip)


INTERNAL_V6 = st.one_of(*(st.ip_addresses(v=6, network=n) for n in ("fc00::/7", "fe80::/10", "ff00::/8", "::1/128")))


@given(INTERNAL_V6)
def test_internal_ipv6_ranges_are_never_public(ip: ipaddress.IPv6Address) -> None:
    assert not AddressPolicy().allows(ip)


# cp932 maps these to other characters on the way back (e.g. U+301C 〜 → U+FF5E ～): not round-trippable.
NOT_ROUND_TRIPPING = "\xa2\xa3\xac\u2016\u2212\u301c"


def _round_trips(ch: str) -> bool:
    return ch.encode("cp932").decode("cp932") == ch


@given(
    st.text(
        alphabet=st.characters(
            codec="cp932", exclude_categories=["Cs", "Cc"], exclude_characters=NOT_ROUND_TRIPPING
        ).filter(_round_trips),
        min_size=1,
        max_size=200,
    )
)
def test_shift_jis_bytes_decode_back_to_the_text(text: str) -> None:
    encoded = text.encode("cp932")
    decoded, _charset = decode_body(encoded, "Shift_JIS")
    assert decoded == text
