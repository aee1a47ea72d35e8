"""Loading a trained classifier from a save_pretrained folder and predicting with it.

This is the model contract between training and serving: any sequence-classification folder whose
``config.json`` maps its label ids to the nine category slugs can be served.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from common.articles import Article
from common.exceptions import InvalidModelError, ModelNotFoundError
from common.labels import SLUGS

log = logging.getLogger(__name__)

# Titles longer than this (in characters) are cut, so the title never eats the body's token budget.
MAX_TITLE_CHARS = 128
# On CPU a padding token costs as much as a real one, and batching 512-token sequences gains nothing (the
# matrix products are large already), so a CPU forward pass groups only articles of about the same length:
# padding at most this share of the pass's tokens (benchmarks/queue_overhead.py: a burst of 20 articles
# padded to 512 together took 1.3x the time of the same articles one by one).
CPU_MAX_PADDING = 0.1


@dataclass(frozen=True, slots=True)
class Prediction:
    """Probabilities for all nine slugs; ``slug`` is the most probable."""

    scores: dict[str, float]

    @property
    def slug(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)

    @property
    def confidence(self) -> float:
        return self.scores[self.slug]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


class Classifier(Protocol):
    """What the worker serves and ``python -m training predict`` uses, whatever the model kind."""

    version: str
    path: Path

    def predict(self, articles: Sequence[Article]) -> list[Prediction]: ...


Truncation = Literal["head", "head_tail"]
# head_tail keeps this share of the body's token budget from its start and the rest from its end
# (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?": head 128 + tail 382 of 510 tokens).
HEAD_SHARE = 0.25


def cut_body(ids: list[int], budget: int, truncation: Truncation = "head") -> list[int]:
    """At most ``budget`` body token ids: the first ones, or (head_tail) the first quarter and the last rest."""
    if len(ids) <= budget:
        return ids
    if truncation == "head" or budget < 4:
        return ids[:budget]
    head = int(budget * HEAD_SHARE)
    return ids[:head] + ids[len(ids) - (budget - head) :]


# A token covers at least one character (livedoor text averages under two), so a body's first and last
# CHARS_PER_TOKEN_BOUND × max_length characters, cut at a sentence end, hold every token that can be kept.
CHARS_PER_TOKEN_BOUND = 4
_SENTENCE_END = re.compile(r"[。！？!?\n]")


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


def length_chunks(lengths: Sequence[int], batch_size: int, max_padding: float = CPU_MAX_PADDING) -> list[list[int]]:
    """Indices grouped into forward passes: by ascending length, at most ``batch_size`` per pass, and
    a pass closed before its padding (tokens added to reach its longest member) would exceed ``max_padding``
    of its padded tokens."""
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        padded = (len(current) + 1) * length
        if current and (len(current) >= batch_size or padded - (real + length) > max_padding * padded):
            chunks.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        chunks.append(current)
    return chunks


def validate_label_map(id2label: dict[int, str], where: Path) -> list[str]:
    """The slugs in label-id order; raises :class:`InvalidModelError` unless they are exactly the nine."""
    labels = [id2label[i] for i in sorted(id2label)]
    if sorted(labels) != sorted(SLUGS):
        raise InvalidModelError(f"{where}: id2label must hold the nine category slugs, found {labels}")
    return labels


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_batch_size(device: torch.device, max_length: int, hidden: int = 768, heads: int = 12, cap: int = 512) -> int:
    """Articles per forward pass that fit in half the GPU's free memory at ``max_length`` tokens (16-bit).

    Inference keeps one layer's activations at a time: the attention scores (heads x L x L) and the
    feed-forward block (L x 4·hidden), counted three times over for temporaries.
    """
    free, _total = torch.cuda.mem_get_info(device)
    per_article = 3 * 2 * (heads * max_length * max_length + max_length * 4 * hidden)
    return max(8, min(cap, int(free * 0.5) // per_article))


def _pool_tokenizer_init(path: str) -> None:
    global _POOL_TOKENIZER
    _POOL_TOKENIZER = AutoTokenizer.from_pretrained(path)


def _pool_encode(articles: list[Article], max_length: int, truncation: Truncation) -> list[dict[str, Any]]:
    assert _POOL_TOKENIZER is not None
    return [encode_article(_POOL_TOKENIZER, a, max_length, truncation) for a in articles]


_POOL_TOKENIZER: PreTrainedTokenizerBase | None = None


class BertClassifier:
    """A fine-tuned transformers sequence classifier, loaded once and kept.

    ``predict`` sorts the articles by length and pads each chunk of ``batch_size`` only to its own longest
    (dynamic padding), so short articles in a batch do not pay for long ones. On CPU (no tokenizer pool) the
    chunks are cut by token count instead: at most ``batch_size`` articles whose padding stays within
    CPU_MAX_PADDING (see :func:`length_chunks`). On CUDA the weights are bf16 (fp16 where bf16 is
    unsupported); on CPU fp32. ``tokenizer_workers`` > 0 tokenises in that many
    processes (the Japanese tokenizer is pure Python, ~200 articles/s per core: a GPU outruns one core
    by far), overlapping the tokenisation of later chunks with the forward pass of earlier ones.
    """

    def __init__(
        self,
        path: Path,
        version: str | None = None,
        *,
        device: str | None = None,
        max_length: int = 512,
        batch_size: int = 16,
        truncation: Truncation = "head",
        tokenizer_workers: int = 0,
    ) -> None:
        self.path = path
        self.version = version or path.resolve().name
        self.device = pick_device(device)
        self.max_length = max_length
        self.batch_size = batch_size
        self.truncation: Truncation = truncation
        self.forward_passes = 0
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise InvalidModelError(f"{path}: cannot load model: {exc}") from exc
        self.labels = validate_label_map(dict(model.config.id2label), path)
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            model = model.to(dtype=dtype)
        self.model = model.to(self.device).eval()
        self._pool: ProcessPoolExecutor | None = None
        self.tokenizer_workers = 0
        self.start_tokenizer_pool(tokenizer_workers)

    def start_tokenizer_pool(self, workers: int) -> None:
        """Tokenise in ``workers`` processes from now on (0: in this process)."""
        self.close()
        self.tokenizer_workers = max(0, workers)
        if self.tokenizer_workers:
            # spawn: a fresh interpreter that loads only the tokenizer (never fork a process that holds CUDA).
            self._pool = ProcessPoolExecutor(
                self.tokenizer_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_pool_tokenizer_init,
                initargs=(str(self.path),),
            )

    def close(self) -> None:
        """Stop the tokenizer processes, if any (the model itself is freed with the object)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def encode(self, articles: Sequence[Article]) -> list[dict[str, Any]]:
        return [encode_article(self.tokenizer, a, self.max_length, self.truncation) for a in articles]

    def _encoded_chunks(self, articles: Sequence[Article]) -> Iterator[list[dict[str, Any]]]:
        """Features of consecutive chunks of ``batch_size`` articles, tokenised ahead in the pool if any."""
        chunks = [list(articles[i : i + self.batch_size]) for i in range(0, len(articles), self.batch_size)]
        if self._pool is None or len(articles) < 2:
            for chunk in chunks:
                yield self.encode(chunk)
            return
        # Split each chunk among the pool's processes; all submitted at once, consumed in order.
        per = max(1, -(-self.batch_size // max(1, self.tokenizer_workers)))
        futures = [
            [
                self._pool.submit(_pool_encode, chunk[i : i + per], self.max_length, self.truncation)
                for i in range(0, len(chunk), per)
            ]
            for chunk in chunks
        ]
        for parts in futures:
            yield [feature for part in parts for feature in part.result()]

    def _forward(self, features: list[dict[str, Any]]) -> list[list[float]]:
        batch = self.tokenizer.pad(features, return_tensors="pt").to(self.device)
        self.forward_passes += 1
        rows: list[list[float]] = self.model(**batch).logits.float().softmax(dim=-1).cpu().tolist()
        return rows

    @torch.inference_mode()
    def predict(self, articles: Sequence[Article]) -> list[Prediction]:
        if self.device.type == "cpu" and self._pool is None:
            features = self.encode(articles)
            probs_at: dict[int, list[float]] = {}
            for chunk in length_chunks([len(f["input_ids"]) for f in features], self.batch_size):
                probs_at.update(zip(chunk, self._forward([features[i] for i in chunk]), strict=True))
            return [Prediction(dict(zip(self.labels, probs_at[i], strict=True))) for i in range(len(articles))]
        order = sorted(range(len(articles)), key=lambda i: len(articles[i].title) + len(articles[i].body))
        ordered = [articles[i] for i in order]
        probs: list[list[float]] = []
        for features in self._encoded_chunks(ordered):
            probs.extend(self._forward(features))
        out: list[Prediction | None] = [None] * len(articles)
        for position, row in zip(order, probs, strict=True):
            out[position] = Prediction(dict(zip(self.labels, row, strict=True)))
        return [p for p in out if p is not None]


def load_classifier(path: Path, version: str | None = None, *, device: str | None = None) -> Classifier:
    """Load the classifier saved in ``path``: the linear model's files, or a save_pretrained folder."""
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} is not a model folder")
    from training.linear import LinearClassifier, is_linear_folder

    if is_linear_folder(path):
        return LinearClassifier(path, version)
    if not (path / "config.json").is_file():
        raise InvalidModelError(f"{path}: no config.json (not a save_pretrained folder, or half-written)")
    return BertClassifier(path, version, device=device)
