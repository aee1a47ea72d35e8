"""Reading the livedoor corpus: layout, parsing, non-article files, leak stripping, verified download."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.exceptions import CorpusError
from common.labels import SLUGS
from testkit.fake_corpus import FIRST_ID, build_archive, build_text_folder
from training import corpus
from training.corpus import load_corpus, parse_article
from training.leakage import has_leak, strip_body, strip_title


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("corpus") / "ldcc-20140209.tar.gz", per_class=12)


def test_archive_and_folder_give_the_same_articles_without_the_non_article_files(archive: Path, tmp_path: Path) -> None:
    from_archive = load_corpus(archive)
    from_folder = load_corpus(build_text_folder(tmp_path, per_class=12))
    from_text_dir = load_corpus(tmp_path / "text")
    assert len(from_archive) == 9 * 12  # README.txt, CHANGES.txt and the nine LICENSE.txt are not articles
    assert from_archive == from_folder == from_text_dir
    assert Counter(a.slug for a in from_archive) == dict.fromkeys(SLUGS, 12)
    assert all(a.id.startswith(a.slug + "-") for a in from_archive)
    # Fixed order: category order of SLUGS, then the article number.
    keys = [(SLUGS.index(a.slug), int(a.id.rsplit("-", 1)[1])) for a in from_archive]
    assert keys == sorted(keys)


def test_parse_article_reads_url_date_title_and_body() -> None:
    raw = "http://news.livedoor.com/article/detail/1/\n2012-01-01T10:00:00+0900\n見出し\n一行目\n\n二行目\n"
    article = parse_article("peachy-1", "peachy", raw)
    assert (article.url, article.date, article.title) == (
        "http://news.livedoor.com/article/detail/1/",
        "2012-01-01T10:00:00+0900",
        "見出し",
    )
    assert article.body == "一行目\n\n二行目"
    with pytest.raises(CorpusError):
        parse_article("peachy-2", "peachy", "only one line")


def test_category_markers_are_stripped_by_default_and_kept_on_request(archive: Path) -> None:
    stripped = {a.id: a for a in load_corpus(archive)}
    kept = {a.id: a for a in load_corpus(archive, strip_leaks=False)}
    tagged = kept[f"sports-watch-{FIRST_ID + 1000 + 1}"]
    assert tagged.title.startswith("【Sports Watch】")
    assert not stripped[tagged.id].title.startswith("【")
    assert stripped[tagged.id].title == tagged.title.removeprefix("【Sports Watch】")
    assert any(has_leak(a.title) or "関連リンク" in a.body for a in kept.values())
    assert not any(has_leak(a.title) for a in stripped.values())
    assert not any("エスマックス" in a.body or "関連リンク" in a.body for a in stripped.values())
    # Content stays: every stripped body is the start of the original one.
    assert all(kept[i].body.startswith(a.body) for i, a in stripped.items())


def test_strip_title_and_body() -> None:
    assert strip_title("【Sports Watch】秋山、対戦迫った!?") == "秋山、対戦迫った!?"
    assert strip_title("旧式Macで禁断のパワーアップ【ITフラッシュバック】") == "旧式Macで禁断のパワーアップ"
    assert strip_title("[Galaxy_Report]新型の実力") == "新型の実力"
    body = "ITライフハック編集部に届いたリリースを読んだ。\n本文の二行目。\n\n■関連記事\n・別の記事\n"
    assert strip_body(body) == "編集部に届いたリリースを読んだ。\n本文の二行目。"
    assert strip_body("本文。\n記事執筆：ゼロから始めるスマートフォン\n続き。") == "本文。\n続き。"


def test_missing_or_empty_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope.tar.gz")
    (tmp_path / "text").mkdir()
    with pytest.raises(CorpusError, match="no articles"):
        load_corpus(tmp_path)
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(CorpusError, match="cannot read"):
        load_corpus(tmp_path / "broken.tar.gz")


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """Serves files of ``tmp_path/www`` over HTTP; records the paths asked for."""
    root = tmp_path / "www"
    root.mkdir()
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            data = (root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, asked
    server.shutdown()
    server.server_close()


def test_download_is_cached(archive: Path, file_server: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, root, asked = file_server
    (root / "corpus-copy.tar.gz").write_bytes(archive.read_bytes())
    cache = tmp_path / "cache"
    first = load_corpus(f"{base}/corpus-copy.tar.gz", cache_dir=cache)
    second = load_corpus(f"{base}/corpus-copy.tar.gz", cache_dir=cache)
    assert first == second == load_corpus(archive)
    assert asked == ["/corpus-copy.tar.gz"]  # the second read came from the cache
    assert (cache / "corpus-copy.tar.gz").read_bytes() == archive.read_bytes()


def test_download_of_the_official_name_is_checked_against_the_official_digest(
    archive: Path, file_server: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, root, _ = file_server
    (root / "ldcc-20140209.tar.gz").write_bytes(archive.read_bytes())  # same name, other bytes
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != corpus.ARCHIVE_SHA256
    with pytest.raises(CorpusError, match="sha256"):
        load_corpus(f"{base}/ldcc-20140209.tar.gz", cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-downloaded is left to be trusted later
