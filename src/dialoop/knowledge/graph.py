"""Triples in the SQL database: bulk loading, single facts, and the reads the reasoner needs.

    graph = Graph(db)
    graph.load([EntitySpec("p:lamp", label="Aurora Lamp", type="Product"),
                Fact("p:lamp", "price", Literal("19.99", "decimal", unit="EUR"))],
               scope=Scope.everyone(), source="catalog.jsonl", added_by="admin")
    graph.add_fact("Rex", "owner", "Alice", user="bob")   # only bob sees it

Three relation keys are special: ``type`` links an entity to its class (stored as a
triple, so it is scoped like one); ``label`` and ``alias`` give an entity names
(stored in ``kg_names``, for linking) instead of triples.

Every read takes the acting user and sees global rows plus that user's own.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.evidence import Scope
from dialoop.knowledge.schema import KgName, KgNode, KgRelation, KgRelationAlias, KgTriple
from dialoop.knowledge.words import norm, readable
from dialoop.store import Database
from dialoop.store.models import utcnow

__all__ = [
    "ALIAS",
    "DATATYPES",
    "LABEL",
    "TYPE",
    "EntitySpec",
    "Fact",
    "Graph",
    "Literal",
    "LoadResult",
    "Node",
    "Record",
    "RelationSpec",
    "Term",
    "TripleView",
    "export_records",
    "infer_term",
    "visible",
]

TYPE, LABEL, ALIAS = "type", "label", "alias"
DATATYPES = ("string", "integer", "decimal", "boolean", "date", "datetime")
MAX_KEY = 512
_BATCH = 2000  # keys per IN (...) lookup: well under SQLite's and PostgreSQL's parameter limits
_INSERT_BATCH = 50_000


@dataclass(frozen=True)
class Literal:
    """A value: ``datatype`` is one of :data:`DATATYPES`, ``@lang`` or an IRI; ``unit`` e.g. EUR."""

    value: str
    datatype: str = "string"
    unit: str | None = None
    number: float | None = field(init=False, repr=False, compare=False)
    """Numeric value of number and date literals (dates as fractional years)."""
    key: str = field(init=False, repr=False, compare=False)
    """What makes two literals the same value (a hash of datatype, unit and value)."""

    def __post_init__(self) -> None:
        value, number = _canonical(str(self.value), self.datatype)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "number", number)
        raw = f"{self.datatype}\x1f{self.unit or ''}\x1f{value}"
        object.__setattr__(self, "key", hashlib.blake2b(raw.encode(), digest_size=16).hexdigest())

    def __str__(self) -> str:
        return f"{self.value} {self.unit}" if self.unit else self.value


Term = str | Literal  # a str is an entity key


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    object: Term
    line: int = 0  # where it was read, for error messages


@dataclass(frozen=True)
class EntitySpec:
    key: str
    label: str | None = None
    type: str | None = None  # the key of its class
    aliases: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class RelationSpec:
    key: str
    label: str | None = None
    aliases: tuple[str, ...] = ()
    line: int = 0


Record = Fact | EntitySpec | RelationSpec


@dataclass(frozen=True)
class LoadResult:
    added: int  # new triples
    existing: int  # triples that were already there
    names: int  # new labels and aliases


@dataclass(frozen=True)
class Node:
    id: int
    kind: str  # "entity" | "literal"
    key: str
    label: str  # entity label, or the literal as text (with its unit)
    datatype: str | None = None
    number: float | None = None


@dataclass(frozen=True)
class TripleView:
    """A stored triple with everything needed to show and cite it."""

    id: int
    subject: Node
    relation_id: int
    relation_key: str
    relation: str  # label
    object: Node
    scope: str  # as stored: "global" or "user:<id>" (Scope)
    source: str
    added_by: str
    lesson_id: int | None
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """"S — relation — O", the relation as words when it is written as an identifier
        ("headquarteredIn" → "headquartered in"), for citations and the model's prompt."""
        return f"{self.subject.label} — {readable(self.relation)} — {self.object.label}"

    @property
    def citation(self) -> str:
        return f"triple:{self.id}"


