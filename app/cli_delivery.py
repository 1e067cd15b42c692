"""``exhale delivery``: webhook destinations, signing secrets, and messages not yet delivered."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Annotated

import typer

from app.cli import CliError, cli, unit_of_work
from app.db import utcnow
from app.identity.principal import command_line_principal
from app.orgs import service as orgs
from referral.delivery import admin as delivery_admin
from referral.delivery import service as delivery
from referral.delivery.models import PayloadMode
from referral.delivery.safety import DestinationPolicy
from referral.delivery.schemas import DeliveryRead
from referral.delivery.sealing import Sealer, SealError
from referral.models import OutboxStatus

delivery_cli = typer.Typer(
    help="Webhooks to stop-smoking services: destinations, secrets, undelivered messages.",
    no_args_is_help=True,
)
destination_cli = typer.Typer(help="Where a service receives its webhooks.", no_args_is_help=True)
secret_cli = typer.Typer(help="The secrets that sign a service's webhooks.", no_args_is_help=True)
delivery_cli.add_typer(destination_cli, name="destination")
delivery_cli.add_typer(secret_cli, name="secret")
cli.add_typer(delivery_cli, name="delivery")

ServiceOption = Annotated[str, typer.Option("--service", help="The service's ODS code.")]


@destination_cli.command("set")
def destination_set(
    service: ServiceOption,
    url: Annotated[str, typer.Option(help="The receiver's endpoint; https in production.")],
    mode: Annotated[
        PayloadMode,
        typer.Option(help="`full`: referral, contact details, CO reading; `thin`: ids only."),
    ] = PayloadMode.full,
) -> None:
    """Set (or change) a service's destination. A service without a signing secret gets one,
    printed once on standard output; messages waiting for the service are then sent."""
    with unit_of_work() as (settings, session):
        organisation = orgs.get_by_code_or_raise(session, service)
        _destination, secret = delivery.set_destination(
            session,
            service=organisation,
            url=url,
            mode=mode,
            policy=DestinationPolicy.from_settings(settings),
            now=utcnow(),
            secret_overlap=dt.timedelta(hours=settings.delivery.secret_overlap_hours),
            sealer=Sealer.from_settings(settings.delivery),
        )
    typer.echo(f"Webhooks for {organisation.code} go to the destination, {mode.value}.", err=True)
    if secret is not None:
        typer.echo(secret)
        typer.echo(
            "That is its signing secret: give it to the receiver; it is not shown again.", err=True
        )


def _set_active(service: str, active: bool) -> None:
    with unit_of_work() as (_settings, session):
        organisation = orgs.get_by_code_or_raise(session, service)
        delivery.set_destination_active(session, service=organisation, active=active, now=utcnow())
    state = "resumed" if active else "paused: messages wait until `destination resume`"
    typer.echo(f"Deliveries to {organisation.code} {state}.")


@destination_cli.command("pause")
def destination_pause(service: ServiceOption) -> None:
    """Hold a service's messages (they wait, and their retry window does not run)."""
    _set_active(service, False)


@destination_cli.command("resume")
def destination_resume(service: ServiceOption) -> None:
    """Send a paused service's messages again."""
    _set_active(service, True)


@destination_cli.command("show")
def destination_show(service: ServiceOption) -> None:
    """A service's destination, and when each valid signing secret ends (never the secret)."""
    with unit_of_work() as (_settings, session):
        view = delivery.describe_service(
            session, service=orgs.get_by_code_or_raise(session, service), now=utcnow()
        )
    if view.destination is None:
        typer.echo(f"{view.service_code}: no destination; messages wait for one.")
    else:
        state = "active" if view.destination.is_active else "paused"
        typer.echo(
            f"{view.service_code}: {view.destination.url} "
            f"({view.destination.payload_mode}, {state})"
        )
    for secret in view.valid_secrets:
        until = f"until {secret.expires_at:%Y-%m-%d %H:%M}Z" if secret.expires_at else "current"
        typer.echo(f"  secret created {secret.created_at:%Y-%m-%d %H:%M}Z, {until}")


