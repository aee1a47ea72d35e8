"""What one link may cost: decompression bombs, charsets that are not text, pathological markup, slow DNS, and
the rule that a link's failure is always that link's LinkError. Pages come from a local HTTP server."""

from __future__ import annotations

import contextlib
import encodings.aliases
import ipaddress
import json
import logging
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from common.exceptions import LinkError, LinkUnreachableError, UnsupportedContentError, UnusableArticleError
from testkit.page_server import PageHandler, serve_pages
from worker.extract import MAX_EXTRACT_CHARS, MIN_EXTRACT_S, fetch_article, markup_for_extraction
from worker.fetch import GuardedFetcher, decode_body, normalise_charset

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。" * 8
TITLE = "サッカー日本代表が勝利"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
GIB = 1024**3
NESTED_UNIT = "<p><b><i>x"
NESTED_PAGE = ("<html><head><title>入れ子</title></head><body>" + NESTED_UNIT * 490_000 + "</body></html>").encode()
# Charsets a page may declare that are not text encodings, or not ones that can read arbitrary bytes.
NOT_PAGE_CHARSETS = ["rot13", "base64", "idna", "undefined", "hex", "zip", "punycode", "bz2", "unicode_escape"]


def page(meta: str = "") -> str:
    head = f"<head>{meta}<title>{TITLE}</title></head>"
    return f"<html>{head}<body><article><h1>{TITLE}</h1><p>{ARTICLE}</p></article></body></html>"


def zeros_deflated(size: int) -> bytes:
    """``size`` zero bytes as a raw deflate stream, compressed a MiB at a time (never held whole)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, compressor.flush()])


def bombs(size: int) -> dict[str, tuple[str, bytes]]:
    """Content-Encoding and body of each bomb: ``size`` zeros once compressed (~1000:1) or compressed twice."""
    raw = zeros_deflated(size)
    crc = 0
    adler = 1
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        crc = zlib.crc32(block, crc)
        adler = zlib.adler32(block, adler)
    gzipped = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", crc, size & 0xFFFFFFFF)
    zlibbed = b"\x78\xda" + raw + struct.pack(">I", adler)
    assert zlib.decompressobj(31).decompress(gzipped, 64) == bytes(64)
    assert zlib.decompressobj(15).decompress(zlibbed, 64) == bytes(64)
    twice = zlib.compressobj(9, zlib.DEFLATED, 31)
    return {
        "gzip": ("gzip", gzipped),
        "deflate": ("deflate", zlibbed),
        "raw-deflate": ("deflate", raw),  # "deflate" as some servers send it: without the zlib wrapper
        "gzip-gzip": ("gzip, gzip", twice.compress(gzipped) + twice.flush()),
    }


BOMBS: dict[str, tuple[str, bytes]] = {}


class Handler(PageHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ok":
            self.send(200, page().encode(), "text/html; charset=utf-8")
        elif url.path == "/bomb":
            encoding, body = BOMBS[query["kind"]]
            self.send(200, body, "text/html; charset=utf-8", {"Content-Encoding": encoding})
        elif url.path == "/gzip-article":
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            body = compressor.compress(page().encode()) + compressor.flush()
            self.send(200, body, "text/html; charset=utf-8", {"Content-Encoding": query.get("as", "gzip")})
        elif url.path == "/charset":
            meta = f'<meta charset="{query["meta"]}">' if "meta" in query else ""
            header = f"text/html; charset={query['header']}" if "header" in query else "text/html"
            self.send(200, page(meta).encode(), header)
        elif url.path == "/nested":
            self.send(200, NESTED_PAGE, "text/html; charset=utf-8")
        else:
            self.send(200, b"", "text/plain")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_pages(Handler) as url:
        yield url


# -- decompression bombs --------------------------------------------------------------------------------------

# Run in a child process so its peak memory (ru_maxrss) is the fetch's alone, under an address-space cap so
# that code without the fix fails with MemoryError instead of hurting the machine.
MEASURE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
import ipaddress
from worker.extract import fetch_article
from worker.fetch import GuardedFetcher
site, kind = sys.argv[1], sys.argv[2]
fetcher = GuardedFetcher([ipaddress.ip_network("127.0.0.0/8")])
fetch_article(fetcher, site + "/ok")  # warm up: imports, parser, first allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    fetch_article(fetcher, site + "/bomb?kind=" + kind)
    outcome = "article"
except BaseException as exc:
    outcome = type(exc).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "growth_kib": after - before}))
"""


