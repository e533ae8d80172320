"""Reading and writing graphs: CSV, JSONL, and RDF (Turtle, N-Triples, JSON-LD) through rdflib.

Reading checks the whole file before anything is stored, and reports the first bad
line by number; :meth:`Graph.load` then stores it in one transaction.

CSV: a header ``subject,relation,object`` with optional ``datatype`` and ``unit``
columns. An empty datatype means: a number, date or true/false becomes a value,
anything else an entity (write ``string`` to keep text as text).

JSONL, one object per line (blank lines are skipped)::

    {"entity": "p:aurora", "label": "Aurora Lamp", "type": "Product", "aliases": ["Aurora"]}
    {"relation": "price", "label": "price", "aliases": ["cost", "costs"]}
    {"subject": "p:aurora", "relation": "made by", "object": "Lumina"}        # an entity
    {"subject": "p:aurora", "relation": "price", "value": 19.99, "unit": "EUR"}  # a value

RDF: ``rdf:type`` is the type, ``rdfs:label``/``skos:prefLabel``/``schema:name`` the
label, ``skos:altLabel`` an alias. Keys that are not IRIs are written under
:data:`ENTITY_NS` and read back as the plain key, so files round-trip.

Reading touches nothing but the file: a JSON-LD ``@context`` (or ``@import``) that
names a URL is refused, since rdflib would fetch it (``file://`` too) and has no hook
to stop it; relative IRIs resolve against :data:`ENTITY_NS`, not the current
directory. A UTF-8 byte order mark (Excel writes one) is skipped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import rdflib
from rdflib.namespace import FOAF, RDF, RDFS, SDO, SKOS, XSD

from dialoop.errors import InvalidInputError
from dialoop.knowledge.documents import read_text_file
from dialoop.knowledge.graph import (
    ALIAS,
    LABEL,
    TYPE,
    EntitySpec,
    Fact,
    Literal,
    Record,
    RelationSpec,
    Term,
    infer_term,
)

__all__ = ["ENTITY_NS", "FORMATS", "RELATION_NS", "add_rdf", "detect_format", "read_records",
           "write_records"]

log = logging.getLogger(__name__)

ENTITY_NS = rdflib.Namespace("https://dialoop.dev/kg/e/")
RELATION_NS = rdflib.Namespace("https://dialoop.dev/kg/r/")
UNIT_NS = "https://dialoop.dev/kg/unit/"

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ttl": "turtle", ".nt": "nt",
           ".jsonld": "json-ld", ".json": "json-ld"}
_LABELS = {RDFS.label, SKOS.prefLabel, SDO.name, FOAF.name}
_XSD_TYPES = {
    XSD.string: "string", XSD.boolean: "boolean", XSD.date: "date", XSD.dateTime: "datetime",
    XSD.integer: "integer", XSD.int: "integer", XSD.long: "integer", XSD.short: "integer",
    XSD.nonNegativeInteger: "integer", XSD.positiveInteger: "integer", XSD.gYear: "integer",
    XSD.decimal: "decimal", XSD.double: "decimal", XSD.float: "decimal",
}
_TO_XSD = {"string": XSD.string, "boolean": XSD.boolean, "date": XSD.date,
           "datetime": XSD.dateTime, "integer": XSD.integer, "decimal": XSD.decimal}


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise InvalidInputError(
                f"Unknown format {fmt!r}: use one of {', '.join(sorted(set(FORMATS.values())))}."
            )
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidInputError(
            f"Cannot tell the format of {path.name}: name it .csv, .jsonl, .ttl, .nt or "
            ".jsonld, or pass --format."
        ) from None


def read_records(path: Path, fmt: str | None = None) -> list[Record]:
    """Every record of the file, checked; a bad line raises InvalidInputError naming it."""
    fmt = detect_format(path, fmt)
    text = read_text_file(path).removeprefix("\ufeff")  # utf-8-sig: Excel's CSV has one
    try:
        if fmt == "csv":
            return list(_read_csv(text))
        if fmt == "jsonl":
            return list(_read_jsonl(text))
        return list(_read_rdf(text, fmt))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc} Nothing was imported.") from None


# -- CSV ---------------------------------------------------------------------------------


def _read_csv(text: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    missing = {"subject", "relation", "object"} - set(header)
    if missing:
        raise InvalidInputError(
            "line 1: the header must name the columns subject, relation, object "
            f"(and optionally datatype, unit); missing: {', '.join(sorted(missing))}."
        )
    unknown = set(header) - {"subject", "relation", "object", "datatype", "unit"}
    if unknown:
        raise InvalidInputError(f"line 1: unknown column {sorted(unknown)[0]!r}.")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InvalidInputError(f"line {line}: {len(row)} columns, the header has "
                                    f"{len(header)}.")
        cells = dict(zip(header, row, strict=True))
        yield _fact(cells["subject"], cells["relation"], cells["object"],
                    cells.get("datatype", "").strip() or None,
                    cells.get("unit", "").strip() or None, line)


def _fact(subject: str, relation: str, obj: str, datatype: str | None, unit: str | None,
          line: int) -> Fact:
    try:
        term: Term = infer_term(obj, datatype)
        if unit:
            if not isinstance(term, Literal) or term.number is None:
                raise InvalidInputError(f"a unit needs a number, not {obj!r}.")
            term = Literal(term.value, term.datatype, unit)
        if not str(obj).strip():
            raise InvalidInputError("the object is empty.")
        if not subject.strip() or not relation.strip():
            raise InvalidInputError("the " + ("subject" if not subject.strip() else "relation")
                                    + " is empty.")
    except InvalidInputError as exc:
        raise InvalidInputError(f"line {line}: {exc}") from None
    return Fact(subject.strip(), relation.strip(), term, line)


# -- JSONL -------------------------------------------------------------------------------


def _read_jsonl(text: str) -> Iterator[Record]:
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"line {line}: not JSON ({exc.msg}).") from None
        if not isinstance(obj, dict):
            raise InvalidInputError(f"line {line}: expected a JSON object.")
        try:
            yield _json_record(obj, line)
        except InvalidInputError as exc:
            raise InvalidInputError(f"line {line}: {exc}") from None


def _json_record(obj: dict[str, Any], line: int) -> Record:
    # The common case, on a fast path (keys are checked again when loaded).
    if len(obj) == 3 and all(type(obj.get(k)) is str and obj[k].strip()
                             for k in ("subject", "relation", "object")):
        return Fact(obj["subject"].strip(), obj["relation"].strip(), obj["object"].strip(), line)
    def text(name: str, required: bool = True) -> str | None:
        value = obj.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{name!r} must be a non-empty string.")
        return value.strip()

    def names(name: str) -> tuple[str, ...]:
        value = obj.get(name, [])
        if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
            raise InvalidInputError(f"{name!r} must be a list of strings.")
        return tuple(a.strip() for a in value)

    if "subject" in obj:
        extra = set(obj) - {"subject", "relation", "object", "value", "datatype", "unit"}
        if extra:
            raise InvalidInputError(f"unknown field {sorted(extra)[0]!r}.")
        subject, relation = text("subject"), text("relation")
        assert subject is not None and relation is not None
        if ("object" in obj) == ("value" in obj):
            raise InvalidInputError("give either 'object' (an entity) or 'value' (a value).")
        if "object" in obj and not isinstance(obj["object"], int | float | bool):
            return Fact(subject, relation, text("object") or "", line)
        value = obj.get("value", obj.get("object"))
        return Fact(subject, relation, _json_literal(value, obj.get("datatype"), obj.get("unit")),
                    line)
    if "entity" in obj:
        extra = set(obj) - {"entity", "label", "type", "aliases"}
        if extra:
            raise InvalidInputError(f"unknown field {sorted(extra)[0]!r}.")
        return EntitySpec(text("entity") or "", text("label", False), text("type", False),
                          names("aliases"), line)
    if "relation" in obj:
        extra = set(obj) - {"relation", "label", "aliases"}
        if extra:
            raise InvalidInputError(f"unknown field {sorted(extra)[0]!r}.")
        return RelationSpec(text("relation") or "", text("label", False), names("aliases"), line)
    raise InvalidInputError("expected a fact ('subject'), an 'entity' or a 'relation'.")


def _json_literal(value: Any, datatype: Any, unit: Any) -> Literal:
    if unit is not None and (not isinstance(unit, str) or not unit.strip()):
        raise InvalidInputError("'unit' must be a non-empty string.")
    if datatype is not None and not isinstance(datatype, str):
        raise InvalidInputError("'datatype' must be a string.")
    if isinstance(value, bool):
        lit = Literal(str(value).lower(), datatype or "boolean")
    elif isinstance(value, int):
        lit = Literal(str(value), datatype or "integer")
    elif isinstance(value, float):
        lit = Literal(repr(value), datatype or "decimal")
    elif isinstance(value, str):
        term = infer_term(value, datatype or "string") if datatype else infer_term(value)
        lit = term if isinstance(term, Literal) else Literal(value, "string")
    else:
        raise InvalidInputError("'value' must be a string, number or boolean.")
    if unit:
        if lit.number is None:
            raise InvalidInputError(f"a unit needs a number, not {value!r}.")
        lit = Literal(lit.value, lit.datatype, unit.strip())
    return lit


# -- RDF ---------------------------------------------------------------------------------


def _read_rdf(text: str, fmt: str) -> Iterator[Record]:
    g = rdflib.Graph()
    if fmt == "nt":  # line by line, so that an error names its line
        for line, raw in enumerate(text.splitlines(), 1):
            if raw.strip() and not raw.lstrip().startswith("#"):
                try:
                    g.parse(data=raw, format="nt")
                except Exception as exc:  # rdflib raises many kinds; all mean a bad line
                    raise InvalidInputError(f"line {line}: {_first_line(exc)}") from None
    else:
        if fmt == "json-ld":
            _refuse_remote_contexts(text)
        try:
            g.parse(data=text, format=fmt, publicID=str(ENTITY_NS))
        except Exception as exc:  # rdflib's parsers raise many kinds; all mean bad syntax
            raise InvalidInputError(_first_line(exc)) from None
    properties = set(g.predicates())
    for s, p, o in sorted(g):
        yield _rdf_record(s, p, o, properties)


def _refuse_remote_contexts(text: str) -> None:
    """Refuse a JSON-LD document whose context would be fetched from elsewhere.

    rdflib loads every string ``@context`` (alone or in a list, at any depth, scoped
    contexts included) and every ``@import`` with urllib, from the network or the
    disk, and offers no document loader to refuse it; so the document is checked
    before rdflib sees it. Inline contexts (JSON objects) are fine.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not JSON ({exc.msg} at line {exc.lineno}).") from None
    except RecursionError:
        raise InvalidInputError("the JSON is nested too deeply.") from None
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                found = value if key in ("@context", "@import") else None
                urls = [v for v in (found if isinstance(found, list) else [found])
                        if isinstance(v, str)]
                if urls:
                    raise InvalidInputError(
                        f"the {key} {str(urls[0])[:200]!r} is a link, and imports never fetch "
                        "anything: put the context itself in the file (\"@context\": {...})."
                    )
                stack.append(value)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".") + "."


