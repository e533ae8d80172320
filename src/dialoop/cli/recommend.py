"""``dialoop recommend``: a catalogue, interactions, and each user's recommendations.

    dialoop recommend import books.jsonl            # the catalogue (admin)
    dialoop recommend import --kg-type Movie        # or a knowledge-graph type
    dialoop recommend events ratings.csv            # past interactions of many users (admin)
    dialoop recommend rate b12 5                    # one of your own
    dialoop recommend list -k 5                     # your list, with reasons
    dialoop recommend train                         # the collaborative part (admin)

No chat model is loaded: recommending needs only the sentence encoder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from dialoop.cli import command_parts
from dialoop.recommend import EVENT_KINDS, Recommender, read_catalogue, read_interactions

__all__ = ["recommend"]

user_option = click.option("--user", help="Act as this user (default: the 'user' setting).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def recommend() -> None:
    """Personalised recommendations from a catalogue and what users do."""


@contextmanager
def _recommender(ctx: click.Context, user: str | None, *, admin_for: str | None = None
                 ) -> Iterator[tuple[Recommender, str]]:
    with command_parts(ctx, **({"user": user} if user else {})) as parts:
        if admin_for is not None:
            parts.permissions.require_admin(parts.settings.user, admin_for)
        yield parts.recommender, parts.settings.user


@recommend.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--kg-type", help="Import the knowledge graph's entities of this type instead.")
@user_option
@click.pass_context
def import_items(ctx: click.Context, file: Path | None, kg_type: str | None,
                 user: str | None) -> None:
    """Add or update the catalogue from FILE (JSONL/CSV with id, title, text and any other
    fields as attributes; or RecBole's .item file, its folder or wheel)."""
    if (file is None) == (kg_type is None):
        raise click.UsageError("Give a catalogue FILE or --kg-type TYPE (one of the two).")
    with command_parts(ctx, **({"user": user} if user else {})) as parts:
        parts.permissions.require_admin(parts.settings.user, "import the shared catalogue")
        if kg_type is not None:
            from dialoop.recommend.graph import items_from_graph

            items = items_from_graph(parts.knowledge, kg_type, user=parts.settings.user)
        else:
            assert file is not None
            items = read_catalogue(file)
        counts = parts.recommender.import_items(items)
    click.echo(f"Catalogue: {counts['added']} items added, {counts['updated']} updated.")


@recommend.command()
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@user_option
@click.pass_context
def events(ctx: click.Context, file: Path, user: str | None) -> None:
    """Record past interactions of many users from FILE (JSONL/CSV with user, item, kind,
    value, time; or RecBole's .inter file, its folder or wheel). Admin only."""
    with _recommender(ctx, user, admin_for="record interactions for other users") as (rec, _):
        stored = 0
        batch: list = []
        with click.progressbar(read_interactions(file), label="Recording") as rows:
            for event in rows:
                batch.append(event)
                if len(batch) == 5000:
                    stored += len(rec.record_many(batch))
                    batch = []
        stored += len(rec.record_many(batch)) if batch else 0
    click.echo(f"Recorded {stored} interactions.")


@recommend.command()
@click.argument("item")
@click.argument("stars", type=click.FloatRange(0, 5))
@user_option
@click.pass_context
def rate(ctx: click.Context, item: str, stars: float, user: str | None) -> None:
    """Rate ITEM (its id) with STARS, 0 to 5: your next list changes at once."""
    with _recommender(ctx, user) as (rec, me):
        rec.record(me, item, "rating", stars)
    click.echo(f"Rated {item}: {stars:g} stars.")


@recommend.command()
@click.argument("item")
@click.option("--kind", type=click.Choice([k for k in EVENT_KINDS if k != "rating"]),
              default="like", show_default=True)
@user_option
@click.pass_context
def event(ctx: click.Context, item: str, kind: str, user: str | None) -> None:
    """Record that you viewed, clicked, liked, bought, disliked or skipped ITEM."""
    with _recommender(ctx, user) as (rec, me):
        rec.record(me, item, kind)
    click.echo(f"Recorded: {kind} {item}.")


@recommend.command("list")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--no-explore", is_flag=True, help="Only the top items, no exploring slot.")
@user_option
@json_option
@click.pass_context
def list_(ctx: click.Context, k: int, no_explore: bool, user: str | None,
          as_json: bool) -> None:
    """Your top K items, each with why."""
    with _recommender(ctx, user) as (rec, me):
        found = rec.recommend(me, k=k, explore=0.0 if no_explore else None)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in found], ensure_ascii=False))
        return
    if not found:
        click.echo("Nothing to recommend: the catalogue is empty (`dialoop recommend import`).")
    for n, r in enumerate(found, 1):
        click.echo(f"{n:>2}. {r.title}  [{r.key}]\n    {r.reason}")
        if r.path:
            a, rel, v, _, b = r.path
            click.echo(f"    {a} —{rel}→ {v} ←{rel}— {b}")