@pytest.fixture(scope="module")
def bomb_site(site: str) -> str:
    BOMBS.update(bombs(GIB))
    return site


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "gzip-gzip"])
def test_a_one_gibibyte_bomb_is_refused_within_a_few_megabytes(bomb_site: str, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", MEASURE, bomb_site, kind], capture_output=True, text=True, timeout=120, env=env
    )
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["outcome"] in {"UnsupportedContentError", "UnusableArticleError"}, result
    assert result["growth_kib"] < 50 * 1024, result


def test_stacked_or_unknown_encodings_are_refused_before_reading(bomb_site: str) -> None:
    with pytest.raises(UnsupportedContentError, match="gzip, gzip") as refused:
        fetch_article(GuardedFetcher(LOOPBACK), f"{bomb_site}/bomb?kind=gzip-gzip")
    assert "大きすぎます" in refused.value.user_message
    for encoding in ("br", "zstd", "compress", "gzip, deflate"):
        with pytest.raises(UnsupportedContentError, match="Content-Encoding"):
            GuardedFetcher(LOOPBACK).fetch(f"{bomb_site}/gzip-article?as={encoding}")


def test_a_single_bomb_stops_at_the_byte_limit(bomb_site: str) -> None:
    fetched = GuardedFetcher(LOOPBACK, max_bytes=1024 * 1024).fetch(f"{bomb_site}/bomb?kind=gzip")
    assert fetched.truncated
    assert fetched.size == 1024 * 1024
    with pytest.raises(UnusableArticleError, match="size limit") as unusable:
        fetch_article(GuardedFetcher(LOOPBACK), f"{bomb_site}/bomb?kind=deflate")
    assert "No usable article text" in unusable.value.user_message


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP", "identity, gzip"])
def test_an_honest_gzip_page_is_read(site: str, encoding: str) -> None:
    fetched = GuardedFetcher(LOOPBACK).fetch(f"{site}/gzip-article?as={encoding.replace(' ', '%20')}")
    assert TITLE in fetched.text
    assert fetch_article(GuardedFetcher(LOOPBACK), f"{site}/gzip-article?as=gzip").title == TITLE


# -- charsets -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "charset"),
    [
        *(("meta", name) for name in NOT_PAGE_CHARSETS),
        *(("header", name) for name in NOT_PAGE_CHARSETS),
        ("meta", "no-such-charset"),
        ("header", "no-such-charset"),
        ("meta", "utf-16"),  # a <meta> readable as ASCII is not UTF-16: read as UTF-8, as browsers do
    ],
)
def test_a_charset_that_is_not_a_text_encoding_is_ignored(site: str, where: str, charset: str) -> None:
    fetched = GuardedFetcher(LOOPBACK).fetch(f"{site}/charset?{where}={charset}")
    assert fetched.charset == "utf-8"
    assert TITLE in fetched.text
    assert fetch_article(GuardedFetcher(LOOPBACK), f"{site}/charset?{where}={charset}").title == TITLE


@pytest.mark.parametrize("header", ['"base64"', "'rot13'", "IDNA", " Undefined ", "x-user-defined", "hex;"])
def test_header_charset_spellings_never_raise(header: str) -> None:
    text, charset = decode_body(page().encode(), header.rstrip(";"))
    assert TITLE in text
    assert charset == "utf-8"


