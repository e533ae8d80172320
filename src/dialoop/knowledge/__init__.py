"""Knowledge: a graph of facts and a store of documents that ground answers.

:class:`KnowledgeBase` is the entry point (``lookup`` for answering, ``add_fact`` for
teaching, ``import_file`` for loading); see docs/knowledge.md.
"""

from dialoop.knowledge.graph import EntitySpec, Fact, Graph, Literal, RelationSpec
from dialoop.knowledge.lookup import NOTHING, KnowledgeBase, KnowledgeResult, fuse
from dialoop.knowledge.reasoning import Answer

__all__ = [
    "NOTHING",
    "Answer",
    "EntitySpec",
    "Fact",
    "Graph",
    "KnowledgeBase",
    "KnowledgeResult",
    "Literal",
    "RelationSpec",
    "fuse",
]
