"""The fast path: lessons applied to the very next matching question, with no training.

A lesson is a question with the answer it should get. It is stored with an
embedding of its question (the shared all-MiniLM-L6-v2) and its *key terms*, the
words that name what the question is about ("Acme", "Biotech"). A new message
matches a lesson when both hold:

- cosine similarity of the two questions ≥ ``match_similarity``, and
- every key term of the lesson appears in the message.

Similarity alone cannot tell "Who is the CEO of Acme Biotech?" from "… of Acme
Foods?" (0.80, while the true paraphrase "Who runs Acme Biotech?" scores 0.90):
the key-term check is what keeps similar-looking questions about *other* things
untouched. Similarity is computed with the names masked (:func:`masked`), so that
it measures what is asked about the entity, not the entity's rare name, and with the
message's relation words said as the lesson says them ("CEO" → "chief executive",
:mod:`dialoop.learn.relations`); a message that names other relations ("melting" vs
"boiling point"), asks for another kind of answer ("when" vs "who") or for the
opposite ("start" vs "end") does not match.
Besides its question, a lesson matches through the wordings it learned from use: a
question it missed that a user corrected again with its answer
(:meth:`CorrectionMemory.missed`).
Thresholds are calibrated on benchmarks/data/learning_facts.jsonl (docs/learning.md
shows the numbers, and those on sets they were not calibrated on).

A matched lesson (:class:`~dialoop.evidence.LessonMatch`) becomes evidence (kind
``lesson``) in the prompt, or, when the match is near-certain, the reply itself:
a correction *is* the answer the assistant should have given (the dialogue
manager's precedence decides).

Scope (:class:`~dialoop.evidence.Scope`, stored as ``"global"`` or ``"user:<id>"``):
a user's lessons match only that user's messages; global lessons match everyone's.
Only ``active`` lessons match; superseded and forgotten ones stay in the table (the
record of what was taught) but never shape an answer again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from dialoop.evidence import Evidence, LessonMatch, Scope
from dialoop.learn.relations import (
    asks_for,
    canonical,
    contrasted,
    disjoint,
    is_relation_word,
    relations,
)
from dialoop.store import Database
from dialoop.store.models import Lesson, LessonWording, utcnow

__all__ = ["CorrectionMemory", "comparable", "key_terms", "masked", "named", "terms_match",
           "terms_present"]

MAX_QUESTION_CHARS = 2_000
MAX_ANSWER_CHARS = 4_000

# Words that never name what a question is about, even capitalized at its start.
_COMMON = frozenset("""
a an the of in on at to for from by with about as and or but not no is are was were be
been being am do does did done has have had having will would shall should can could may
might must what who whom whose which when where why how whats who's what's where's
i me my we our you your he she it its they them their this that these those there here
tell please name give say know explain describe list show find
hi hello hey thanks thank i'm i've i'd im ok okay yes so also and
""".split())  # noqa: SIM905  (a word list reads better as text)
_WORD = re.compile(r"[^\W_][\w'’-]*")


def key_terms(question: str) -> list[str]:
    """The words that name what ``question`` is about, lowercased.

    Names (capitalized words not opening a sentence) and anything with a digit. Short
    acronyms (CEO, USA) count only when there is nothing else: in "Who is the CEO of
    Acme Biotech?" the entity is Acme Biotech, and "Who runs Acme Biotech?" asks the
    same. A question in lower case has no such marks; then every content word of 3+
    letters counts.
    """
    names: list[str] = []
    acronyms: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", question):
        for i, w in enumerate(_WORD.findall(sentence)):
            if any(c.isdigit() for c in w):
                names.append(w)
            elif w[0].isupper() and (i > 0 or w.lower() not in _COMMON):
                if w.lower() in _COMMON or is_relation_word(w):
                    continue
                (acronyms if w.isupper() and len(w) <= 4 else names).append(w)
    terms = names or acronyms or [
        w for w in _WORD.findall(question)
        if len(w) >= 3 and w.lower() not in _COMMON and not is_relation_word(w)
    ]
    seen: dict[str, None] = {}
    for t in terms:
        seen.setdefault(_norm(t), None)
    return [t for t in seen if t]


def named(question: str) -> str:
    """The names ``question`` asks about, as written ("Acme Biotech" in "Who is the CEO of
    Acme Biotech?"): capitalized words after the first, short acronyms (CEO) left out; ""
    when there are none."""
    words = _WORD.findall(question)[1:]  # the first word is capitalized anyway
    return " ".join(w for w in words if w[0].isupper() and not (w.isupper() and len(w) <= 4))


def terms_match(terms: Sequence[str], question: str, message: str) -> bool:
    """Whether ``message`` is about what a lesson's ``question`` (with key ``terms``) is.

    Every key term of the lesson must appear in the message, and every name in the
    message must appear in the lesson's question: "… of East Jasuwyn?" names a place
    the lesson about "Jasuwyn" does not. A question without a single word ("?!?", which
    :meth:`CorrectionMemory.prepare` refuses, but older databases may hold) is about
    nothing, so it matches nothing, whatever the similarity says.
    """
    if not _WORD.search(question) or not terms_present(_distinctive(terms), message):
        return False
    names = [t for t in _names(message) if t not in _COMMON and not is_relation_word(t)]
    return terms_present(names, question)


# Zipf frequency (log10 of uses per billion words, wordfreq's scale) from which a name's
# word is an ordinary English word: "Republic", "Hotel", "Valley" (4.6-5.0), not
# "Tavessa" (0), "Lindqvist" (1.7), "Tram" (3.5) or "Biotech" (3.2).
ORDINARY_ZIPF = 4.0


def _distinctive(terms: Sequence[str]) -> list[str]:
    """The key terms a rewording must repeat: the lesson's rare ones, when it has some.

    People shorten a name to its rare part ("the Republic of Tavessa" → "Tavessa", "the
    Velloway Hotel" → "Velloway"), so ordinary English words beside rare ones may be left
    out. A name of ordinary words only ("Copper Wolves") must be said in full, numbers
    always; and every name the message says must still be in the lesson (see
    :func:`terms_match`), so "the Velloway Inn" or "Tavessa North" match nothing.
    """
    rare = [t for t in terms if not _ordinary(t)]
    return rare if rare else list(terms)


@functools.cache
def _ordinary(word: str) -> bool:
    # wordfreq, not a word list of our own: frequencies from several large corpora
    from wordfreq import zipf_frequency

    return word.isalpha() and zipf_frequency(word, "en") >= ORDINARY_ZIPF


def _names(text: str, *, sentence_start: bool = False) -> list[str]:
    """The capitalized words and numbers of ``text``, lowercased (by default not those
    opening a sentence, which are capitalized anyway)."""
    found = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for i, w in enumerate(_WORD.findall(sentence)):
            if any(c.isdigit() for c in w) or ((i > 0 or sentence_start) and w[0].isupper()):
                found.append(_norm(w))
    return found


MASK = "Acme"


def masked(text: str, terms: Sequence[str], question: str | None = None) -> str:
    """``text`` with the lesson's names replaced by one placeholder name.

    Similarity is then about what is asked, not about whom: a rare name dominates a
    sentence embedding, so "Who founded Zorvath?" scores close to "Who is the CEO of
    Zorvath?" (0.80) until both say "Acme". The names themselves are checked by
    :func:`terms_match`. ``terms`` are the key terms of the lesson's ``question``
    (default: ``text`` itself); only those written there as names (capitalized, or
    with a digit) are masked, in any case in ``text``.
    """
    names = set(terms) & set(_names(question or text, sentence_start=True))
    return _WORD.sub(lambda m: MASK if _norm(m.group()) in names else m.group(), text)


def _unnamed(text: str) -> str:
    """``text`` with every capitalized word not opening a sentence, the parts of names,
    replaced by :data:`MASK`; short acronyms ("CEO") stay, they name relations."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        parts, last = [], 0
        for i, m in enumerate(_WORD.finditer(sentence)):
            w = m.group()
            if i > 0 and w[0].isupper() and not (w.isupper() and len(w) <= 4):
                parts += [sentence[last:m.start()], MASK]
                last = m.end()
        out.append("".join(parts) + sentence[last:])
    return " ".join(out)


def terms_present(terms: Sequence[str], text: str) -> bool:
    """Whether every term appears in ``text`` as a word (plural and possessive forms too)."""
    words = {_norm(w) for w in _WORD.findall(text)}
    return all(t in words or any(_same_word(t, w) for w in words) for t in terms)


def _norm(word: str) -> str:
    w = word.lower().replace("’", "'")
    return w[:-2] if w.endswith("'s") else w.strip("'-")


def _same_word(a: str, b: str) -> bool:
    """A plural of the other: "biotech" ~ "biotechs", "city" ~ "cities". Nothing looser:
    "Jasuwyn" and "Jasuwynia" are different places."""
    short, long = sorted((a, b), key=len)
    return long in (short + "s", short + "es") or (
        short.endswith("y") and long == short[:-1] + "ies")


def comparable(text: str, terms: Sequence[str], question: str, *, like: str) -> str:
    """What the encoder compares with a lesson's wording ``like``: ``text`` :func:`masked`
    with the names of the lesson's ``question``, its relation words said as ``like`` says
    them (:func:`~dialoop.learn.relations.canonical`)."""
    return canonical(masked(text, terms, question), like)


def _says_nothing_new(taught: str, again: str) -> bool:
    """Whether answer ``again`` only repeats ``taught``: every name and number of it is in
    ``taught`` ("I told you before: Helena Marchetti-Ross"). One that adds something
    ("… since 2021") is a new lesson, which supersedes the old one as usual."""
    terms = key_terms(again)
    return bool(terms) and terms_present(terms, taught)


class CorrectionMemory:
    """Store lessons and find the ones that apply to a message. Thread-safe."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        *,
        match_similarity: float = 0.72,
        supersede_similarity: float = 0.90,
        max_matches: int = 3,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.match_similarity = match_similarity
        self.supersede_similarity = supersede_similarity
        self.max_matches = max_matches

    # -- the evidence provider ------------------------------------------------------------

    def find(self, message: str, *, user: str, state: object = None) -> list[Evidence]:
        """Evidence for ``message`` from ``user``'s lessons and the global ones, best first."""
        return [m.evidence() for m in self.match(message, user=user)]

    def match(self, message: str, *, user: str | Scope, among: Collection[int] | None = None,
              similarity: float | None = None) -> list[LessonMatch]:
        """The active lessons in scope for ``user`` that match ``message``, best first.

        ``user`` may be a scope instead (an adapter line's: the global line sees only global
        lessons); ``among``: only these lessons (an adapter's, for its router);
        ``similarity``: another bar than ``match_similarity``.
        """
        bar = self.match_similarity if similarity is None else similarity
        scope = user if isinstance(user, Scope) else Scope.of(user)
        lessons = [x for x in self._in_scope(scope)
                   if (among is None or x.id in among)
                   and terms_match(x.key_terms, x.question, message)]  # cheap filter first
        if not lessons:
            return []
        kind = asks_for(message)
        # Each lesson is matched through its question and the wordings it learned from use.
        # A wording that names other relations than the message ("melting" vs "boiling
        # point"), asks for another kind of answer ("when" vs "who") or the opposite
        # ("start" vs "end", "check-in" vs "check-out") is out, whatever the encoder says.
        # Both are read without their names: "Moon" in "Moss and the Moon Cat" names no
        # relation.
        said = _unnamed(message)
        relations_said = relations(said)
        pairs = [(x, text, vector) for x in lessons for text, vector in self._wordings(x)
                 if not disjoint(relations(_unnamed(text)), relations_said)
                 and not (asks_for(text) and kind and not asks_for(text) & kind)
                 and not contrasted(_unnamed(text), said)]
        if not pairs:
            return []
        # One embedding per wording: the message masked with the lesson's names, its
        # relation words said as the wording says them.
        texts = [comparable(message, x.key_terms, x.question, like=text) for x, text, _ in pairs]
        vectors = self.embedder.embed(texts)
        best: dict[int, tuple[Lesson, float]] = {}
        for (x, _, vector), mine in zip(pairs, vectors, strict=True):
            score = float(mine @ vector)  # cosine: both sides are normalized
            if x.id not in best or score > best[x.id][1]:
                best[x.id] = (x, score)
        found = [
            LessonMatch(x.id, x.question, x.answer, Scope.parse(x.scope), score)
            for x, score in best.values() if score >= bar
        ]
        # Best score first; among equals, the user's own and then the newest lesson.
        found.sort(key=lambda m: (-round(m.score, 3), m.scope.is_global, -m.lesson_id))
        return found[: self.max_matches]

    def _wordings(self, lesson: Lesson) -> list[tuple[str, np.ndarray]]:
        """The lesson's question and its learned wordings, each with its vector."""
        own = [(lesson.question, np.frombuffer(lesson.embedding, dtype=np.float32))]
        with self.db.read() as s:
            rows = s.scalars(sa.select(LessonWording).where(LessonWording.lesson_id == lesson.id))
            return own + [(w.text, np.frombuffer(w.embedding, dtype=np.float32)) for w in rows]

    # -- writing ----------------------------------------------------------------------------

    def prepare(self, question: str, answer: str) -> tuple[bytes, list[str]]:
        """Check a lesson's text and compute what it is stored with (outside any transaction)."""
        question, answer = question.strip(), answer.strip()
        if not question:
            raise InvalidInputError("The question is empty: say what was asked.")
        if not answer:
            raise InvalidInputError("The answer is empty: give the answer it should have given.")
        if not _WORD.search(question):
            raise InvalidInputError(
                f"The question {question[:40]!r} has no words, only symbols: a lesson is "
                "recalled by what its question is about: teach it with a question in words."
            )
        if len(question) > MAX_QUESTION_CHARS or len(answer) > MAX_ANSWER_CHARS:
            raise InvalidInputError(
                f"A lesson's question has at most {MAX_QUESTION_CHARS:,} characters and its "
                f"answer at most {MAX_ANSWER_CHARS:,}: shorten it."
            )
        terms = key_terms(question)
        vector = self.embedder.embed([masked(question, terms)])[0].astype(np.float32)
        return vector.tobytes(), terms

    def add(
        self,
        s: Any,
        *,
        kind: str,
        user: str,
        scope: Scope,
        question: str,
        answer: str,
        prepared: tuple[bytes, list[str]],
        rejected: str | None = None,
        feedback_id: int | None = None,
    ) -> Lesson:
        """Add a lesson inside the caller's write transaction ``s``; supersede older ones.

        ``user`` taught it. An older active lesson of the same kind in the same scope whose
        question is the same one (similarity ≥ supersede threshold,
        same key terms) stops applying: the later correction wins.
        """
        embedding, terms = prepared
        lesson = Lesson(
            kind=kind, user_id=user, scope=str(scope), question=question.strip(),
            answer=answer.strip(), rejected=rejected, key_terms=terms, embedding=embedding,
            status="active", feedback_id=feedback_id,
        )
        s.add(lesson)
        s.flush()  # assigns lesson.id
        query = sa.select(Lesson).where(
            Lesson.status == "active", Lesson.kind == kind, Lesson.scope == str(scope),
            Lesson.id != lesson.id,
        )
        vector = np.frombuffer(embedding, dtype=np.float32)
        for old in s.scalars(query):
            same = float(np.frombuffer(old.embedding, dtype=np.float32) @ vector)
            if same >= self.supersede_similarity and set(old.key_terms) == set(terms):
                old.status, old.superseded_by, old.ended_at = "superseded", lesson.id, utcnow()
        return lesson

    def missed(self, s: Any, question: str, answer: str, *, scope: Scope) -> Lesson | None:
        """The active correction lesson in ``scope`` that should have caught ``question``:
        it is about the same names and already teaches all of ``answer`` (its names and
        numbers), so a user correcting ``question`` with ``answer`` is saying it again ("I
        told you before: …"). None when there is none. Inside the caller's transaction."""
        query = sa.select(Lesson).where(
            Lesson.status == "active", Lesson.kind == "correction", Lesson.scope == str(scope),
        ).order_by(Lesson.id.desc())
        for old in s.scalars(query):
            if terms_match(old.key_terms, old.question, question) \
                    and _says_nothing_new(old.answer, answer):
                return old
        return None

    def add_wording(self, s: Any, lesson: Lesson, question: str, *,
                    feedback_id: int | None = None) -> bool:
        """Index ``question`` as another wording of ``lesson`` (inside the caller's write
        transaction ``s``): from now on it matches like the lesson's own question. False
        when the lesson already has that wording."""
        text = question.strip()
        known = [lesson.question] + list(s.scalars(
            sa.select(LessonWording.text).where(LessonWording.lesson_id == lesson.id)))
        if text.casefold() in {k.casefold() for k in known}:
            return False
        vector = self.embedder.embed([masked(text, lesson.key_terms, lesson.question)])[0]
        s.add(LessonWording(lesson_id=lesson.id, text=text, feedback_id=feedback_id,
                            embedding=vector.astype(np.float32).tobytes()))
        return True

    def reword(self, lesson_id: int, answer: str) -> None:
        """Say lesson ``lesson_id``'s answer as ``answer`` (what a correction that named a
        relation, "no, I meant the films she starred in", made the knowledge graph answer).
        The question, and so what the lesson matches, stays the same."""
        answer = answer.strip()
        if not answer or len(answer) > MAX_ANSWER_CHARS:
            return
        with self.db.write() as s:
            lesson = s.get(Lesson, lesson_id)
            if lesson is not None:
                lesson.answer = answer

    def forget(self, lesson_id: int, *, user: str, is_admin: bool) -> Lesson:
        """Stop applying a lesson at once (the next consolidation leaves it out too).

        Users forget their own lessons; global ones and other users' only an admin.
        """
        with self.db.write() as s:
            lesson = s.get(Lesson, lesson_id)
            scope = Scope.parse(lesson.scope) if lesson is not None else None
            if scope is None or not (is_admin or scope.user == user):
                if scope is not None and scope.is_global:
                    raise PermissionDeniedError(
                        f"Lesson {lesson_id} is global: only an admin can forget it."
                    )
                raise NotFoundError(f"No lesson {lesson_id}: `dialoop learn status` lists yours.")
            if lesson.status == "forgotten":
                return lesson
            lesson.status, lesson.ended_at = "forgotten", utcnow()
        return lesson

    def promote(self, lesson_id: int, *, is_admin: bool) -> Lesson:
        """Make a user's lesson global (an admin's decision); returns the new global lesson."""
        if not is_admin:
            raise PermissionDeniedError("Only an admin can make a lesson global.")
        with self.db.write() as s:
            old = s.get(Lesson, lesson_id)
            if old is None or old.status != "active":
                raise NotFoundError(f"No active lesson {lesson_id}.")
            if Scope.parse(old.scope).is_global:
                return old
            new = self.add(
                s, kind=old.kind, user=old.user_id, scope=Scope.everyone(), question=old.question,
                answer=old.answer, rejected=old.rejected,
                prepared=(old.embedding, list(old.key_terms)), feedback_id=old.feedback_id,
            )
            old.status, old.superseded_by, old.ended_at = "superseded", new.id, utcnow()
        return new

    # -- reading -----------------------------------------------------------------------------

    def get(self, lesson_id: int, *, user: str, is_admin: bool) -> Lesson:
        with self.db.read() as s:
            lesson = s.get(Lesson, lesson_id)
        if lesson is None or not (is_admin or Scope.parse(lesson.scope).visible_to(user)):
            raise NotFoundError(f"No lesson {lesson_id}.")
        return lesson

    def lessons(
        self, *, user: str | None = None, status: str | None = "active", kind: str | None = None
    ) -> list[Lesson]:
        """Lessons visible to ``user`` (theirs and the global ones), or all with ``user=None``."""
        query = sa.select(Lesson).order_by(Lesson.id)
        if user is not None:
            query = query.where(Lesson.scope.in_(Scope.visible(user)))
        if status is not None:
            query = query.where(Lesson.status == status)
        if kind is not None:
            query = query.where(Lesson.kind == kind)
        with self.db.read() as s:
            return list(s.scalars(query))

    def for_line(self, line: Scope) -> list[Lesson]:
        """The active lessons an adapter line is trained on: global ones, plus the user's own."""
        query = sa.select(Lesson).where(Lesson.status == "active").order_by(Lesson.id)
        query = query.where(Lesson.scope.in_(line.sees()))
        with self.db.read() as s:
            return list(s.scalars(query))

    def _in_scope(self, scope: Scope) -> list[Lesson]:
        query = sa.select(Lesson).where(
            Lesson.status == "active", Lesson.kind == "correction",
            Lesson.scope.in_(scope.sees()),
        )
        with self.db.read() as s:
            return list(s.scalars(query))

