"""A random-weight model of the tohoku-nlp/bert-base-japanese-v3 architecture, built from real articles.

Same compute as the real model: vocabulary 32768 (words from MeCab/unidic-lite over the articles, then every
character and ``##`` character, padded to 32768), 12 layers, hidden 768, 12 heads, 512 positions, nine labels;
the real ``BertJapaneseTokenizer`` (mecab + wordpiece). Nothing is downloaded. Cached under ``--cache``.

``train_head`` makes the model "trained" enough for agreement measurements: a logistic-regression head fitted
on the encoder's pooled output of labelled articles (a linear probe), so predictions have real margins instead
of the near-uniform scores of random weights.
"""

from __future__ import annotations

import random
from pathlib import Path

from common.articles import Article
from common.labels import SLUGS, label2id
from training.corpus import CorpusArticle, load_corpus

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ldcc-20140209.tar.gz"
VOCAB_SIZE = 32768
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def sample_articles(n: int, seed: int = 0, skip: int = 0) -> list[CorpusArticle]:
    """``n`` articles drawn at random (fixed seed) from the real corpus, after skipping ``skip`` drawn ones."""
    corpus = load_corpus(CORPUS)
    rng = random.Random(seed)
    rng.shuffle(corpus)
    return corpus[skip : skip + n]


def as_article(item: CorpusArticle) -> Article:
    return Article(title=item.title, body=item.body)


def build(out_dir: Path, articles: list[CorpusArticle]) -> Path:
    if (out_dir / "config.json").is_file():
        return out_dir
    import fugashi
    import torch
    import unidic_lite
    from transformers import BertConfig, BertForSequenceClassification, BertJapaneseTokenizer

    tagger = fugashi.Tagger(f"-d {unidic_lite.DICDIR}")
    counts: dict[str, int] = {}
    chars: set[str] = set()
    for item in articles:
        text = f"{item.title}\n{item.body}"
        chars.update(ch for ch in text if not ch.isspace())
        for word in tagger(text):
            counts[word.surface] = counts.get(word.surface, 0) + 1
    vocab = list(SPECIAL)
    seen = set(vocab)
    char_tokens = [*sorted(chars), *(f"##{c}" for c in sorted(chars))]
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    for token in [*char_tokens, *words]:
        if token not in seen and len(vocab) < VOCAB_SIZE:
            seen.add(token)
            vocab.append(token)
    vocab += [f"[unused{i}]" for i in range(VOCAB_SIZE - len(vocab))]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertJapaneseTokenizer(
        str(out_dir / "vocab.txt"),
        do_lower_case=False,
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "unidic_lite"},
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=512,
        num_labels=len(SLUGS),
        id2label=dict(enumerate(SLUGS)),
        label2id=label2id(),
    )
    BertForSequenceClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def train_head(model_dir: Path, articles: list[CorpusArticle], max_length: int = 128) -> None:
    """Fit the classification head on pooled features of ``articles`` (a linear probe) and save it."""
    marker = model_dir / "head-trained"
    if marker.is_file():
        return
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from newsmodel.encoding import encode_article

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    features: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(articles), 16):
            chunk = [encode_article(tokenizer, as_article(a), max_length) for a in articles[start : start + 16]]
            batch = tokenizer.pad(chunk, return_tensors="pt")
            features.extend(model.bert(**batch).pooler_output.tolist())
    labels = [label2id()[a.slug] for a in articles]
    probe = LogisticRegression(max_iter=2000, C=10.0).fit(features, labels)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(probe.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.tensor(probe.intercept_, dtype=torch.float32))
    model.save_pretrained(model_dir)
    marker.write_text(f"linear probe on {len(articles)} articles at {max_length} tokens\n", encoding="utf-8")
