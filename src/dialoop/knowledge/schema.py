"""The knowledge tables: ORM classes on the shared :class:`~dialoop.store.models.Base`.

The graph is stored RDF-style: every subject and object is a row of ``kg_nodes``
(an entity, or a literal value), so a triple is three integers plus its scope and
provenance, and ``(subject, relation, object, scope)`` is unique: importing the
same fact twice adds nothing. Numeric and date literals keep a ``number`` so that
comparisons ("under 20 euros") run in SQL.

Scope: ``""`` is global (seen by everyone); any other value is the id of the one
user who sees the row. User ids are never empty, so the two cannot collide.

The schema is created by ``m004_knowledge`` in :mod:`dialoop.store.migrations`;
``tests/knowledge/test_schema.py`` checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dialoop.store.models import Base, utcnow

__all__ = ["KgChunk", "KgDocument", "KgName", "KgNode", "KgRelation", "KgRelationAlias",
           "KgTriple"]



class KgNode(Base):
    """An entity (``kind="entity"``, ``key`` = its id) or a literal value (``kind="literal"``)."""

    __tablename__ = "kg_nodes"
    __table_args__ = (sa.UniqueConstraint("kind", "key", name="uq_kg_nodes_kind_key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    key: Mapped[str] = mapped_column(sa.String(512))
    """entity: its id (a name or an IRI); literal: a hash of datatype, unit and value."""
    value: Mapped[str] = mapped_column(sa.Text)
    """entity: its display label; literal: its lexical form."""
    datatype: Mapped[str | None] = mapped_column(sa.String(64))
    unit: Mapped[str | None] = mapped_column(sa.String(32))
    number: Mapped[float | None]
    """Numeric value of number and date literals (dates as fractional years)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgName(Base):
    """A label or alias of an entity, normalized for lookup, scoped like a fact."""

    __tablename__ = "kg_names"
    __table_args__ = (
        sa.UniqueConstraint("node_id", "norm", "scope", name="uq_kg_names_node_norm_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(sa.ForeignKey("kg_nodes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(255))
    norm: Mapped[str] = mapped_column(sa.String(255), index=True)
    """Lowercased, stemmed, punctuation-free form, as the linker compares it."""
    kind: Mapped[str] = mapped_column(sa.String(8))  # "label" | "alias"
    scope: Mapped[str] = mapped_column(sa.String(140))
    source: Mapped[str] = mapped_column(sa.String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgRelation(Base):
    """A relation (predicate), with the words people use for it."""

    __tablename__ = "kg_relations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(512), unique=True)
    label: Mapped[str] = mapped_column(sa.String(255))
    aliases: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgRelationAlias(Base):
    """Words a user's correction taught for a relation ("appear in" → ``starred_actors``),
    scoped like the lesson it came from (created by ``m010_relation_aliases``)."""

    __tablename__ = "kg_relation_aliases"
    __table_args__ = (
        sa.UniqueConstraint("relation_id", "phrase", "scope", name="uq_kg_relation_aliases"),
        sa.Index("ix_kg_relation_aliases_scope", "scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    relation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("kg_relations.id", ondelete="CASCADE"))
    phrase: Mapped[str] = mapped_column(sa.String(255))
    scope: Mapped[str] = mapped_column(sa.String(140))
    added_by: Mapped[str] = mapped_column(sa.String(128))
    lesson_id: Mapped[int | None]
    """The lesson (correction) that taught it: forgetting the lesson forgets the alias."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgTriple(Base):
    """One fact: subject –relation→ object, with its scope and where it came from."""

    __tablename__ = "kg_triples"
    __table_args__ = (
        sa.UniqueConstraint("subject_id", "relation_id", "object_id", "scope",
                            name="uq_kg_triples_fact"),
        sa.Index("ix_kg_triples_object", "object_id", "relation_id"),
        sa.Index("ix_kg_triples_lesson", "lesson_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(sa.ForeignKey("kg_nodes.id"))
    relation_id: Mapped[int] = mapped_column(sa.ForeignKey("kg_relations.id"))
    object_id: Mapped[int] = mapped_column(sa.ForeignKey("kg_nodes.id"))
    scope: Mapped[str] = mapped_column(sa.String(140))
    source: Mapped[str] = mapped_column(sa.String(512))
    """Where the fact came from: a file name, "chat", "api"."""
    added_by: Mapped[str] = mapped_column(sa.String(128))
    lesson_id: Mapped[int | None]
    """The lesson (correction) this fact was taught in, if any."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgDocument(Base):
    """An ingested text, Markdown or HTML file."""

    __tablename__ = "kg_documents"
    __table_args__ = (
        sa.UniqueConstraint("scope", "digest", name="uq_kg_documents_scope_digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(sa.String(140))
    source: Mapped[str] = mapped_column(sa.String(512))
    title: Mapped[str] = mapped_column(sa.String(255))
    digest: Mapped[str] = mapped_column(sa.String(64))  # of the content: re-ingesting adds nothing
    added_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class KgChunk(Base):
    """A passage of a document, with its embedding (float32 bytes, L2-normalized)."""

    __tablename__ = "kg_chunks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        sa.ForeignKey("kg_documents.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    heading: Mapped[str | None] = mapped_column(sa.String(255))
    text: Mapped[str] = mapped_column(sa.Text)
    embedding: Mapped[bytes] = mapped_column(sa.LargeBinary)