def test_no_codec_name_python_knows_makes_decoding_raise() -> None:
    names = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    names |= {"rot13", "base64", "hex", "zip", "idna", "punycode", "undefined", "unicode_escape", "mbcs"}
    body = bytes(range(256)) * 4
    for name in sorted(names):
        meta = f'<meta charset="{name}">'.encode()
        text, charset = decode_body(meta + body, name)
        assert isinstance(text, str)
        assert normalise_charset(charset) is not None, name  # what it used is a page charset


# -- extraction and resolution time ---------------------------------------------------------------------------


def test_pathological_markup_costs_at_most_the_link_time(site: str) -> None:
    fetcher = GuardedFetcher(LOOPBACK, timeout_s=2.0)
    started = time.monotonic()
    with contextlib.suppress(LinkError):  # an article, or this link's error: both are fine, in time
        fetch_article(fetcher, f"{site}/nested")
    assert time.monotonic() - started < max(fetcher.timeout_s, MIN_EXTRACT_S) + 0.75


def test_markup_for_extraction_is_capped_and_linear() -> None:
    small = "<html><script>var a = 1;</script><p>本文</p></html>"
    assert markup_for_extraction(small) == small  # within the cap: untouched
    noisy = "<p>a</p><script>" + "x" * 50 + "</script><!-- c --><STYLE media=x>y</style ><p>b</p>"
    assert markup_for_extraction(noisy, 20) == "<p>a</p><p>b</p>"
    assert markup_for_extraction("<p>a</p><script>" + "x" * 50, 20) == "<p>a</p>"  # unclosed: the rest is script
    assert len(markup_for_extraction("<p>" * 2_000_000)) == MAX_EXTRACT_CHARS
    started = time.monotonic()
    for spam in ("<script>", "<!--", "<style>x"):  # each unclosed opening would rescan the rest if done naively
        assert len(markup_for_extraction(spam * 600_000)) < MAX_EXTRACT_CHARS
    assert time.monotonic() - started < 2.0


def test_slow_name_resolution_counts_against_the_deadline(site: str) -> None:
    port = site.rsplit(":", 1)[1]

    def slow(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["127.0.0.1"]

    started = time.monotonic()
    with pytest.raises(LinkUnreachableError, match="within"):
        fetch_article(GuardedFetcher(LOOPBACK, timeout_s=1.0, resolver=slow), f"http://news.example:{port}/ok")
    assert time.monotonic() - started < 1.5


def test_the_injected_resolver_is_what_connects_and_is_still_guarded(site: str) -> None:
    port = site.rsplit(":", 1)[1]
    seen: list[str] = []

    def local(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["127.0.0.1"]

    assert fetch_article(GuardedFetcher(LOOPBACK, resolver=local), f"http://news.example:{port}/ok").title == TITLE
    assert seen == ["news.example"]
    with pytest.raises(LinkError):  # the same name, not allowed: the guard judges what the resolver said
        fetch_article(GuardedFetcher(resolver=local), f"http://news.example:{port}/ok")

    def failing(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    with pytest.raises(LinkUnreachableError, match="no such name"):
        fetch_article(GuardedFetcher(LOOPBACK, resolver=failing), f"http://news.example:{port}/ok")


def test_any_unexpected_failure_becomes_that_links_error(site: str, caplog: pytest.LogCaptureFixture) -> None:
    port = site.rsplit(":", 1)[1]

    def broken(host: str, port: int) -> list[str]:
        raise RuntimeError("resolver bug")

    with caplog.at_level(logging.ERROR, logger="worker.extract"), pytest.raises(LinkError) as failed:
        fetch_article(GuardedFetcher(LOOPBACK, resolver=broken), f"http://news.example:{port}/ok")
    assert type(failed.value) is LinkError
    assert failed.value.url.endswith("/ok")
    assert "読めませんでした" in failed.value.user_message
    assert "RuntimeError: resolver bug" in caplog.text  # the traceback is logged
    assert "Traceback" in caplog.text
