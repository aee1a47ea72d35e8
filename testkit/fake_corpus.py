"""A small synthetic livedoor-style corpus, with the official layout, built from the test texts in samples.py.

``text/<slug>/<slug>-<id>.txt`` (URL, date, title, body), plus ``text/README.txt``, ``text/CHANGES.txt`` and a
``LICENSE.txt`` in each category folder — the files a naive ``*.txt`` glob wrongly counts as articles. Titles
of some categories carry a site tag (【Sports Watch】, …) and bodies a site navigation block, as the real ones do.
Nothing here comes from the real corpus.
"""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

from testkit.samples import SAMPLES

# A category tag put in front of some titles, and a navigation block put after some bodies (like the real sites).
TAGS = {"sports-watch": "【Sports Watch】", "it-life-hack": "【ITライフハック】", "kaden-channel": "【デジ通】"}
NAVIGATION = {"smax": "\n■関連リンク\n・エスマックス（S-MAX）\n", "it-life-hack": "\n■関連記事\n・ITライフハック\n"}
FILLER = ["詳しくは公式サイトで確認してほしい。", "今後の動向に注目が集まっている。", "関係者は次のように話した。"]
FIRST_ID = 1000000


def article_text(slug: str, number: int, rng: random.Random) -> str:
    texts = SAMPLES[slug]
    title = TAGS.get(slug, "") * (number % 2) + texts[number % len(texts)][:20]
    body = [*rng.sample(texts, k=2), rng.choice(FILLER), texts[(number + 1) % len(texts)]]
    nav = NAVIGATION.get(slug, "") if number % 2 else ""
    url = f"http://news.livedoor.com/article/detail/{FIRST_ID + number}/"
    return f"{url}\n2012-01-{1 + number % 28:02d}T10:00:00+0900\n{title}\n" + "\n".join(body) + "\n" + nav


def build_text_folder(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    """Write ``root/text/…`` with ``per_class`` articles per category (ids differ per category); returns root."""
    rng = random.Random(seed)
    text = root / "text"
    text.mkdir(parents=True, exist_ok=True)
    (text / "README.txt").write_text("livedoor news corpus (synthetic test copy)\n", encoding="utf-8")
    (text / "CHANGES.txt").write_text("2014-02-09 synthetic\n", encoding="utf-8")
    for c, slug in enumerate(SAMPLES):
        folder = text / slug
        folder.mkdir(exist_ok=True)
        (folder / "LICENSE.txt").write_text(f"{slug}: CC BY-ND 2.1 JP (synthetic)\n", encoding="utf-8")
        for number in range(per_class):
            article_id = FIRST_ID + c * 1000 + number
            (folder / f"{slug}-{article_id}.txt").write_text(article_text(slug, number, rng), encoding="utf-8")
    return root


def build_archive(out: Path, per_class: int = 20, seed: int = 0) -> Path:
    """The same corpus as a ``.tar.gz`` with the official member names (``text/...``)."""
    folder = build_text_folder(out.parent / f"{out.stem}-src", per_class, seed)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder / "text", arcname="text")
    return out


def all_article_texts(per_class: int = 20, seed: int = 0) -> list[str]:
    """Every title and body line of the synthetic corpus (to build a tiny BERT's vocabulary)."""
    rng = random.Random(seed)
    lines: list[str] = []
    for slug in SAMPLES:
        for number in range(per_class):
            lines.extend(article_text(slug, number, rng).splitlines()[2:])
    return lines