def infer_term(text: str, datatype: str | None = None) -> Term:
    """An object written as plain text: a number, date or boolean literal, else an entity.

    ``datatype`` forces a literal ("string" keeps the text as text). A number may
    carry a unit or currency: "19.99 EUR", "€19.99", "12 kg".
    """
    text = text.strip()
    if datatype:
        if datatype not in DATATYPES and not datatype.startswith("@"):
            raise InvalidInputError(
                f"Unknown datatype {datatype!r}: use one of {', '.join(DATATYPES)} or @lang."
            )
        value, unit = _split_unit(text) if datatype in ("integer", "decimal") else (text, None)
        return Literal(value, datatype, unit)
    if text.lower() in ("true", "false"):
        return Literal(text.lower(), "boolean")
    value, unit = _split_unit(text)
    if re.fullmatch(r"[-+]?\d+", value):
        return Literal(value, "integer", unit)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)", value):
        return Literal(value, "decimal", unit)
    if unit is None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return Literal(text, "date")
    return text


_CURRENCY = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY"}
_UNIT_WORDS = {"euro": "EUR", "euros": "EUR", "dollar": "USD", "dollars": "USD",
               "pound": "GBP", "pounds": "GBP"}


def _split_unit(text: str) -> tuple[str, str | None]:
    m = re.fullmatch(r"([€$£¥])\s*([-+]?[\d.,eE+-]+)", text)
    if m:
        return m.group(2).replace(",", ""), _CURRENCY[m.group(1)]
    m = re.fullmatch(r"([-+]?[\d.,]+(?:[eE][-+]?\d+)?)\s*([A-Za-z%€$£][A-Za-z%/²³]*)", text)
    if m and re.search(r"\d", m.group(1)):
        unit = m.group(2)
        unit = _CURRENCY.get(unit) or _UNIT_WORDS.get(unit.lower()) or unit
        return m.group(1).replace(",", ""), unit
    return text, None


@functools.lru_cache(maxsize=65536)  # imports repeat values (ages, prices, years) a lot
def _canonical(value: str, datatype: str) -> tuple[str, float | None]:
    """The canonical lexical form of a value, and its number (if it is a number or date)."""
    value = _lexical(value, datatype)
    return value, _number(value, datatype)


def _lexical(value: str, datatype: str) -> str:
    value = value.strip() if datatype != "string" else value
    if datatype in ("integer", "decimal"):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise InvalidInputError(f"{value!r} is not a {datatype}.") from None
        if not d.is_finite():
            raise InvalidInputError(f"{value!r} is not a finite number.")
        if datatype == "integer":
            if d != d.to_integral_value():
                raise InvalidInputError(f"{value!r} is not an integer: use datatype decimal.")
            return str(int(d))
        text = format(d.normalize(), "f")
        return text
    if datatype == "boolean":
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidInputError(f"{value!r} is not a boolean: use true or false.")
        return "true" if value.lower() in ("true", "1") else "false"
    if datatype == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise InvalidInputError(f"{value!r} is not a date: use YYYY-MM-DD.") from None
    if datatype == "datetime":
        try:
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            raise InvalidInputError(f"{value!r} is not a datetime: use ISO 8601.") from None
    return value


def _number(value: str, datatype: str | None) -> float | None:
    if datatype in ("integer", "decimal"):
        n = float(value)
        return n if math.isfinite(n) else None
    if datatype in ("date", "datetime"):
        # Dates compare as fractional years, so "before 1970" works against them.
        d = datetime.fromisoformat(value)
        return d.year + (d.timetuple().tm_yday - 1) / 366
    return None


def _label_from_key(key: str) -> str:
    """A readable label for an entity that has none: the key, or an IRI's local name."""
    if "://" in key or key.startswith("urn:"):
        local = re.split(r"[/#:]", key.rstrip("/#"))[-1]
        local = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", local).replace("_", " ")
        return local or key
    return key


def _check_key(key: str, what: str, line: int) -> str:
    if type(key) is str and 0 < len(key) <= MAX_KEY and not key[0].isspace() \
            and not key[-1].isspace():
        return key  # the common case, checked cheaply: a million of these per big import
    if not isinstance(key, str) or not key.strip():
        raise InvalidInputError(f"{_where(line)}the {what} is empty.")
    key = key.strip()
    if len(key) > MAX_KEY:
        raise InvalidInputError(f"{_where(line)}the {what} is longer than {MAX_KEY} characters.")
    return key


