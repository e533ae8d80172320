"""Intent recognition: an embedding classifier with calibrated confidence, and an LLM fallback.

The domain's example utterances are embedded with the shared all-MiniLM-L6-v2 and
a logistic regression is fitted on them, wrapped in scikit-learn's
``CalibratedClassifierCV`` (sigmoid, cross-validated) so that the probability it
reports is a fair estimate of being right: that probability is what the
domain's ``confidence_threshold`` is compared with.

Out of domain: a message is out of the domain when the classifier picks the
domain's ``out_of_domain_intent``, or when even its nearest example is less
similar (cosine) than ``out_of_domain_similarity``: nothing the domain knows
looks like it.

LLM fallback: below the threshold the model is shown the top candidate intents
(with their descriptions) and asked to pick one by number. If it picks the
classifier's first choice, that choice is trusted (its confidence is raised to
the threshold); if it picks another, the turn stays unsure and the policy asks.
The bundled 135M model's pick alone is weak evidence: on store_support's test
dialogues, letting it choose changed two of twelve unsure answers, both wrongly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.engine import Engine, GenerationParams, Message
from dialoop.engine.embedding import Embedder
from dialoop.errors import DomainError

__all__ = ["EncoderIntentClassifier", "IntentClassifier", "IntentResult"]

log = logging.getLogger(__name__)

FALLBACK_CANDIDATES = 3
_CV_FOLDS = 3


@dataclass(frozen=True)
class IntentResult:
    intent: str
    confidence: float  # calibrated probability of ``intent``
    ranking: list[tuple[str, float]] = field(default_factory=list)  # best first
    nearest: float = 1.0  # cosine similarity of the nearest example
    out_of_domain: bool = False
    source: str = "classifier"  # "classifier" | "llm agreed" | "llm disagreed" | "only intent"

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "confidence": round(self.confidence, 4),
                "ranking": [[n, round(p, 4)] for n, p in self.ranking[:4]],
                "nearest_example_similarity": round(self.nearest, 4),
                "out_of_domain": self.out_of_domain, "source": self.source}


class IntentClassifier:
    """Trained from a domain's examples at construction (a second or two on a CPU)."""

    def __init__(self, domain: Domain, embedder: Embedder, *, seed: int = 0) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        self.domain = domain
        self.embedder = embedder
        self.names = list(domain.spec.intents)
        # Slot values say little about the intent and much about themselves: "track 8850"
        # looks like nothing until it reads "track order number".
        self._masks = [(re.compile(slot.pattern, re.I), domain.slot_label(name))
                       for name, slot in domain.spec.slots.items()
                       if slot.pattern and slot.type in ("number", "text")]
        texts, labels = [], []
        for name, spec in domain.spec.intents.items():
            texts += [self.delexicalize(e) for e in spec.examples]
            labels += [name] * len(spec.examples)
        self._examples = embedder.embed(texts)  # (N, D), normalized
        self._labels = np.array(labels)
        # Calibration needs a few examples of every intent in every fold.
        folds = min(_CV_FOLDS, min(labels.count(n) for n in self.names))
        base = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
        if folds >= 2:
            self._model = CalibratedClassifierCV(base, method="sigmoid", cv=folds)
        else:
            log.warning("domain %s: an intent has a single example; confidence is uncalibrated",
                        domain.name)
            self._model = base
        self._model.fit(self._examples, self._labels)
        self._classes = list(self._model.classes_)

    def delexicalize(self, text: str) -> str:
        """``text`` with slot values replaced by the slot's name ("order 5521" → "order
        order number")."""
        for pattern, label in self._masks:
            text = pattern.sub(label, text)
        return text

    def classify(self, message: str) -> IntentResult:
        """The intent of ``message`` by the classifier alone."""
        return self.classify_many([message])[0]

    def classify_many(self, messages: Sequence[str]) -> list[IntentResult]:
        """:meth:`classify` for many messages at once (one embedding batch): evaluations."""
        if not messages:
            return []
        vectors = self.embedder.embed([self.delexicalize(m) for m in messages])  # (M, D)
        probs = self._model.predict_proba(vectors)  # (M, n_intents)
        nearest = (vectors @ self._examples.T).max(axis=1)  # (M,)
        u = self.domain.spec.understanding
        results = []
        for row, near in zip(probs, nearest, strict=True):
            order = np.argsort(-row)
            ranking = [(self._classes[i], float(row[i])) for i in order]
            intent, confidence = ranking[0]
            ood = bool(u.out_of_domain_intent) and bool(  # a numpy bool is no JSON
                intent == u.out_of_domain_intent or near < u.out_of_domain_similarity)
            if ood and intent != u.out_of_domain_intent:
                intent, confidence = u.out_of_domain_intent, 1.0 - confidence
            results.append(IntentResult(intent, confidence, ranking, float(near), ood))
        return results

    def fallback(self, message: str, result: IntentResult, engine: Engine,
                 context: Sequence[Message] = (), *,
                 cache_scope: str | None = None) -> IntentResult:
        """Ask the model to choose among the top candidates of an unsure ``result``.

        ``cache_scope`` is the user's (see :meth:`dialoop.engine.Engine.stream`).
        """
        return llm_fallback(self.domain, message, result, engine, context,
                            cache_scope=cache_scope)


