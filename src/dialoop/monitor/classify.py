"""Topic and sentiment of a text, from one sentence embedding.

Sentiment: a logistic regression (scikit-learn) over the shared all-MiniLM-L6-v2
embedding, as the intent classifier of :mod:`dialoop.dialogue.intent` does. The built-in
head is fitted on :data:`~dialoop.monitor.seed.SEED`; a user's retrained head adds their
corrections (:mod:`dialoop.monitor.training`). A head is only its weights: ``W`` (3, 384)
and ``b`` (3,), stored as an ``.npz`` without pickles, so loading one runs no code.

Topic: a configured keyword, matched as a whole word, decides; otherwise the topic
whose nearest example (the config's examples and description, plus texts analysts
moved to it) is most similar, if that similarity reaches ``topic_similarity``; else
``general``.

No LLM fallback: the bundled 135M model's pick was measured as weak evidence for
intents (see :mod:`dialoop.dialogue.intent`), and asking it costs ~100× the embedding.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dialoop.engine.embedding import Embedder
from dialoop.monitor.config import DEFAULT_TOPIC, SENTIMENTS, MonitorConfig

__all__ = ["Label", "SentimentHead", "TopicModel", "fit_head"]

_C = 4.0  # inverse regularisation; 1..10 gave the same seed-set accuracy


@dataclass(frozen=True)
class Label:
    topic: str
    sentiment: str
    confidence: float  # the head's probability of ``sentiment``


@dataclass(frozen=True)
class SentimentHead:
    """Softmax over ``vectors @ W.T + b``; ``version`` 0 is the built-in head."""

    W: np.ndarray  # (3, D)
    b: np.ndarray  # (3,)
    version: int = 0

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """(N, 3) probabilities in the order of :data:`SENTIMENTS`."""
        logits = vectors @ self.W.T + self.b  # (N, 3)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def predict(self, vectors: np.ndarray) -> list[tuple[str, float]]:
        p = self.proba(vectors)
        best = p.argmax(axis=1)
        return [(SENTIMENTS[i], float(p[n, i])) for n, i in enumerate(best)]

    def accuracy(self, vectors: np.ndarray, labels: Sequence[str]) -> float:
        if not len(labels):
            return 1.0
        said = [s for s, _ in self.predict(vectors)]
        return sum(a == b for a, b in zip(said, labels, strict=True)) / len(labels)

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(out, W=self.W.astype(np.float32), b=self.b.astype(np.float32))
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, version: int) -> SentimentHead:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(z["W"], z["b"], version)


def fit_head(vectors: np.ndarray, labels: Sequence[str], *, version: int = 0,
             weights: Sequence[float] | None = None, seed: int = 0) -> SentimentHead:
    """A head fitted on ``vectors`` (N, D) labelled with ``labels`` (each in SENTIMENTS)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([SENTIMENTS.index(s) for s in labels])
    missing = set(range(len(SENTIMENTS))) - set(y.tolist())
    assert not missing, f"every sentiment needs examples; missing {missing}"
    model = LogisticRegression(C=_C, max_iter=2000, random_state=seed)
    model.fit(vectors, y, sample_weight=None if weights is None else np.asarray(weights))
    return SentimentHead(model.coef_.astype(np.float32), model.intercept_.astype(np.float32),
                         version)


class TopicModel:
    """Keywords first, then the nearest example by cosine similarity."""

    def __init__(self, config: MonitorConfig, embedder: Embedder,
                 extra: Sequence[tuple[str, str]] = ()) -> None:
        """``extra``: (text, topic) pairs analysts taught by correcting an item's topic."""
        self.config = config
        self._keywords = [
            (t.name, re.compile(r"\b(?:" + "|".join(map(re.escape, t.keywords)) + r")\b", re.I))
            for t in config.topics if t.keywords
        ]
        texts, names = [], []
        for t in config.topics:
            for example in (*t.examples, *([t.description] if t.description else [])):
                texts.append(example)
                names.append(t.name)
        for text, topic in extra:
            texts.append(text)
            names.append(topic)
        self._names = np.array(names)
        self._vectors = embedder.embed(texts) if texts else None  # (E, D)

    def assign(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        """The topic of each text; ``vectors`` are their embeddings (N, D)."""
        sims = None if self._vectors is None else vectors @ self._vectors.T  # (N, E)
        topics = []
        for n, text in enumerate(texts):
            hits = [(len(rx.findall(text)), name) for name, rx in self._keywords]
            count, name = max(hits, default=(0, DEFAULT_TOPIC), key=lambda h: h[0])
            if count:
                topics.append(name)
            elif sims is not None and sims[n].max() >= self.config.topic_similarity:
                topics.append(str(self._names[sims[n].argmax()]))
            else:
                topics.append(DEFAULT_TOPIC)
        return topics
