"""A synthetic newsroom's own labelled articles: four desks (政治, 経済, スポーツ, テック), written for the tests.

Each article is put together from its desk's own subjects, topics and actions, with a date, one or two desk
sentences and a shared filler sentence, so no two are the same and a linear model can learn the desks from the
words. Nothing here comes from a real newsroom. The writers save the same rows as CSV, JSON Lines, Parquet or a
folder per label (``<label>/<n>.txt``: title line, then the text).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

LABELS: tuple[str, ...] = ("政治", "経済", "スポーツ", "テック")
LABEL_NAMES: dict[str, dict[str, str]] = {
    "政治": {"ja": "政治", "en": "Politics"},
    "経済": {"ja": "経済", "en": "Economy"},
    "スポーツ": {"ja": "スポーツ", "en": "Sports"},
    "テック": {"ja": "テクノロジー", "en": "Tech"},
}

_DESKS: dict[str, dict[str, list[str]]] = {
    "政治": {
        "subjects": ["首相", "与党", "野党", "官房長官", "外務大臣", "国会議員", "県知事", "市長"],
        "topics": ["法案", "予算案", "選挙制度", "憲法改正", "外交方針", "税制改正", "内閣改造", "政策協定"],
        "actions": [
            "を閣議決定した",
            "の審議を始めた",
            "を国会に提出した",
            "に反対する声明を出した",
            "を巡って記者会見を開いた",
            "の見直しを表明した",
        ],
        "more": [
            "衆議院の解散も取り沙汰されている。",
            "内閣の支持率は前月から下がった。",
            "与野党の協議は来週も続く。",
            "世論調査では賛否が分かれた。",
            "国会の会期末が迫っている。",
        ],
    },
    "経済": {
        "subjects": ["日銀", "大手銀行", "自動車メーカー", "総合商社", "証券会社", "財務省", "電力会社", "小売り大手"],
        "topics": ["金利", "株価", "為替相場", "四半期決算", "設備投資", "物価", "賃上げ", "輸出"],
        "actions": [
            "の見通しを発表した",
            "の上昇を受けて対応を急いだ",
            "を引き下げた",
            "の動向を注視している",
            "が市場予想を上回ったと発表した",
            "の改善を示した",
        ],
        "more": [
            "円安が続いている。",
            "日経平均株価は続伸した。",
            "消費者物価指数も公表された。",
            "アナリストは慎重な見方を示した。",
            "売上高は過去最高となった。",
        ],
    },
    "スポーツ": {
        "subjects": ["日本代表", "エース投手", "監督", "横綱", "新人選手", "主将", "ストライカー", "マラソン選手"],
        "topics": [
            "決勝戦",
            "開幕戦",
            "五輪予選",
            "日本シリーズ",
            "ワールドカップ",
            "千秋楽",
            "リーグ戦",
            "世界選手権",
        ],
        "actions": [
            "で逆転勝利を収めた",
            "でゴールを決めた",
            "に向けて合宿を始めた",
            "で自己ベストを更新した",
            "で完封した",
            "で優勝を果たした",
        ],
        "more": [
            "スタジアムは満員の観客で埋まった。",
            "ファンから大きな声援が送られた。",
            "次の試合は来週末に行われる。",
            "チームは連勝を伸ばした。",
            "試合後、選手たちは笑顔を見せた。",
        ],
    },
    "テック": {
        "subjects": [
            "新興企業",
            "半導体メーカー",
            "通信会社",
            "研究チーム",
            "大手IT企業",
            "アプリ開発者",
            "クラウド事業者",
            "ゲーム会社",
        ],
        "topics": [
            "生成AI",
            "スマートフォン",
            "クラウドサービス",
            "セキュリティ更新",
            "量子コンピューター",
            "新しいアプリ",
            "5G回線",
            "データセンター",
        ],
        "actions": [
            "を発表した",
            "の提供を始めた",
            "の脆弱性を修正した",
            "を一般に公開した",
            "の性能を大幅に高めた",
            "の開発に成功した",
        ],
        "more": [
            "ユーザーはすぐに試せる。",
            "ソフトウェアの更新は無料だ。",
            "処理速度は従来の二倍になった。",
            "利用者のデータは暗号化される。",
            "対応する端末は順次広がる。",
        ],
    },
}
_FILLER = ["関係者によると、詳細は後日明らかになる。", "今後の動向に注目が集まっている。",
           "担当者は取材に対しコメントを控えた。"]  # fmt: skip


def article(label: str, number: int, rng: random.Random) -> dict[str, str]:
    """One article of desk ``label``: ``{"title", "text", "label"}``."""
    desk = _DESKS[label]
    subject, topic, action = rng.choice(desk["subjects"]), rng.choice(desk["topics"]), rng.choice(desk["actions"])
    date = f"{1 + number % 12}月{1 + (number * 7) % 28}日"
    sentences = [f"{date}、{subject}は{topic}{action}。", *rng.sample(desk["more"], k=2), rng.choice(_FILLER)]
    return {"title": f"{subject}、{topic}{action}", "text": "".join(sentences), "label": label}


def newsroom_rows(per_label: int = 20, seed: int = 0) -> list[dict[str, str]]:
    """``per_label`` articles per desk, the desks interleaved (as an export would list them by date)."""
    rng = random.Random(seed)
    by_label = {label: [article(label, n, rng) for n in range(per_label)] for label in LABELS}
    return [by_label[label][n] for n in range(per_label) for label in LABELS]


def all_newsroom_texts(rows: list[dict[str, str]]) -> list[str]:
    """Titles and texts (to build a tiny BERT's vocabulary)."""
    return [part for row in rows for part in (row["title"], row["text"])]


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, str]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_label_folders(root: Path, rows: list[dict[str, str]]) -> Path:
    """``root/<label>/<n>.txt`` holding the title line and the text."""
    for n, row in enumerate(rows):
        folder = root / row["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n:04d}.txt").write_text(f"{row['title']}\n{row['text']}\n", encoding="utf-8")
    return root