@recommend.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@user_option
@json_option
@click.pass_context
def history(ctx: click.Context, limit: int, user: str | None, as_json: bool) -> None:
    """Your interactions, newest first."""
    with _recommender(ctx, user) as (rec, me):
        rows = rec.history(me, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        value = f" {r['value']:g}" if r["value"] is not None else ""
        click.echo(f"{r['time'][:19]}  {r['kind']}{value}  {r['title']} [{r['item']}]")


@recommend.command()
@click.argument("item", required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_option
@click.pass_context
def forget(ctx: click.Context, item: str | None, yes: bool, user: str | None) -> None:
    """Delete your interactions with ITEM, or all of them."""
    if item is None and not yes:
        click.confirm("Delete all your interactions?", abort=True)
    with _recommender(ctx, user) as (rec, me):
        n = rec.forget(me, item)
    click.echo(f"Deleted {n} interactions.")


@recommend.command()
@click.option("--search", help="Only items whose title contains this.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@click.pass_context
def items(ctx: click.Context, search: str | None, limit: int, as_json: bool) -> None:
    """The catalogue's items."""
    with _recommender(ctx, None) as (rec, _):
        rows = rec.items(limit=limit, search=search)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(f"{r['item']:<12} {r['title']}")


@recommend.command()
@click.option("--threads", type=click.IntRange(0, 64), default=0,
              help="Threads for the factorisation (0: all cores).")
@user_option
@json_option
@click.pass_context
def train(ctx: click.Context, threads: int, user: str | None, as_json: bool) -> None:
    """Learn the collaborative part from everyone's interactions and serve it. Admin only."""
    with _recommender(ctx, user, admin_for="train the recommender") as (rec, _):
        report = rec.train(threads=threads)
    if as_json:
        click.echo(json.dumps(report))
        return
    kind = (f"ALS with {report['factors']} factors (regularization {report['regularization']:g}, "
            f"alpha {report['alpha']:g})" if report["collaborative"]
            else "no collaborative part (too few interactions)")
    click.echo(f"Model v{report['version']} serves: {report['events']} interactions of "
               f"{report['users']} users; {kind}; collaborative share {report['blend']:.2f}, "
               f"popularity weight {report['prior']:.2f}; held-out NDCG@10 "
               f"{report['validation_ndcg10']:.3f}.")


@recommend.command()
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """The trained models, which serves."""
    with _recommender(ctx, None) as (rec, _):
        rows = rec.models()
    if as_json:
        click.echo(json.dumps(rows))
        return
    for m in rows:
        click.echo(f"v{m['version']:<3} {m['status']:<8} {m['created_at'][:19]}  "
                   f"{m['events']} interactions, share {m['blend']:.2f}, "
                   f"NDCG@10 {m['validation_ndcg10']:.3f}")


@recommend.command()
@click.argument("version", type=int)
@user_option
@click.pass_context
def use(ctx: click.Context, version: int, user: str | None) -> None:
    """Serve model VERSION again (a rollback). Admin only."""
    with _recommender(ctx, user, admin_for="choose the recommender's model") as (rec, _):
        rec.use(version)
    click.echo(f"Model v{version} serves.")
