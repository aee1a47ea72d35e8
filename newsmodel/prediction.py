"""What a served model answers: a :class:`Prediction` per article, behind the :class:`Classifier` protocol.

No torch here: the registry, the bot's contracts and the linear model use these without loading a BERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from common.articles import Article
from common.exceptions import InvalidModelError
from common.labels import SLUGS


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

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels with their probabilities, most probable first."""
        return sorted(self.scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


class Classifier(Protocol):
    """What the worker serves and ``python -m training predict`` uses, whatever the model kind."""

    version: str
    path: Path

    def predict(self, articles: Sequence[Article]) -> list[Prediction]: ...


def validate_label_map(id2label: dict[int, str], where: Path) -> list[str]:
    """The slugs in label-id order; raises :class:`InvalidModelError` unless they are exactly the nine."""
    labels = [id2label[i] for i in sorted(id2label)]
    if sorted(labels) != sorted(SLUGS):
        raise InvalidModelError(f"{where}: id2label must hold the nine category slugs, found {labels}")
    return labels
