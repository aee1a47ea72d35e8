"""The BERT classifier: a ``save_pretrained`` sequence-classification folder, loaded once and kept.

Any folder whose ``config.json`` maps its label ids ``0…n-1`` to at least two unique labels can be served (the
nine livedoor slugs, or a newsroom's own categories); ``labels.json`` beside it gives their display names.
Also here: the device choice, the GPU batch size, the CPU grouping of articles by length, and the tokenizer
process pool.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from common.articles import Article
from common.exceptions import InvalidModelError
from common.labels import LabelSet
from newsmodel.encoding import Truncation, encode_article
from newsmodel.prediction import Prediction, Serving, label_set_of

# On CPU a padding token costs as much as a real one, and batching 512-token sequences gains nothing (the
# matrix products are large already), so a CPU forward pass groups only articles of about the same length:
# padding at most this share of the pass's tokens (benchmarks/queue_overhead.py: a burst of 20 articles
# padded to 512 together took 1.3x the time of the same articles one by one).
CPU_MAX_PADDING = 0.1


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


def pick_device(requested: str | None = None) -> torch.device:
    """The device asked for, else CUDA when there is one, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch_size_for_memory(
    free_bytes: int, max_length: int, hidden: int = 768, heads: int = 12, floor: int = 8, cap: int = 512
) -> int:
    """Articles per forward pass that fit in half of ``free_bytes`` at ``max_length`` tokens (16-bit values),
    between ``floor`` and ``cap``.

    Inference keeps one layer's activations at a time: the attention scores (heads x L x L) and the
    feed-forward block (L x 4·hidden), counted three times over for temporaries.
    """
    per_article = 3 * 2 * (heads * max_length * max_length + max_length * 4 * hidden)
    return max(floor, min(cap, (free_bytes // 2) // per_article))


def gpu_batch_size(
    device: torch.device,
    max_length: int,
    hidden: int = 768,
    heads: int = 12,
    cap: int = 512,
    memory_fraction: float = 1.0,
) -> int:
    """:func:`batch_size_for_memory` of what serving may still use on the GPU ``device``.

    That is the memory free now, but at most ``memory_fraction`` of the GPU's total less what this process
    holds already (the weights), so that serving leaves the rest to a training sharing the GPU.
    """
    free, total = torch.cuda.mem_get_info(device)
    return batch_size_for_memory(
        serving_budget(int(free), int(total), torch.cuda.memory_reserved(device), memory_fraction),
        max_length,
        hidden,
        heads,
        cap=cap,
    )


def serving_budget(free_bytes: int, total_bytes: int, held_bytes: int, memory_fraction: float) -> int:
    """Bytes serving may still take: the free memory, within ``memory_fraction`` of the total less what it holds."""
    return max(0, min(free_bytes, int(memory_fraction * total_bytes) - held_bytes))


# The tokenizer of a pool process, loaded once by its initializer.
_POOL_TOKENIZER: PreTrainedTokenizerBase | None = None


def _pool_tokenizer_init(path: str) -> None:
    global _POOL_TOKENIZER
    _POOL_TOKENIZER = AutoTokenizer.from_pretrained(path)


def _pool_encode(articles: list[Article], max_length: int, truncation: Truncation) -> list[dict[str, Any]]:
    assert _POOL_TOKENIZER is not None
    return [encode_article(_POOL_TOKENIZER, a, max_length, truncation) for a in articles]


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
        self.labels: LabelSet = label_set_of(dict(model.config.id2label), path)
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


def configure_for_serving(classifier: BertClassifier, serving: Serving) -> None:
    """Apply a worker's serving settings: length and truncation; on a GPU the share of its memory, the batch size
    that fits in it and the tokenizer processes; on a CPU the batch size."""
    classifier.max_length = serving.max_length
    classifier.truncation = serving.truncation
    if classifier.device.type == "cuda":
        # The caching allocator stops at the fraction (an OOM there, not in a training on the same GPU).
        torch.cuda.set_per_process_memory_fraction(serving.gpu_memory_fraction, classifier.device)
        config = classifier.model.config
        classifier.batch_size = gpu_batch_size(
            classifier.device,
            serving.max_length,
            hidden=int(getattr(config, "hidden_size", 768)),
            heads=int(getattr(config, "num_attention_heads", 12)),
            memory_fraction=serving.gpu_memory_fraction,
        )
        classifier.start_tokenizer_pool(serving.tokenizer_workers)
    else:
        classifier.batch_size = serving.batch_size
