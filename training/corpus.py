"""Reading the livedoor news corpus (ldcc-20140209): the official archive, a local copy, or its ``text/`` folder.

Layout: ``text/<slug>/<slug>-<id>.txt`` for each article, plus ``text/README.txt``, ``text/CHANGES.txt`` and a
``LICENSE.txt`` in each category folder, which are not articles (a naive ``*.txt`` glob yields 7,376 documents;
the right count is 7,367). In an article file: line 1 the URL, line 2 the date, line 3 the title, the rest the body.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from common.exceptions import CorpusError
from common.labels import SLUGS
from training.leakage import strip_body, strip_title

log = logging.getLogger(__name__)

ARCHIVE_NAME = "ldcc-20140209.tar.gz"
# The official archive's size and digest; a download (or a copy) that differs is refused.
ARCHIVE_SIZE = 8_842_915
ARCHIVE_SHA256 = "c1e0c46e617b8e71a7c6a32452db114e6eb5ea1e384f103f6a6e45e57a4b3221"
DEFAULT_CACHE_DIR = Path(".cache/data")
# One article (its title and text together) is at most this many characters, in every format of training data.
# Real articles run 1,000–3,000 characters; livedoor's longest file is 12,237. A classification record keeps
# 20,000 characters of a body (store.classifications.RECORD_BODY_MAX_CHARS), so an exported correction always
# fits, with room to spare, while one runaway cell cannot cost more than a few hundred KB.
MAX_ARTICLE_CHARS = 50_000
# A character takes at most this many bytes in the encodings read line by line (UTF-8, Shift_JIS, EUC-JP…):
# a file of more bytes than this many times a cap holds more characters than the cap, and is refused unread.
MAX_BYTES_PER_CHAR = 4
# An article file of the corpus is at most this many bytes (its URL and date lines, a little over the cap).
MAX_ARTICLE_FILE_BYTES = MAX_BYTES_PER_CHAR * MAX_ARTICLE_CHARS + 1024

# text/<slug>/<slug>-<digits>.txt, anywhere in the archive or below the given folder.
_ARTICLE_PATH = re.compile(r"(?:^|/)text/(?P<slug>[a-z-]+)/(?P=slug)-(?P<num>\d+)\.txt$")


@dataclass(frozen=True)
class CorpusArticle:
    """One article of the corpus. ``id`` is the file's stem (``sports-watch-4597641``), unique in the corpus."""

    id: str
    slug: str
    url: str
    date: str
    title: str
    body: str


def parse_article(article_id: str, slug: str, raw: str, *, strip_leaks: bool = True) -> CorpusArticle:
    """Parse one article file's text (line 1 URL, line 2 date, line 3 title, then the body)."""
    lines = raw.replace("\r\n", "\n").lstrip("\ufeff").split("\n")
    if len(lines) < 3:
        raise CorpusError(f"{article_id}: not an article file (fewer than 3 lines)")
    url, date, title = (line.strip() for line in lines[:3])
    body = "\n".join(line.rstrip() for line in lines[3:]).strip("\n")
    if strip_leaks:
        title, body = strip_title(title), strip_body(body)
    return CorpusArticle(id=article_id, slug=slug, url=url, date=date, title=title, body=body)


def _match(path: str) -> tuple[str, str] | None:
    """(slug, article id) when ``path`` is an article file of one of the nine categories, else None."""
    found = _ARTICLE_PATH.search(path.replace("\\", "/"))
    if found is None or found["slug"] not in SLUGS:
        return None
    return found["slug"], f"{found['slug']}-{found['num']}"


def _sort_key(article: CorpusArticle) -> tuple[int, int]:
    return SLUGS.index(article.slug), int(article.id.rsplit("-", 1)[1])


def _read_archive(archive: Path) -> Iterator[tuple[str, str, str]]:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                found = _match(member.name)
                if found is None:
                    continue
                _check_size(f"{archive}: {member.name}", member.size)
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                yield found[0], found[1], handle.read().decode("utf-8")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorpusError(f"{archive}: cannot read the corpus archive: {exc}") from exc


def _read_folder(folder: Path) -> Iterator[tuple[str, str, str]]:
    root = folder / "text" if (folder / "text").is_dir() else folder
    for path in sorted(root.rglob("*.txt")):
        found = _match("text/" + path.relative_to(root).as_posix())
        if found is not None:
            _check_size(str(path), path.stat().st_size)
            yield found[0], found[1], path.read_text(encoding="utf-8")


def _check_size(where: str, size: int) -> None:
    if size > MAX_ARTICLE_FILE_BYTES:
        raise CorpusError(f"{where}: {size:,} bytes, more than an article may have ({MAX_ARTICLE_CHARS:,} characters)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, cache_dir: Path) -> Path:
    """The archive at ``url``, downloaded once into ``cache_dir`` with a progress bar and a size/sha256 check."""
    from tqdm.auto import tqdm

    name = Path(urlparse(url).path).name or ARCHIVE_NAME
    target = cache_dir / name
    official = name == ARCHIVE_NAME
    if target.is_file() and (not official or sha256_of(target) == ARCHIVE_SHA256):
        log.info("corpus: using the cached %s", target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    log.info("corpus: downloading %s to %s", url, target)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "newsbot-training"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
            expected = int(response.headers.get("Content-Length") or 0) or (ARCHIVE_SIZE if official else 0)
            with tqdm(total=expected or None, unit="B", unit_scale=True, desc=name) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CorpusError(f"cannot download the corpus from {url}: {exc}") from exc
    size = partial.stat().st_size
    if expected and size != expected:
        partial.unlink()
        raise CorpusError(f"{url}: downloaded {size} bytes, expected {expected}")
    if official and sha256_of(partial) != ARCHIVE_SHA256:
        partial.unlink()
        raise CorpusError(f"{url}: sha256 differs from the official archive's {ARCHIVE_SHA256}")
    partial.replace(target)
    return target


def resolve_source(source: str | Path, cache_dir: Path | None = None) -> Path:
    """A local archive or folder for ``source`` (downloading a URL into the cache)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return download(text, cache_dir or DEFAULT_CACHE_DIR)
    path = Path(text).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {path} (give the archive, its text/ folder, or a URL)")
    return path


def load_corpus(source: str | Path, *, cache_dir: Path | None = None, strip_leaks: bool = True) -> list[CorpusArticle]:
    """Every article of the corpus at ``source`` (archive path, URL, or extracted folder), in a fixed order.

    The order is the category order of :data:`common.labels.SLUGS`, then the article number.
    """
    path = resolve_source(source, cache_dir)
    entries = _read_folder(path) if path.is_dir() else _read_archive(path)
    articles = [parse_article(aid, slug, raw, strip_leaks=strip_leaks) for slug, aid, raw in entries]
    if not articles:
        raise CorpusError(f"{path}: no articles found (expected text/<category>/<category>-<id>.txt files)")
    ids = [a.id for a in articles]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{path}: the same article appears twice")
    articles.sort(key=_sort_key)
    log.info("corpus: %d articles from %s", len(articles), path)
    return articles
