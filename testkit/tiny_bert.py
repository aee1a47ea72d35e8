"""Tiny random-weight Japanese BERT models, built locally for tests (no hub download).

The vocabulary is made from the given texts with the same word tokenizer the real model uses
(MeCab through fugashi with unidic-lite), and the tokenizer is the real ``BertJapaneseTokenizer``.
Everything is saved with ``save_pretrained``, so loading goes through the product's real
``from_pretrained`` code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(texts: Iterable[str], max_words: int = 4000) -> list[str]:
    import fugashi
    import unidic_lite

    tagger = fugashi.Tagger(f"-d {unidic_lite.DICDIR}")
    counts: dict[str, int] = {}
    chars: set[str] = set()
    for text in texts:
        chars.update(ch for ch in text if not ch.isspace())
        for word in tagger(text):
            counts[word.surface] = counts.get(word.surface, 0) + 1
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words]]
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for token in [*words, *sorted(chars), *(f"##{c}" for c in sorted(chars))]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def build_tiny_bert(
    out_dir: Path,
    texts: Iterable[str],
    *,
    labels: list[str] | None = None,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    """Save a tiny BertForSequenceClassification + BertJapaneseTokenizer to ``out_dir`` and return it."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertJapaneseTokenizer

    from common.labels import SLUGS

    labels = list(labels or SLUGS)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = out_dir / "vocab.txt"
    vocab_file.write_text("\n".join(build_vocab(texts)) + "\n", encoding="utf-8")
    tokenizer = BertJapaneseTokenizer(
        str(vocab_file),
        do_lower_case=False,
        word_tokenizer_type="mecab",
        subword_tokenizer_type="wordpiece",
        mecab_kwargs={"mecab_dic": "unidic_lite"},
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
