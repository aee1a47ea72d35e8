"""Tokenising only what can be kept gives exactly the ids of tokenising the whole article and cutting."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from common.articles import Article
from testkit.samples import SAMPLES
from newsmodel.inference import MAX_TITLE_CHARS, Truncation, body_prefix, body_suffix, cut_body, encode_article


def reference(tok: PreTrainedTokenizerBase, article: Article, max_length: int, truncation: Truncation) -> Any:
    """The obvious way: tokenise everything, then cut (what encode_article must equal)."""
    title = article.title[:MAX_TITLE_CHARS]
    body_ids = tok(article.body, add_special_tokens=False)["input_ids"]
    if not title:
        budget = max_length - tok.num_special_tokens_to_add(pair=False)
        return dict(tok.prepare_for_model(cut_body(body_ids, budget, truncation), None, truncation=False))
    title_ids = tok(title, add_special_tokens=False)["input_ids"]
    title_ids = title_ids[: max(1, (max_length - tok.num_special_tokens_to_add(pair=True)) // 2)]
    budget = max_length - tok.num_special_tokens_to_add(pair=True) - len(title_ids)
    return dict(tok.prepare_for_model(title_ids, cut_body(body_ids, budget, truncation), truncation=False))


@pytest.fixture(scope="module")
def tok(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(tiny_model))


SENTENCES = [s for texts in SAMPLES.values() for s in texts]
LONG = "\n".join(SENTENCES * 6)  # ~6,000 characters, many sentences


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
@pytest.mark.parametrize("max_length", [16, 32, 64, 512])
@pytest.mark.parametrize(
    "body",
    [LONG, SENTENCES[0], LONG[:300], "。".join(SENTENCES) * 5, "あ" * 5000],
    ids=["long", "one", "300", "no-newlines", "no-sentence-end"],
)
def test_same_ids_as_tokenising_everything(
    tok: PreTrainedTokenizerBase, truncation: Truncation, max_length: int, body: str
) -> None:
    for title in ("スマホの新製品", ""):
        article = Article(title=title, body=body)
        assert encode_article(tok, article, max_length, truncation) == reference(tok, article, max_length, truncation)


def test_prefix_and_suffix_are_cut_at_sentence_ends() -> None:
    assert body_prefix(LONG, 16).endswith(("。", "\n")) and len(body_prefix(LONG, 16)) < len(LONG)
    suffix = body_suffix(LONG, 16)
    assert LONG.endswith(suffix) and len(suffix) < len(LONG)
    assert LONG[len(LONG) - len(suffix) - 1] in "。\n"
    assert body_prefix("短い。", 512) == "短い。" and body_suffix("短い。", 512) == "短い。"


def test_a_megabyte_costs_about_as_much_as_an_article(tok: PreTrainedTokenizerBase) -> None:
    huge = Article(title="長い記事", body=(LONG * 200)[:1_000_000])
    start = time.perf_counter()
    encoded = encode_article(tok, huge, 512, "head_tail")
    assert time.perf_counter() - start < 2.0  # tokenising the whole megabyte takes several seconds
    assert len(encoded["input_ids"]) == 512