@secret_cli.command("rotate")
def secret_rotate(
    service: ServiceOption,
    overlap_hours: Annotated[
        float | None,
        typer.Option(
            help="How long the old secret stays valid (EXHALE_DELIVERY__SECRET_OVERLAP_HOURS)."
        ),
    ] = None,
) -> None:
    """Make a new signing secret and print it once: nothing else goes to standard output."""
    with unit_of_work() as (settings, session):
        hours = settings.delivery.secret_overlap_hours if overlap_hours is None else overlap_hours
        if hours < 0:
            raise CliError("--overlap-hours must be 0 or more")
        rotated = delivery.rotate_secret(
            session,
            service=orgs.get_by_code_or_raise(session, service),
            now=utcnow(),
            overlap=dt.timedelta(hours=hours),
            sealer=Sealer.from_settings(settings.delivery),
        )
    typer.echo(rotated.secret)
    previous = (
        f"; the previous one is valid until {rotated.previous_valid_until:%Y-%m-%d %H:%M}Z"
        if rotated.previous_valid_until
        else ""
    )
    typer.echo(f"New signing secret for {rotated.service_code}{previous}.", err=True)


@secret_cli.command("reseal")
def secret_reseal() -> None:
    """Seal every stored secret with the first of EXHALE_DELIVERY__SEALING_KEYS.

    To change the sealing key: put the new key first (`new,old`), run this, then drop the old
    one. The secrets themselves do not change; the services notice nothing.
    """
    with unit_of_work() as (settings, session):
        try:
            count = delivery.reseal_secrets(session, sealer=Sealer.from_settings(settings.delivery))
        except SealError as error:
            raise CliError(f"nothing resealed: {error}") from None
    typer.echo(f"Resealed {count} signing secret(s) with the first key.", err=True)


def _line(item: DeliveryRead) -> str:
    waiting = f" waits for {item.waiting_for}" if item.waiting_for else ""
    if item.blocked_by_id:
        waiting += f" {item.blocked_by_id}"
    code = f" HTTP {item.last_status_code}" if item.last_status_code else ""
    error = f"  {item.last_error}" if item.last_error and not code else ""
    return (
        f"{item.id:<8} {item.status:<8} {item.service_code:<10} {item.event_type:<17} "
        f"referral {item.referral_id or '-':<7} attempts {item.attempts:<3}{code}{waiting}{error}"
    )


@delivery_cli.command("list")
def delivery_list(
    status: Annotated[
        OutboxStatus | None, typer.Option(help="`pending` or `failed` (default: both).")
    ] = None,
    service: Annotated[str | None, typer.Option(help="Only this service (ODS code).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Messages not yet delivered, oldest first, and what each waits for."""
    if status is OutboxStatus.delivered:
        raise CliError("--status must be `pending` or `failed`")
    with unit_of_work() as (_settings, session):
        listed = delivery_admin.list_deliveries(
            session,
            now=utcnow(),
            status=status,
            service=orgs.get_by_code_or_raise(session, service) if service else None,
            limit=limit,
        )
    for item in listed.deliveries:
        typer.echo(_line(item))
    counts = ", ".join(f"{n} {name}" for name, n in listed.counts.items())
    typer.echo(counts, err=True)


@delivery_cli.command("redeliver")
def delivery_redeliver(
    message_id: Annotated[
        int | None, typer.Argument(help="The message's id (`delivery list`).")
    ] = None,
    service: Annotated[str | None, typer.Option(help="With --all-failed: one service.")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every failed message (of --service).")
    ] = False,
) -> None:
    """Send one message again, or every failed message of a service (same webhook-id)."""
    if (message_id is None) == (not all_failed):
        raise CliError("give a message id, or --service CODE --all-failed")
    if all_failed and service is None:
        raise CliError("--all-failed needs --service CODE")
    actor = command_line_principal(getpass.getuser())
    with unit_of_work() as (settings, session):
        if message_id is not None:
            delivery_admin.redeliver(
                session,
                message_id=message_id,
                actor=actor,
                now=utcnow(),
                lease_s=settings.delivery.lease_s,
            )
            typer.echo(f"Message {message_id} will be sent again shortly.")
            return
        assert service is not None
        done = delivery_admin.redeliver_failed(
            session, service=orgs.get_by_code_or_raise(session, service), actor=actor, now=utcnow()
        )
    typer.echo(f"{done.redelivered} failed message(s) to {service.upper()} will be sent again.")