class EncoderIntentClassifier:
    """Intents by an encoder fine-tuned with ``dialoop train classifier`` (a folder that
    ``dialoop.transformer.classifier.EncoderClassifier`` loads), in place of the
    embedding classifier: the domain names it as ``understanding.classifier``. Its
    labels must be the domain's intents; its softmax probability is the confidence
    (uncalibrated: set ``confidence_threshold`` from its validation report)."""

    def __init__(self, domain: Domain, folder: Path) -> None:
        from dialoop.transformer.classifier import EncoderClassifier

        self.domain = domain
        self.model = EncoderClassifier.load(folder)
        unknown = sorted(set(self.model.labels) - set(domain.spec.intents))
        if unknown:
            raise DomainError(f"The classifier in {folder} has labels that are not intents of "
                              f"domain {domain.name}: {', '.join(unknown[:5])}. Train it on "
                              "the domain's intent names.")

    def classify(self, message: str) -> IntentResult:
        return self.classify_many([message])[0]

    def classify_many(self, messages: Sequence[str]) -> list[IntentResult]:
        if not messages:
            return []
        probs = self.model.probabilities(list(messages))  # (M, n_labels)
        ood_intent = self.domain.spec.understanding.out_of_domain_intent
        results = []
        for row in probs.tolist():
            ranking = sorted(zip(self.model.labels, row, strict=True), key=lambda p: -p[1])
            intent, confidence = ranking[0]
            results.append(IntentResult(intent, confidence, ranking,
                                        out_of_domain=bool(ood_intent) and intent == ood_intent))
        return results

    def fallback(self, message: str, result: IntentResult, engine: Engine,
                 context: Sequence[Message] = (), *,
                 cache_scope: str | None = None) -> IntentResult:
        return llm_fallback(self.domain, message, result, engine, context,
                            cache_scope=cache_scope)


def llm_fallback(domain: Domain, message: str, result: IntentResult, engine: Engine,
                 context: Sequence[Message] = (), *,
                 cache_scope: str | None = None) -> IntentResult:
    """Ask the model to choose among the top candidates of an unsure ``result`` (see the
    module's docstring for why it may only confirm the classifier's first choice)."""
    candidates = [n for n, _ in result.ranking[:FALLBACK_CANDIDATES]]
    prompt = _fallback_prompt(domain, message, candidates, context)
    params = GenerationParams(temperature=0.0, max_tokens=4, seed=0)
    text = "".join(c.text for c in engine.stream(prompt, params, cache_scope=cache_scope))
    choice = re.search(r"\d", text)
    if not choice or not 1 <= int(choice.group()) <= len(candidates):
        log.debug("intent fallback gave no usable choice: %r", text)
        return result
    intent = candidates[int(choice.group()) - 1]
    if intent != candidates[0]:
        # Measured on store_support: when the 135M model disagrees with the classifier
        # it is wrong more often than not, so it may confirm a choice but not make one.
        log.debug("intent fallback chose %s over %s: kept unsure", intent, candidates[0])
        return IntentResult(result.intent, result.confidence, result.ranking,
                            result.nearest, result.out_of_domain, "llm disagreed")
    threshold = domain.spec.understanding.confidence_threshold
    return IntentResult(intent, max(result.confidence, threshold), result.ranking,
                        result.nearest, result.out_of_domain, "llm agreed")


def _fallback_prompt(domain: Domain, message: str, candidates: Sequence[str],
                     context: Sequence[Message]) -> list[Message]:
    options = "\n".join(
        f"{i}. {domain.spec.intents[n].description or n.replace('_', ' ')}"
        for i, n in enumerate(candidates, 1)
    )
    last = next((m["content"] for m in reversed(context) if m["role"] == "assistant"), None)
    said = f'The assistant just said: "{last[:200]}"\n' if last else ""
    return [
        {"role": "system", "content": "You sort customer messages. Answer with one number."},
        {"role": "user", "content": f"{said}The customer says: \"{message}\"\n"
                                    f"What does the customer want?\n{options}\nAnswer:"},
    ]
