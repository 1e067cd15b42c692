"""``exhale demo-data`` (a synthetic population) and ``exhale measures export`` (the CSV)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cli import CliError, cli, unit_of_work
from app.clock import local_today
from app.errors import ExhaleError
from app.measures import bulk, demo, export, rollup, service
from app.measures.models import StaffMember
from app.measures.months import Month
from app.orgs.models import Organisation, OrganisationKind

measures_cli = typer.Typer(help="The change package's monthly measures.", no_args_is_help=True)
cli.add_typer(measures_cli, name="measures")


@cli.command("demo-data")
def demo_data(
    pregnancies: Annotated[int, typer.Option(min=1, max=5_000_000, help="How many women.")],
    unit: Annotated[
        list[str] | None,
        typer.Option(help="A unit's code (repeat for more); default: every unit with a service."),
    ] = None,
    months: Annotated[int, typer.Option(min=1, max=60, help="Bookings spread over this.")] = 12,
    seed: Annotated[int, typer.Option(help="Same seed, same population.")] = 1,
) -> None:
    """Add a synthetic population, for demonstrations only.

    Bookings over the last MONTHS months, with tests, referrals, quit attempts and births,
    and each unit's training register (made once, on the first run at a unit).
    Use a database nobody else is writing to."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    today = local_today()
    first = Month.of(today).plus(-months).first_day
    with unit_of_work() as (_settings, session):
        units = _demo_units(session, unit)
        connection = session.connection()
        ids = bulk.next_ids(connection)
        staffed = set(session.scalars(select(StaffMember.unit_id).distinct()))
        unstaffed = [u for u in units if u.id not in staffed]  # a register is made once
        bulk.load(connection, demo.staff(unstaffed, today=today, ids=ids, seed=seed))
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        with progress:
            task = progress.add_task("pregnancies", total=pregnancies)
            for batch in demo.generate(
                units,
                pregnancies=pregnancies,
                first_booking=first,
                months=months,
                today=today,
                ids=ids,
                seed=seed,
            ):
                bulk.load(connection, batch)
                progress.advance(task, len(batch["pregnancy"]) or 1)
        bulk.move_sequences(connection)
        rollup.mark_units(session, [u.id for u in units])
    typer.echo(
        f"Added {pregnancies} pregnancies at {len(units)} unit(s), booked from {first}. "
        "The worker brings the stored measures up to date (or run `exhale measures refresh`)."
    )


def _demo_units(session: Session, codes: list[str] | None) -> list[demo.DemoUnit]:
    statement = select(Organisation).where(
        Organisation.kind == OrganisationKind.maternity_unit.value,
        Organisation.default_service_id.is_not(None),
    )
    if codes:
        statement = statement.where(Organisation.code.in_([c.strip().upper() for c in codes]))
    found = list(session.scalars(statement.order_by(Organisation.code)))
    if not found or (codes and len(found) != len(set(codes))):
        raise CliError(
            "demo-data needs maternity units with a stop-smoking service: run `exhale bootstrap`, "
            "or `exhale orgs create ... --default-service CODE`, and check the --unit codes."
        )
    assert all(u.default_service_id is not None for u in found)
    return [demo.DemoUnit(u.id, u.default_service_id or 0) for u in found]


@measures_cli.command("export")
def measures_export(
    first: Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM.")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM.")] = None,
    unit: Annotated[str | None, typer.Option(help="One unit's code; default: every unit.")] = None,
    suppress_below: Annotated[
        int | None,
        typer.Option(min=0, max=1000, help="Counts 1 to this minus 1 as *; default the setting."),
    ] = None,
) -> None:
    """The national export on standard output: CSV, small numbers suppressed (docs/measures.md)."""
    from app.main import settle_heap

    settle_heap()
    with unit_of_work() as (settings, session):
        try:
            start, end = service.month_range(first, last, today=local_today())
            units = None if unit is None else [service.unit_by_code(session, unit)]
        except ExhaleError as error:
            raise CliError(
                "; ".join(f"--{f.field}: {f.message}" for f in error.fields) or error.detail
            ) from None
        rows = service.iter_values(
            session, units=units, first=start, last=end, settings=settings.measures
        )
        below = settings.measures.suppress_below if suppress_below is None else suppress_below
        for chunk in export.csv_chunks(rows, suppress_below=below):
            sys.stdout.write(chunk)


@measures_cli.command("refresh")
def measures_refresh() -> None:
    """Recount the stored measures that writes have changed (the worker's refresh_measures job
    does this every minute); answers are exact either way, only faster once stored."""
    with unit_of_work() as (settings, session):
        done = rollup.refresh(session, settings.measures, today=local_today())
    typer.echo(f"Recounted {done.pairs} unit-months ({done.marks} writes since the last refresh).")
