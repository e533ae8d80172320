"""``dialoop kg import|add|query|sparql|show|stats|export``, ``dialoop eval kg``, ``/fact``.

None of the ``kg`` commands loads the chat model: the graph answers on its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from dialoop.cli import command_parts, settings_from
from dialoop.cli.chat import COMMANDS, Repl, SlashCommand
from dialoop.config import Settings
from dialoop.errors import InvalidInputError
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.browse import entity_view, triple_dict
from dialoop.knowledge.browse import stats as stats_of

__all__ = ["eval_kg", "kg", "register"]

EXPORT_FORMATS = {"jsonl": "jsonl", "csv": "csv", "ttl": "turtle", "turtle": "turtle",
                  "nt": "nt", "jsonld": "json-ld", "json-ld": "json-ld"}


@contextmanager
def _knowledge(ctx: click.Context, user: str | None, *, writes: Scope | None = None
               ) -> Iterator[tuple[KnowledgeBase, Settings]]:
    """The knowledge base; ``writes``: the scope the command adds to, checked first (``None``
    stands for the acting user's own)."""
    with command_parts(ctx, user=user) as parts:
        if writes is not None:
            parts.permissions.check_scope(parts.settings.user, writes, "add knowledge")
        yield parts.knowledge, parts.settings


user_option = click.option("--user", help="Act as this user (default: the 'user' setting).")


@click.group()
def kg() -> None:
    """The knowledge graph and documents: import, add, query, sparql, show, stats, export."""


@kg.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "turtle", "nt", "json-ld"]),
              help="Graph format (default: from the file name).")
@click.option("--private", is_flag=True, help="Only the acting user sees it (default: everyone).")
@user_option
@click.pass_context
def import_(ctx: click.Context, files: tuple[Path, ...], fmt: str | None, private: bool,
            user: str | None) -> None:
    """Import graph files (.csv .jsonl .ttl .nt .jsonld) or documents (.md .txt .html).

    Each file is imported whole or not at all; importing it again adds nothing.
    """
    acting = settings_from(ctx, user=user).user
    scope = Scope.of(acting) if private else Scope.everyone()
    with _knowledge(ctx, user, writes=scope) as (kb, settings):
        for path in files:
            result = kb.import_file(path, user=settings.user, scope=scope, fmt=fmt)
            if path.suffix.lower() in (".md", ".markdown", ".txt", ".html", ".htm"):
                click.echo(f"{path.name}: {result.added} passages"
                           + (" (already imported)" if not result.added else ""))
            else:
                click.echo(f"{path.name}: {result.added} triples added, {result.existing} "
                           f"already present, {result.names} names")


@kg.command()
@click.argument("subject")
@click.argument("relation")
@click.argument("obj", metavar="OBJECT")
@click.option("--global", "is_global", is_flag=True, help="Everyone sees it (default: only you).")
@user_option
@click.pass_context
def add(ctx: click.Context, subject: str, relation: str, obj: str, is_global: bool,
        user: str | None) -> None:
    """Add one fact: SUBJECT RELATION OBJECT (a number, date or true/false is a value)."""
    acting = settings_from(ctx, user=user).user
    scope = Scope.everyone() if is_global else Scope.of(acting)
    with _knowledge(ctx, user, writes=scope) as (kb, settings):
        t = kb.add_fact(subject, relation, obj, user=settings.user, scope=scope, source="cli")
    click.echo(f"Added {t.citation}: {t.text}" if t else f"Added name {obj!r} for {subject}.")


@kg.command()
@click.argument("question")
@user_option
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--explain", is_flag=True, help="Show the links, relations and triples used.")
@click.pass_context
def query(ctx: click.Context, question: str, user: str | None, as_json: bool,
          explain: bool) -> None:
    """Answer a natural-language QUESTION from the graph and documents (no model)."""
    with _knowledge(ctx, user) as (kb, settings):
        found = kb.lookup(question, user=settings.user)
    if as_json:
        click.echo(json.dumps({**found.describe(),
                               "evidence": [e.to_dict() for e in found.evidence]},
                              ensure_ascii=False, indent=2))
        return
    if found.answer:
        click.echo(found.answer)
    elif found.evidence:
        click.echo("No graph answer; the most relevant passages:")
    else:
        click.echo("Nothing in the knowledge base is about that.")
    for i, e in enumerate(found.evidence, 1):
        click.echo(f"  [{i}] {e.source}  {e.text[:160]}")
    if explain:
        click.echo(json.dumps(found.details.get("graph", {}), ensure_ascii=False, indent=2))


@kg.command()
@click.argument("sparql_query", metavar="QUERY")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "xml", "turtle"]),
              help="json (default), csv or xml for SELECT/ASK; turtle for CONSTRUCT/DESCRIBE.")
@user_option
@click.pass_context
def sparql(ctx: click.Context, sparql_query: str, fmt: str | None, user: str | None) -> None:
    """Run a read-only SPARQL QUERY over the facts you see ('-' reads it from stdin).

    Prefixes e: (entities), r: (relations), rdf:, rdfs:, skos: and xsd: are predeclared,
    e.g.  dialoop kg sparql 'SELECT ?p WHERE { ?p r:made_by ?m }'
    """
    from dialoop.knowledge.sparql import run_sparql

    text = sys.stdin.read() if sparql_query == "-" else sparql_query
    with _knowledge(ctx, user) as (kb, settings):
        try:
            result = run_sparql(kb.graph, text, settings.user)
            out = result.serialize(fmt or result.formats()[0])
        except InvalidInputError as exc:  # the query is the argument: a usage error, exit 2
            raise click.BadParameter(str(exc), param_hint="QUERY") from None
    click.echo(out.rstrip("\n"))