def _rdf_record(s: Any, p: Any, o: Any, properties: set[Any]) -> Record:
    if isinstance(s, rdflib.BNode) or isinstance(o, rdflib.BNode):
        raise InvalidInputError(
            f"blank nodes are not supported (in the statement about {s.n3()}): give every "
            "node an IRI (@id in JSON-LD), so that importing twice finds the same node."
        )
    if s in properties and p in _LABELS | {SKOS.altLabel}:  # words for a relation
        key = _relation_key(s)
        if p == SKOS.altLabel:
            return RelationSpec(key, None, (str(o),))
        return RelationSpec(key, str(o))
    subject = _entity_key(s)
    if p == RDF.type:
        return Fact(subject, TYPE, _entity_key(o))
    if p in _LABELS:
        return Fact(subject, LABEL, Literal(str(o)))
    if p == SKOS.altLabel:
        return Fact(subject, ALIAS, Literal(str(o)))
    if isinstance(o, rdflib.Literal):
        return Fact(subject, _relation_key(p), _from_rdf_literal(o))
    return Fact(subject, _relation_key(p), _entity_key(o))


def _entity_key(term: Any) -> str:
    text = str(term)
    return unquote(text[len(ENTITY_NS):]) if text.startswith(ENTITY_NS) else text


def _relation_key(term: Any) -> str:
    text = str(term)
    return unquote(text[len(RELATION_NS):]) if text.startswith(RELATION_NS) else text