def _where(line: int) -> str:
    return f"line {line}: " if line else ""


def _insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, the portable idempotent write (SQLite, PostgreSQL).

    The statement is compiled once and the rows go straight to the driver's
    executemany: SQLAlchemy's per-row parameter processing would triple the time of a
    million-triple import. Values must already be what the driver takes (see
    :func:`_driver_value`).
    """
    if not rows:
        return
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(conn.dialect.name)
    if dialect is None:
        raise InvalidInputError(
            f"The knowledge graph supports SQLite and PostgreSQL, not {conn.dialect.name}."
        )
    names = list(rows[0])
    stmt = dialect.insert(table).values({n: sa.bindparam(n) for n in names})
    compiled = stmt.on_conflict_do_nothing().compile(dialect=conn.dialect)
    order = compiled.positiontup
    for i in range(0, len(rows), _INSERT_BATCH):
        batch = rows[i:i + _INSERT_BATCH]
        params: list[Any] = ([tuple(r[n] for n in order) for r in batch] if order is not None
                             else batch)
        conn.exec_driver_sql(str(compiled), params)


def _driver_value(conn: sa.Connection, value: datetime) -> Any:
    """A timestamp as the driver stores it for a UTCDateTime column (done once per load)."""
    from dialoop.store.models import UTCDateTime

    process = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process else value


def _chunks(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def visible(column: sa.ColumnElement[str], user: str) -> sa.ColumnElement[bool]:
    """Rows everyone sees, plus ``user``'s own."""
    return column.in_(Scope.visible(user))


class _Plan:
    """What one load writes, gathered and checked before the transaction starts."""

    def __init__(self) -> None:
        self.entities: dict[str, str | None] = {}  # key -> explicit label (or None)
        self.literals: dict[str, Literal] = {}
        self.relations: dict[str, RelationSpec] = {}
        self.names: dict[tuple[str, str], str] = {}  # (key, name) -> kind
        self.facts: list[tuple[str, str, str, str]] = []  # s, r, object kind, object key

    def add(self, record: Record) -> None:
        if isinstance(record, EntitySpec):
            key = _check_key(record.key, "entity", record.line)
            self.entity(key, record.label)
            if record.label:
                self.names[(key, record.label)] = LABEL
            for alias in record.aliases:
                self.names.setdefault((key, alias), ALIAS)
            if record.type:
                self.add(Fact(key, TYPE, record.type, record.line))
        elif isinstance(record, RelationSpec):
            key = _check_key(record.key, "relation", record.line)
            old = self.relations.get(key)
            aliases = tuple(dict.fromkeys((*(old.aliases if old else ()), *record.aliases)))
            self.relations[key] = RelationSpec(key, record.label or (old and old.label), aliases)
        else:
            self.fact(record)

    def fact(self, f: Fact) -> None:
        s = _check_key(f.subject, "subject", f.line)
        r = _check_key(f.relation, "relation", f.line)
        self.entity(s, None)
        if r in (LABEL, ALIAS):
            name = str(f.object.value if isinstance(f.object, Literal) else f.object).strip()
            if not name:
                raise InvalidInputError(f"{_where(f.line)}the {r} is empty.")
            if r == LABEL:
                self.entities[s] = name
            self.names[(s, name)] = r if self.names.get((s, name)) != LABEL else LABEL
            return
        self.relations.setdefault(r, RelationSpec(r))
        if isinstance(f.object, Literal):
            if r == TYPE:
                raise InvalidInputError(f"{_where(f.line)}a type must be an entity, not a value.")
            self.literals[f.object.key] = f.object
            self.facts.append((s, r, "literal", f.object.key))
        else:
            o = _check_key(f.object, "object", f.line)
            self.entity(o, None)
            self.facts.append((s, r, "entity", o))

    def entity(self, key: str, label: str | None) -> None:
        if label or key not in self.entities:
            self.entities[key] = label or self.entities.get(key)


