"""``dialoop import rasa PROJECT_DIR [-o OUT_DIR]``: another system's project as dialoop files."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["import_group"]


@click.group("import")
def import_group() -> None:
    """Convert another system's project into a dialoop domain."""


@import_group.command("rasa")
@click.argument("project", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write domain.yaml, stories.yaml, tests.yaml and the report "
                   "(default: PROJECT/dialoop).")
def rasa(project: Path, out: Path | None) -> None:
    """Convert the Rasa 3.x project in PROJECT (domain.yml, data/, tests/).

    Whatever cannot be converted is printed with its file and line, and kept in
    OUT/import_report.txt.
    """
    from dialoop.dialogue.domain import load_domain, load_scripts
    from dialoop.interop.rasa import import_rasa

    out = out or project / "dialoop"
    result = import_rasa(project, out)
    domain = load_domain(out / "domain.yaml")  # what we wrote must load: checked here
    if (out / "tests.yaml").is_file():
        load_scripts(out / "tests.yaml", domain)
    click.echo(f"{project} → {out}: {result.intents} intents, {result.slots} slots, "
               f"{result.templates} templates, {result.rules} rules, {result.stories} stories, "
               f"{result.tests} test dialogues, {len(result.tools)} custom actions")
    if result.skipped:
        click.echo(f"Not converted, or only approximately ({len(result.skipped)}):")
        for item in dict.fromkeys(str(s) for s in result.skipped):
            click.echo(f"  {item}")
    click.echo(f"Report: {result.report}")
    if (out / "tests.yaml").is_file():
        click.echo(f"Try it: dialoop eval dialogue --domain {out / 'domain.yaml'} "
                   f"--tests {out / 'tests.yaml'} --policy rule")