def _from_rdf_literal(o: rdflib.Literal) -> Literal:
    dt = str(o.datatype) if o.datatype else None
    if dt and dt.startswith(UNIT_NS):
        integer = re.fullmatch(r"[-+]?\d+", str(o)) is not None
        return Literal(str(o), "integer" if integer else "decimal", unquote(dt[len(UNIT_NS):]))
    if o.language:
        return Literal(str(o), f"@{o.language}")
    return Literal(str(o), _XSD_TYPES.get(o.datatype, "string") if o.datatype else "string")


# -- writing -----------------------------------------------------------------------------


def write_records(records: Iterable[Record], out: io.TextIOBase, fmt: str) -> int:
    """Write records in ``fmt``; returns how many facts were written."""
    if fmt == "jsonl":
        return _write_jsonl(records, out)
    if fmt == "csv":
        return _write_csv(records, out)
    g = rdflib.Graph()
    g.bind("e", ENTITY_NS)
    g.bind("r", RELATION_NS)
    g.bind("skos", SKOS)
    facts = 0
    for record in records:
        facts += add_rdf(g, record)
    out.write(g.serialize(format=fmt))
    return facts


def _write_jsonl(records: Iterable[Record], out: io.TextIOBase) -> int:
    facts = 0
    for r in records:
        if isinstance(r, RelationSpec):
            obj: dict[str, Any] = {"relation": r.key, "label": r.label, "aliases": list(r.aliases)}
        elif isinstance(r, EntitySpec):
            obj = {"entity": r.key, "label": r.label, "aliases": list(r.aliases)}
        else:
            facts += 1
            obj = {"subject": r.subject, "relation": r.relation}
            if isinstance(r.object, Literal):
                obj |= {"value": r.object.value, "datatype": r.object.datatype}
                if r.object.unit:
                    obj["unit"] = r.object.unit
            else:
                obj["object"] = r.object
        out.write(json.dumps({k: v for k, v in obj.items() if v not in (None, [])},
                             ensure_ascii=False) + "\n")
    return facts