class Graph:
    """The knowledge graph of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing --------------------------------------------------------------------

    def load(
        self,
        records: Iterable[Record],
        *,
        scope: Scope,
        source: str,
        added_by: str,
        lesson_id: int | None = None,
    ) -> LoadResult:
        """Store ``records`` in one transaction: all of them, or (on any error) none."""
        plan = _Plan()
        for record in records:
            plan.add(record)
        when = utcnow()
        with self.db.write() as s:
            conn = s.connection()
            if conn.dialect.name == "sqlite" and len(plan.facts) > 10_000:
                # A big import inserts into B-trees at random places: a larger page cache
                # (64 MiB, for this connection) halves the time.
                conn.exec_driver_sql("PRAGMA cache_size = -65536")
            rel_ids = self._store_relations(conn, plan.relations, when)
            now = _driver_value(conn, when)
            _insert_ignoring_duplicates(conn, KgNode.__table__, [
                {"kind": "entity", "key": k, "value": label or _label_from_key(k),
                 "datatype": None, "unit": None, "number": None, "created_at": now}
                for k, label in plan.entities.items()
            ])
            if scope.is_global:  # an operator's explicit label wins over the first one seen
                for key, label in plan.entities.items():
                    if label:
                        conn.execute(sa.update(KgNode).where(
                            KgNode.kind == "entity", KgNode.key == key, KgNode.value != label
                        ).values(value=label))
            _insert_ignoring_duplicates(conn, KgNode.__table__, [
                {"kind": "literal", "key": k, "value": lit.value, "datatype": lit.datatype,
                 "unit": lit.unit, "number": lit.number, "created_at": now}
                for k, lit in plan.literals.items()
            ])
            ent_ids, labels = _ids(conn, "entity", plan.entities)
            lit_ids, _ = _ids(conn, "literal", plan.literals)
            names_before = _count(conn, KgName)
            name_rows = self._name_rows(plan, ent_ids, labels, str(scope), source, now)
            _insert_ignoring_duplicates(conn, KgName.__table__, name_rows)
            before = _count(conn, KgTriple)
            _insert_ignoring_duplicates(conn, KgTriple.__table__, [
                {"subject_id": ent_ids[s_], "relation_id": rel_ids[r],
                 "object_id": (ent_ids if kind == "entity" else lit_ids)[o],
                 "scope": str(scope), "source": source[:512], "added_by": added_by,
                 "lesson_id": lesson_id, "created_at": now}
                for s_, r, kind, o in plan.facts
            ])
            added = _count(conn, KgTriple) - before
            names = _count(conn, KgName) - names_before
        return LoadResult(added, len(set(plan.facts)) - added, names)

    def _store_relations(
        self, conn: sa.Connection, specs: dict[str, RelationSpec], now: datetime
    ) -> dict[str, int]:
        ids: dict[str, int] = {}
        for chunk in _chunks(list(specs)):
            for rid, key, label, aliases in conn.execute(
                sa.select(KgRelation.id, KgRelation.key, KgRelation.label, KgRelation.aliases)
                .where(KgRelation.key.in_(chunk))
            ):
                ids[key] = rid
                spec = specs[key]
                merged = list(dict.fromkeys([*(aliases or []), *spec.aliases]))
                if (spec.label and spec.label != label) or merged != (aliases or []):
                    conn.execute(sa.update(KgRelation).where(KgRelation.id == rid)
                                 .values(label=spec.label or label, aliases=merged))
        new = [spec for key, spec in specs.items() if key not in ids]
        for spec in new:
            rid = conn.execute(sa.insert(KgRelation).values(
                key=spec.key, label=spec.label or _label_from_key(spec.key).replace("_", " "),
                aliases=list(spec.aliases), created_at=now,
            )).inserted_primary_key[0]
            ids[spec.key] = rid
        return ids

    @staticmethod
    def _name_rows(
        plan: _Plan, ent_ids: dict[str, int], labels: dict[str, str], scope: str, source: str,
        now: datetime,
    ) -> list[dict[str, Any]]:
        names = dict(plan.names)
        for key, label in plan.entities.items():  # every entity is findable by its label
            names.setdefault((key, label or labels[key]), LABEL)
        rows: dict[tuple[int, str], dict[str, Any]] = {}
        for (key, name), kind in names.items():
            n = norm(name)[:255]
            if not n:
                continue
            row = {"node_id": ent_ids[key], "name": name[:255], "norm": n, "kind": kind,
                   "scope": scope, "source": source[:512], "created_at": now}
            if rows.get((ent_ids[key], n), {}).get("kind") != LABEL:
                rows[(ent_ids[key], n)] = row
        return list(rows.values())

    def add_fact(
        self,
        subject: str,
        relation: str,
        obj: Term,
        *,
        user: str,
        scope: Scope | None = None,
        source: str = "api",
        lesson_id: int | None = None,
    ) -> TripleView | None:
        """Add one fact, visible to ``user`` only (or to everyone with a global ``scope``);
        names are resolved among what ``user`` sees.

        A plain-text object becomes a literal or an entity as :func:`infer_term` says;
        names that a visible entity or relation already has resolve to it. Adding a
        fact that exists returns the existing one; a ``label`` or ``alias`` returns None.
        """
        _check_user(user)
        scope = Scope.of(user) if scope is None else scope
        if isinstance(obj, str):
            obj = infer_term(obj)
        subject_key = self._resolve_key(subject, user)
        if isinstance(obj, str):
            obj = self._resolve_key(obj, user)
        if relation.strip().lower() in (LABEL, ALIAS, TYPE):
            relation = relation.strip().lower()
        else:
            relation = self._resolve_relation(relation)
        self.load([Fact(subject_key, relation, obj)], scope=scope, source=source,
                  added_by=user, lesson_id=lesson_id)
        if relation in (LABEL, ALIAS):
            return None  # a name, not a triple: nothing to cite
        return self._find_fact(subject_key, relation, obj, scope)

    def _resolve_key(self, name: str, user: str) -> str:
        """The key of the visible entity with this label or alias, else the name itself."""
        name = name.strip()
        n = norm(name)
        with self.db.read() as s:
            keys = s.execute(
                sa.select(KgNode.key, KgName.kind).join(KgName, KgName.node_id == KgNode.id)
                .where(KgName.norm == n, visible(KgName.scope, user))
                .order_by(KgName.kind.desc())  # "label" before "alias"
            ).all()
            exact = s.scalar(sa.select(KgNode.key).where(KgNode.kind == "entity",
                                                         KgNode.key == name))
        if exact is not None:
            return exact
        return keys[0][0] if keys else name

    def _resolve_relation(self, name: str) -> str:
        """An existing relation this name is the key, label or alias of, else the name."""
        name = name.strip()
        n = norm(name)
        with self.db.read() as s:
            for key, label, aliases in s.execute(
                sa.select(KgRelation.key, KgRelation.label, KgRelation.aliases)
            ):
                if name == key or n in (norm(label), *(norm(a) for a in aliases or [])):
                    return key
        return name

    def _find_fact(self, subject: str, relation: str, obj: Term, scope: Scope) -> TripleView:
        with self.db.read() as s:
            o_kind, o_key = ("literal", obj.key) if isinstance(obj, Literal) else ("entity", obj)
            sub = sa.select(KgNode.id).where(KgNode.kind == "entity", KgNode.key == subject)
            ob = sa.select(KgNode.id).where(KgNode.kind == o_kind, KgNode.key == o_key)
            rel = sa.select(KgRelation.id).where(KgRelation.key == relation)
            tid = s.scalar(sa.select(KgTriple.id).where(
                KgTriple.subject_id == sub.scalar_subquery(),
                KgTriple.relation_id == rel.scalar_subquery(),
                KgTriple.object_id == ob.scalar_subquery(), KgTriple.scope == str(scope),
            ))
        assert tid is not None
        return self.triples([tid])[0]

    def remove(self, *, scope: Scope, triple_ids: Sequence[int] = (),
               lesson_id: int | None = None) -> int:
        """Delete the facts of ``scope`` by id or by lesson; returns how many went.

        Callers let a user remove only their own scope's facts (a user cannot delete
        what everyone sees); global facts go with their lesson, or by re-importing.
        """
        with self.db.write() as s:
            q = sa.delete(KgTriple).where(KgTriple.scope == str(scope))
            if triple_ids:
                q = q.where(KgTriple.id.in_(list(triple_ids)))
            elif lesson_id is not None:
                q = q.where(KgTriple.lesson_id == lesson_id)
                # The relation aliases the lesson taught go with it (not counted: not facts).
                s.execute(sa.delete(KgRelationAlias).where(
                    KgRelationAlias.scope == str(scope), KgRelationAlias.lesson_id == lesson_id))
            else:
                return 0
            return s.execute(q).rowcount or 0

    # -- relation aliases taught by corrections --------------------------------------------

    def add_relation_alias(self, relation_id: int, phrase: str, *, scope: Scope,
                           added_by: str, lesson_id: int | None = None) -> int | None:
        """Store ``phrase`` as words for relation ``relation_id`` in ``scope``; its id, or
        None when that scope already has it."""
        phrase = " ".join(phrase.split())[:255]
        with self.db.write() as s:
            exists = s.scalar(sa.select(KgRelationAlias.id).where(
                KgRelationAlias.relation_id == relation_id, KgRelationAlias.phrase == phrase,
                KgRelationAlias.scope == str(scope)))
            if exists is not None:
                return None
            row = KgRelationAlias(relation_id=relation_id, phrase=phrase, scope=str(scope),
                                  added_by=added_by, lesson_id=lesson_id)
            s.add(row)
            s.flush()
            return row.id

    def remove_relation_alias(self, alias_id: int) -> None:
        with self.db.write() as s:
            s.execute(sa.delete(KgRelationAlias).where(KgRelationAlias.id == alias_id))

    def move_relation_aliases(self, *, scope: Scope, lesson_id: int, to_scope: Scope,
                              to_lesson_id: int) -> int:
        """The aliases a lesson of ``scope`` taught now belong to another lesson and scope
        (a lesson promoted to global); returns how many moved."""
        with self.db.write() as s:
            rows = list(s.scalars(sa.select(KgRelationAlias).where(
                KgRelationAlias.scope == str(scope), KgRelationAlias.lesson_id == lesson_id)))
            for row in rows:
                there = s.scalar(sa.select(KgRelationAlias.id).where(
                    KgRelationAlias.relation_id == row.relation_id,
                    KgRelationAlias.phrase == row.phrase, KgRelationAlias.scope == str(to_scope)))
                if there is None:
                    row.scope, row.lesson_id = str(to_scope), to_lesson_id
                else:
                    s.delete(row)
            return len(rows)

    def relation_aliases(self, user: str) -> list[tuple[int, str, str, str]]:
        """(relation id, key, label, phrase) of the taught aliases ``user`` sees: their own
        and the global ones."""
        with self.db.read() as s:
            return [tuple(r) for r in s.execute(  # type: ignore[misc]
                sa.select(KgRelation.id, KgRelation.key, KgRelation.label,
                          KgRelationAlias.phrase)
                .join(KgRelationAlias, KgRelationAlias.relation_id == KgRelation.id)
                .where(visible(KgRelationAlias.scope, user))
                .order_by(KgRelationAlias.id))]

    # -- reading --------------------------------------------------------------------

    def is_empty(self) -> bool:
        with self.db.read() as s:
            return s.scalar(sa.select(KgTriple.id).limit(1)) is None

    def entity_by_key(self, key: str) -> Node:
        with self.db.read() as s:
            row = s.execute(sa.select(KgNode).where(KgNode.kind == "entity", KgNode.key == key)
                            ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"No entity {key!r} in the knowledge graph.")
        return _node(row)

    def nodes(self, ids: Iterable[int]) -> dict[int, Node]:
        out: dict[int, Node] = {}
        with self.db.read() as s:
            for chunk in _chunks(list(set(ids))):
                for row in s.scalars(sa.select(KgNode).where(KgNode.id.in_(chunk))):
                    out[row.id] = _node(row)
        return out

    def names_matching(self, norms: Iterable[str], user: str) -> list[tuple[int, str, str, str]]:
        """(node id, norm, name, kind) of visible names whose normal form is in ``norms``."""
        norms = list(set(norms))
        out = []
        with self.db.read() as s:
            for chunk in _chunks(norms):
                out += s.execute(
                    sa.select(KgName.node_id, KgName.norm, KgName.name, KgName.kind)
                    .where(KgName.norm.in_(chunk), visible(KgName.scope, user))
                ).all()
        return out

    def names(self, user: str, *, scope_only: bool = False) -> list[tuple[int, str, str]]:
        """(node id, name, kind) of every visible name (``scope_only``: the user's own)."""
        cond = KgName.scope == str(Scope.of(user)) if scope_only \
            else visible(KgName.scope, user)
        with self.db.read() as s:
            return s.execute(sa.select(KgName.node_id, KgName.name, KgName.kind).where(cond)
                             ).all()

    def name_version(self) -> tuple[int, int]:
        """Changes whenever names are added or removed (for caches)."""
        with self.db.read() as s:
            return tuple(s.execute(sa.select(sa.func.count(), sa.func.max(KgName.id))).one())

    def relations(self) -> list[tuple[int, str, str, list[str]]]:
        """(id, key, label, aliases) of every relation."""
        with self.db.read() as s:
            return [(i, k, lbl, list(a or [])) for i, k, lbl, a in s.execute(
                sa.select(KgRelation.id, KgRelation.key, KgRelation.label, KgRelation.aliases))]

    def relation_id(self, key: str) -> int | None:
        with self.db.read() as s:
            return s.scalar(sa.select(KgRelation.id).where(KgRelation.key == key))

    def edges(self, node_ids: Sequence[int], user: str, *, limit: int = 200) -> list[TripleView]:
        """Visible triples with one of ``node_ids`` as subject or object (newest last)."""
        with self.db.read() as s:
            ids = s.scalars(
                sa.select(KgTriple.id).where(
                    sa.or_(KgTriple.subject_id.in_(node_ids), KgTriple.object_id.in_(node_ids)),
                    visible(KgTriple.scope, user),
                ).order_by(KgTriple.id).limit(limit)
            ).all()
        return self.triples(ids)

    def triples(self, ids: Sequence[int]) -> list[TripleView]:
        """Stored triples by id, in the order asked."""
        rows: dict[int, KgTriple] = {}
        with self.db.read() as s:
            for chunk in _chunks(list(set(ids))):
                for t in s.scalars(sa.select(KgTriple).where(KgTriple.id.in_(chunk))):
                    rows[t.id] = t
            rel_ids = {t.relation_id for t in rows.values()}
            rels = {r.id: r for r in s.scalars(
                sa.select(KgRelation).where(KgRelation.id.in_(rel_ids)))} if rel_ids else {}
        nodes = self.nodes([n for t in rows.values() for n in (t.subject_id, t.object_id)])
        return [
            TripleView(t.id, nodes[t.subject_id], t.relation_id, rels[t.relation_id].key,
                       rels[t.relation_id].label, nodes[t.object_id], t.scope, t.source,
                       t.added_by, t.lesson_id, t.created_at)
            for t in (rows[i] for i in ids if i in rows)
        ]

    def members_with_names(self, kind: str) -> dict[str, list[str]]:
        """Global members of the class labelled ``kind`` (any case, singular or plural):
        label -> [label, *aliases]."""
        type_id = self.relation_id(TYPE)
        if type_id is None:
            return {}
        cls, member, names = aliased(KgName), aliased(KgTriple), aliased(KgName)
        everyone = str(Scope.everyone())
        with self.db.read() as s:
            rows = s.execute(
                sa.select(member.subject_id, names.name, names.kind)
                .join(cls, sa.and_(cls.node_id == member.object_id, cls.norm == norm(kind),
                                   cls.scope == everyone))
                .join(names, sa.and_(names.node_id == member.subject_id,
                                     names.scope == everyone))
                .where(member.relation_id == type_id, member.scope == everyone)
                .order_by(member.subject_id, names.kind.desc(), names.id)).all()
        by_node: dict[int, list[str]] = {}
        for node_id, name, _ in rows:
            by_node.setdefault(node_id, [])
            if name not in by_node[node_id]:
                by_node[node_id].append(name)
        return {names[0]: names for names in by_node.values()}

    def types_of(self, node_ids: Iterable[int], user: str) -> dict[int, set[int]]:
        """The classes of each node (objects of its visible ``type`` triples)."""
        type_id = self.relation_id(TYPE)
        out: dict[int, set[int]] = {}
        if type_id is None:
            return out
        with self.db.read() as s:
            for chunk in _chunks(list(set(node_ids))):
                for sid, oid in s.execute(sa.select(KgTriple.subject_id, KgTriple.object_id).where(
                    KgTriple.relation_id == type_id, KgTriple.subject_id.in_(chunk),
                    visible(KgTriple.scope, user),
                )):
                    out.setdefault(sid, set()).add(oid)
        return out

    def classes(self, user: str) -> set[int]:
        """Nodes that are the class of something visible."""
        type_id = self.relation_id(TYPE)
        if type_id is None:
            return set()
        with self.db.read() as s:
            return set(s.scalars(sa.select(KgTriple.object_id).distinct().where(
                KgTriple.relation_id == type_id, visible(KgTriple.scope, user))))


_MONEY = {"EUR", "USD", "GBP", "CHF"}


def _node(row: KgNode) -> Node:
    label = row.value
    if row.kind == "literal" and row.unit:
        value = f"{row.number:.2f}" if row.unit in _MONEY and row.number is not None else row.value
        label = f"{value} {row.unit}"
    return Node(row.id, row.kind, row.key, label, row.datatype, row.number)


def _ids(conn: sa.Connection, kind: str, keys: Iterable[str]) -> tuple[dict[str, int],
                                                                        dict[str, str]]:
    """Node ids and stored values (labels) by key."""
    ids: dict[str, int] = {}
    values: dict[str, str] = {}
    for chunk in _chunks(list(keys)):
        for key, id_, value in conn.execute(sa.select(KgNode.key, KgNode.id, KgNode.value).where(
                KgNode.kind == kind, KgNode.key.in_(chunk))):
            ids[key], values[key] = id_, value
    return ids, values


def _count(conn: sa.Connection, model: type) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def _check_user(user: str) -> None:
    if not isinstance(user, str) or not user:
        raise InvalidInputError("A user id is needed (facts are scoped to a user or global).")


def export_records(graph: Graph, user: str) -> Iterator[Record]:
    """Everything ``user`` sees, as records that :meth:`Graph.load` takes back unchanged.

    Relations first, then entities with their labels and aliases, then facts.
    """
    with graph.db.read() as s:
        used = sa.select(KgTriple.id).where(KgTriple.relation_id == KgRelation.id,
                                            visible(KgTriple.scope, user)).exists()
        for key, label, aliases in s.execute(  # only relations this user has facts of
            sa.select(KgRelation.key, KgRelation.label, KgRelation.aliases)
            .where(KgRelation.key != TYPE, used).order_by(KgRelation.id)
        ):
            yield RelationSpec(key, label, tuple(aliases or ()))
        names: dict[int, tuple[str, list[str], str]] = {}
        for node_id, key, name, kind in s.execute(
            sa.select(KgName.node_id, KgNode.key, KgName.name, KgName.kind)
            .join(KgNode, KgNode.id == KgName.node_id)
            .where(visible(KgName.scope, user)).order_by(KgName.id)
        ):
            label, aliases, _ = names.setdefault(node_id, (None, [], key))  # type: ignore[arg-type]
            if kind == LABEL and label is None:
                names[node_id] = (name, aliases, key)
            elif kind == ALIAS or (kind == LABEL and name != label):
                aliases.append(name)
        for label, aliases, key in names.values():
            others = tuple(dict.fromkeys(a for a in aliases if a != label))
            yield EntitySpec(key, label, None, others)
        subj, obj = aliased(KgNode), aliased(KgNode)
        rows = s.execute(
            sa.select(subj.key, KgRelation.key, obj.kind, obj.key, obj.value, obj.datatype,
                      obj.unit)
            .select_from(KgTriple)
            .join(subj, subj.id == KgTriple.subject_id)
            .join(obj, obj.id == KgTriple.object_id)
            .join(KgRelation, KgRelation.id == KgTriple.relation_id)
            .where(visible(KgTriple.scope, user)).order_by(KgTriple.id)
            .execution_options(yield_per=10_000)
        )
        for s_key, r_key, kind, o_key, value, datatype, unit in rows:
            o: Term = o_key if kind == "entity" else Literal(value, datatype or "string", unit)
            yield Fact(s_key, r_key, o)
