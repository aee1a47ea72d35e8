"""Loading a trained classifier from a save_pretrained folder and predicting with it.

This is the model contract between training and serving: any sequence-classification folder whose
``config.json`` maps its label ids to the nine category slugs can be served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from common.articles import Article
from common.exceptions import InvalidModelError, ModelNotFoundError
from common.labels import SLUGS

log = logging.getLogger(__name__)

# Titles longer than this (in characters) are cut, so the title never eats the body's token budget.
MAX_TITLE_CHARS = 128


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


def encode_article(tokenizer: PreTrainedTokenizerBase, article: Article, max_length: int) -> dict[str, Any]:
    """Title and body as a sentence pair with only the body truncated (the body alone if there is no title)."""
    title = article.title[:MAX_TITLE_CHARS]
    if title and article.body:
        return dict(tokenizer(title, article.body, truncation="only_second", max_length=max_length))
    return dict(tokenizer(title or article.body, truncation=True, max_length=max_length))


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


class BertClassifier:
    """A fine-tuned transformers sequence classifier, loaded once and kept."""

    def __init__(
        self,
        path: Path,
        version: str | None = None,
        *,
        device: str | None = None,
        max_length: int = 512,
        batch_size: int = 16,
    ) -> None:
        self.path = path
        self.version = version or path.resolve().name
        self.device = pick_device(device)
        self.max_length = max_length
        self.batch_size = batch_size
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

    @torch.inference_mode()
    def predict(self, articles: Sequence[Article]) -> list[Prediction]:
        out: list[Prediction] = []
        for start in range(0, len(articles), self.batch_size):
            chunk = articles[start : start + self.batch_size]
            features = [encode_article(self.tokenizer, a, self.max_length) for a in chunk]
            batch = self.tokenizer.pad(features, return_tensors="pt").to(self.device)
            probs = self.model(**batch).logits.float().softmax(dim=-1).cpu().tolist()
            out.extend(Prediction(dict(zip(self.labels, row, strict=True))) for row in probs)
        return out


def load_classifier(path: Path, version: str | None = None, *, device: str | None = None) -> Classifier:
    """Load the classifier saved in ``path`` (a save_pretrained folder)."""
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} is not a model folder")
    if not (path / "config.json").is_file():
        raise InvalidModelError(f"{path}: no config.json (not a save_pretrained folder, or half-written)")
    return BertClassifier(path, version, device=device)