def _write_csv(records: Iterable[Record], out: io.TextIOBase) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["subject", "relation", "object", "datatype", "unit"])
    facts = 0
    for r in records:
        if isinstance(r, RelationSpec):
            continue  # CSV has no room for relation labels: use JSONL or RDF to keep them
        if isinstance(r, EntitySpec):
            if r.label:
                writer.writerow([r.key, LABEL, r.label, "string", ""])
            for alias in r.aliases:
                writer.writerow([r.key, ALIAS, alias, "string", ""])
            continue
        facts += 1
        if isinstance(r.object, Literal):
            writer.writerow([r.subject, r.relation, r.object.value, r.object.datatype,
                             r.object.unit or ""])
        else:
            writer.writerow([r.subject, r.relation, r.object, "", ""])
    return facts


def _iri(key: str, ns: rdflib.Namespace) -> rdflib.URIRef:
    if "://" in key or key.startswith("urn:"):
        return rdflib.URIRef(key)
    return ns[quote(key, safe="")]


def add_rdf(g: rdflib.Graph, r: Record) -> int:
    """Add one record to ``g`` as RDF; returns 1 for a fact, 0 for a name or relation."""
    if isinstance(r, RelationSpec | EntitySpec):
        node = _iri(r.key, RELATION_NS if isinstance(r, RelationSpec) else ENTITY_NS)
        if r.label:
            g.add((node, RDFS.label, rdflib.Literal(r.label)))
        for alias in r.aliases:
            g.add((node, SKOS.altLabel, rdflib.Literal(alias)))
        return 0
    s = _iri(r.subject, ENTITY_NS)
    p = RDF.type if r.relation == TYPE else _iri(r.relation, RELATION_NS)
    if isinstance(r.object, Literal):
        lit = r.object
        if lit.unit:
            o: Any = rdflib.Literal(lit.value, datatype=rdflib.URIRef(UNIT_NS + quote(lit.unit)))
        elif lit.datatype.startswith("@"):
            o = rdflib.Literal(lit.value, lang=lit.datatype[1:])
        else:
            o = rdflib.Literal(lit.value, datatype=_TO_XSD.get(lit.datatype, XSD.string))
    else:
        o = _iri(r.object, ENTITY_NS)
    g.add((s, p, o))
    return 1