@kg.command()
@click.argument("entity")
@user_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, entity: str, user: str | None, as_json: bool) -> None:
    """Show an ENTITY (its label, key or alias): its names and every fact about it."""
    with _knowledge(ctx, user) as (kb, settings):
        names, triples = entity_view(kb, entity, settings.user)
    if as_json:
        click.echo(json.dumps({"names": names, "triples": [triple_dict(t) for t in triples]},
                              ensure_ascii=False, indent=2))
        return
    click.echo("names: " + ", ".join(f"{n} ({k})" for n, k in names))
    for t in triples:
        scope = t.scope
        click.echo(f"  [{t.citation}] {t.text}   · {t.source}, {scope}, "
                   f"{t.created_at:%Y-%m-%d}" + (f", lesson {t.lesson_id}" if t.lesson_id else ""))


@kg.command()
@user_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """Count the facts, entities, relations and documents you see."""
    with _knowledge(ctx, user) as (kb, settings):
        figures = stats_of(kb, settings.user)
    top = figures.pop("top_relations")
    if as_json:
        click.echo(json.dumps({**figures, "top_relations": top}, indent=2))
        return
    for name, value in figures.items():
        click.echo(f"{name:<18} {value:>10,}")
    if top:
        click.echo("top relations:    " + ", ".join(f"{r} ({n:,})" for r, n in top.items()))


@kg.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (format from the name) instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORT_FORMATS)),
              help="jsonl (default), csv, ttl, nt or jsonld.")
@user_option
@click.pass_context
def export(ctx: click.Context, output: Path | None, fmt: str | None, user: str | None) -> None:
    """Export every fact you see (global and yours) in a format `kg import` reads back."""
    from dialoop.knowledge.graph import export_records
    from dialoop.knowledge.io import write_records

    if fmt is None:
        fmt = output.suffix.lstrip(".").lower() if output and output.suffix else "jsonl"
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(f"Cannot export to {output}: name it .jsonl, .csv, .ttl, "
                                    ".nt or .jsonld, or pass --format.")
    with _knowledge(ctx, user) as (kb, settings):
        records = export_records(kb.graph, settings.user)
        if output:
            with output.open("w", encoding="utf-8", newline="") as out:
                n = write_records(records, out, EXPORT_FORMATS[fmt])
            click.echo(f"Wrote {n:,} triples to {output}", err=True)
        else:
            write_records(records, sys.stdout, EXPORT_FORMATS[fmt])


@click.command("kg")
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path),
              default=Path("examples/kgqa"), show_default=True,
              help="Folder with graph.jsonl and questions.jsonl.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["template", "model", "none"]),
              help="template: graph + template; model: graph + model wording; none: model "
                   "alone (default: all three).")
@click.option("--limit", type=int, help="Only the first N questions.")
@click.option("--model", metavar="SPEC", help="The model (default: the bundled one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with every failure).")
@click.pass_context
def eval_kg(ctx: click.Context, dataset: Path, modes: tuple[str, ...], limit: int | None,
            model: str | None, as_json: bool) -> None:
    """Exact-match accuracy on a KG QA set, per question type, with and without knowledge."""
    from dialoop.engine import open_engine
    from dialoop.eval.kg import MODES, evaluate, load_dataset

    load_dataset(dataset)  # a folder that is not a dataset fails before the model loads
    settings = settings_from(ctx, model=model)
    modes = modes or MODES
    engine = open_engine(settings)
    try:
        with click.progressbar(length=0, label="eval kg", file=sys.stderr) as bar:
            def progress(mode: str, done: int, total: int) -> None:
                bar.length = total
                bar.label = f"eval kg [{mode}]"
                bar.update(done - bar.pos)

            reports = evaluate(dataset, settings, engine, modes=modes, limit=limit,
                               progress=progress)
    finally:
        engine.close()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
        return
    types = sorted({t for r in reports for t in r.by_type})
    click.echo(f"{'mode':<10}" + "".join(f"{t:>14}" for t in [*types, "all"])
               + f"{'false declines':>16}{'seconds':>9}")
    for r in reports:
        acc = r.accuracy()
        click.echo(f"{r.mode:<10}" + "".join(
            f"{acc[t]:>8.3f} ({len(r.by_type[t]):>3})" for t in types)
            + f"{acc['all']:>14.3f}{r.false_declines:>16}{r.seconds:>9.0f}")


def _fact(repl: Repl, rest: str) -> None:
    parts = [p.strip() for p in rest.split("|")]
    if len(parts) != 3 or not all(parts):
        click.echo("Usage: /fact SUBJECT | RELATION | OBJECT   e.g. /fact Aurora Lamp | price | "
                   "18 EUR")
        return
    t = repl.bot.parts.knowledge.add_fact(*parts, user=repl.session.user_id, source="chat")
    if t is None:
        click.echo(f"Noted: {parts[0]} is also called {parts[2]} (only for you).")
    else:
        click.echo(f"Noted {t.citation}: {t.text} (only for you).")


def register(cli: click.Group, eval_group: click.Group) -> None:
    """Attach ``kg``, ``eval kg`` and the ``/fact`` chat command."""
    cli.add_command(kg)
    eval_group.add_command(eval_kg)
    COMMANDS["fact"] = SlashCommand(_fact, "teach a fact (only you see it)",
                                    "SUBJECT | RELATION | OBJECT")
