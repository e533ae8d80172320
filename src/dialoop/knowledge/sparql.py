"""SPARQL over the graph a user sees, through rdflib (no parser of our own).

    result = run_sparql(kb.graph, "SELECT ?o WHERE { ?s r:price ?o }", user="ann")
    result.serialize("json")    # SPARQL 1.1 Query Results JSON; "csv" and "xml" too

The query runs over exactly what :func:`~dialoop.knowledge.graph.export_records`
gives ``user`` (global facts plus the user's own, never another user's), written as
RDF the way ``kg export --format ttl`` writes it: entities under ``e:``
(https://dialoop.dev/kg/e/), relations under ``r:`` (https://dialoop.dev/kg/r/),
``rdf:type`` for types, ``rdfs:label`` and ``skos:altLabel`` for names. Those
prefixes and ``rdf``, ``rdfs``, ``skos``, ``xsd`` are bound, so a query need not
declare them.

The endpoint is read-only and local: UPDATE requests (INSERT, DELETE, LOAD, …) are
refused, and so are ``SERVICE`` and ``FROM``/``FROM NAMED``, because rdflib would
fetch the named URL. The graph is rebuilt in memory for every query, which suits
graphs of up to some hundred thousand facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rdflib
from rdflib.namespace import RDF, RDFS, SKOS, XSD
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.sparql.parser import parseUpdate
from rdflib.plugins.sparql.parserutils import CompValue

from dialoop.errors import InvalidInputError
from dialoop.knowledge.graph import Graph, export_records
from dialoop.knowledge.io import ENTITY_NS, RELATION_NS, add_rdf

__all__ = ["MEDIA_TYPES", "NAMESPACES", "SparqlResult", "run_sparql"]

NAMESPACES = {"e": ENTITY_NS, "r": RELATION_NS, "rdf": RDF, "rdfs": RDFS, "skos": SKOS,
              "xsd": XSD}
MEDIA_TYPES = {"json": "application/sparql-results+json", "csv": "text/csv",
               "xml": "application/sparql-results+xml", "turtle": "text/turtle"}
MAX_QUERY = 20_000  # characters


@dataclass(frozen=True)
class SparqlResult:
    kind: str  # "SELECT" | "ASK" | "CONSTRUCT" | "DESCRIBE"
    result: Any  # rdflib's Result

    def formats(self) -> tuple[str, ...]:
        """What :meth:`serialize` can write for this kind of query."""
        return ("turtle",) if self.kind in ("CONSTRUCT", "DESCRIBE") else ("json", "csv", "xml")

    def serialize(self, fmt: str = "json") -> str:
        if fmt not in self.formats():
            raise InvalidInputError(f"A {self.kind} query's results come as "
                                    f"{' or '.join(self.formats())}, not {fmt}.")
        data = self.result.serialize(format=fmt)
        return data.decode("utf-8") if isinstance(data, bytes) else str(data)


def run_sparql(graph: Graph, query: str, user: str) -> SparqlResult:
    """Run a SPARQL query (SELECT, ASK, CONSTRUCT, DESCRIBE) over what ``user`` sees.

    A query that does not parse, an update, ``SERVICE`` or ``FROM``: InvalidInputError,
    before the graph is read.
    """
    prepared = _prepare(query)
    g = rdflib.Graph()
    for prefix, ns in NAMESPACES.items():
        g.bind(prefix, ns)
    for record in export_records(graph, user):
        add_rdf(g, record)
    result = g.query(prepared)
    return SparqlResult(prepared.algebra.name.removesuffix("Query").upper(), result)


def _prepare(query: str) -> Any:
    if not query.strip():
        raise InvalidInputError("The SPARQL query is empty.")
    if len(query) > MAX_QUERY:
        raise InvalidInputError(f"The SPARQL query is longer than {MAX_QUERY:,} characters.")
    try:
        prepared = prepareQuery(query, initNs=NAMESPACES)
    except Exception as exc:  # pyparsing and rdflib raise many kinds; all mean a bad query
        if _is_update(query):
            raise InvalidInputError("The SPARQL endpoint is read-only: use SELECT, ASK, "
                                    "CONSTRUCT or DESCRIBE (add facts with `kg add` or "
                                    "`kg import`).") from None
        raise InvalidInputError(f"The SPARQL query does not parse: "
                                f"{str(exc).splitlines()[0][:300]}") from None
    if getattr(prepared.algebra, "datasetClause", None):
        raise InvalidInputError("FROM and FROM NAMED are not supported: the query runs over "
                                "your knowledge graph; remove them.")
    if _has_service(prepared.algebra):
        raise InvalidInputError("SERVICE is not supported: the query runs only over the local "
                                "knowledge graph.")
    return prepared


def _is_update(query: str) -> bool:
    try:
        parseUpdate(query)
    except Exception:  # not an update either
        return False
    return True


def _has_service(node: Any) -> bool:
    if isinstance(node, CompValue):
        if node.name == "ServiceGraphPattern":
            return True
        return any(_has_service(v) for v in node.values())
    if isinstance(node, list | tuple):
        return any(_has_service(v) for v in node)
    return False
