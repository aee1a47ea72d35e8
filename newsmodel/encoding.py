"""Encoding an article for a BERT, the same way in training and serving.

Title and body go in as a sentence pair with only the body truncated (its head, or its head and tail), and a
long body is tokenised only as far as can be kept. Only the tokenizer's interface is used: this module
imports neither torch nor transformers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from common.articles import Article

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Titles longer than this (in characters) are cut, so the title never eats the body's token budget.
MAX_TITLE_CHARS = 128

Truncation = Literal["head", "head_tail"]
# head_tail keeps this share of the body's token budget from its start and the rest from its end
# (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?": head 128 + tail 382 of 510 tokens).
HEAD_SHARE = 0.25

# A token covers at least one character (livedoor text averages under two), so a body's first and last
# CHARS_PER_TOKEN_BOUND × max_length characters, cut at a sentence end, hold every token that can be kept.
CHARS_PER_TOKEN_BOUND = 4
_SENTENCE_END = re.compile(r"[。！？!?\n]")


def cut_body(ids: list[int], budget: int, truncation: Truncation = "head") -> list[int]:
    """At most ``budget`` body token ids: the first ones, or (head_tail) the first quarter and the last rest."""
    if len(ids) <= budget:
        return ids
    if truncation == "head" or budget < 4:
        return ids[:budget]
    head = int(budget * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (budget - head) :]


def body_prefix(body: str, max_length: int) -> str:
    """The body up to the first sentence end after ``CHARS_PER_TOKEN_BOUND * max_length`` characters."""
    cut = CHARS_PER_TOKEN_BOUND * max_length
    if len(body) <= cut:
        return body
    end = _SENTENCE_END.search(body, cut)
    return body if end is None else body[: end.end()]


def body_suffix(body: str, max_length: int) -> str:
    """The body from the last sentence start before its final ``CHARS_PER_TOKEN_BOUND * max_length`` characters."""
    cut = len(body) - CHARS_PER_TOKEN_BOUND * max_length
    if cut <= 0:
        return body
    starts = [m.end() for m in _SENTENCE_END.finditer(body, 0, cut)]
    return body[starts[-1] :] if starts else body


def body_ids(
    tokenizer: PreTrainedTokenizerBase, body: str, budget: int, max_length: int, truncation: Truncation
) -> list[int]:
    """The body's token ids after :func:`cut_body`, tokenising only the parts of a long body that can be kept.

    A megabyte pasted into Slack costs no more than an ordinary article: the ids are the same as cutting the
    whole body's ids (tested), because the head (and tail) come from a prefix (and suffix) that holds more
    tokens than the budget, cut at sentence ends where the word segmentation starts afresh.
    """

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    head_budget = budget if truncation == "head" or budget < 4 else int(budget * HEAD_SHARE)
    prefix = body_prefix(body, max_length)
    if prefix == body:
        return cut_body(ids(body), budget, truncation)
    head = ids(prefix)
    if len(head) < budget:  # unusually long tokens: the prefix does not fill the budget
        return cut_body(ids(body), budget, truncation)
    if head_budget == budget:
        return head[:budget]
    suffix = body_suffix(body, max_length)
    tail = ids(suffix)
    tail_budget = budget - head_budget
    if len(suffix) >= len(body) - len(prefix) or len(tail) < tail_budget:
        return cut_body(ids(body), budget, truncation)
    return head[:head_budget] + tail[len(tail) - tail_budget :]


def encode_article(
    tokenizer: PreTrainedTokenizerBase, article: Article, max_length: int, truncation: Truncation = "head"
) -> dict[str, Any]:
    """Title and body as a sentence pair with only the body truncated (the body alone if there is no title).

    ``truncation`` is how a long body is cut: its head, or its head and tail (``head_tail``).
    """
    title = article.title[:MAX_TITLE_CHARS]
    if title and article.body:
        first_ids = tokenizer(title, add_special_tokens=False)["input_ids"]
        first_ids = first_ids[: max(1, (max_length - tokenizer.num_special_tokens_to_add(pair=True)) // 2)]
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=True) - len(first_ids)
        second_ids = body_ids(tokenizer, article.body, budget, max_length, truncation)
        return dict(tokenizer.prepare_for_model(first_ids, second_ids, truncation=False))
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    only_ids = body_ids(tokenizer, title or article.body, budget, max_length, truncation)
    return dict(tokenizer.prepare_for_model(only_ids, None, truncation=False))
