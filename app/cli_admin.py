"""``exhale orgs``, ``exhale users``, ``exhale apikey`` and ``exhale audit``: administration."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from app.cli import CliError, apikey_cli, audit_cli, orgs_cli, unit_of_work, users_cli
from app.db import utcnow
from app.identity import service as identity
from app.identity.models import ApiClient, ClientRole, User, UserRole
from app.identity.principal import command_line_principal
from app.orgs import service as orgs
from app.orgs.models import OrganisationKind

KIND_NAMES = {
    "unit": OrganisationKind.maternity_unit,
    "service": OrganisationKind.stop_smoking_service,
}


@orgs_cli.command("create")
def orgs_create(
    code: Annotated[str, typer.Option(help="ODS code, e.g. RXX01.")],
    name: Annotated[str, typer.Option(help="Name shown to users.")],
    kind: Annotated[str, typer.Option(help="`unit` (maternity unit) or `service` (stop-smoking).")],
    default_service: Annotated[
        str | None, typer.Option(help="For a unit: the ODS code of its stop-smoking service.")
    ] = None,
) -> None:
    """Add a maternity unit or a stop-smoking service."""
    if kind not in KIND_NAMES:
        raise CliError("--kind must be `unit` or `service`")
    if kind == "unit" and not default_service:
        raise CliError(
            "a unit needs --default-service CODE: the stop-smoking service its referrals go to "
            "(create the service first)"
        )
    with unit_of_work() as (_settings, session):
        organisation = orgs.create(
            session,
            code=code,
            name=name,
            kind=KIND_NAMES[kind],
            default_service_code=default_service,
        )
        typer.echo(f"Created {organisation.kind.replace('_', ' ')} {organisation.code}.")


@orgs_cli.command("set-default-service")
def orgs_set_default_service(
    unit: Annotated[str, typer.Option(help="The maternity unit's ODS code.")],
    service: Annotated[str, typer.Option(help="The stop-smoking service's ODS code.")],
) -> None:
    """Send a unit's referrals to this service (unless her postcode district routes elsewhere)."""
    with unit_of_work() as (_settings, session):
        organisation = orgs.set_default_service(session, unit_code=unit, service_code=service)
        typer.echo(f"{organisation.code} now refers to {service.upper()}.")


@orgs_cli.command("route")
def orgs_route(
    unit: Annotated[str, typer.Option(help="The maternity unit's ODS code.")],
    district: Annotated[str, typer.Option(help="Postcode district, e.g. LS1.")],
    service: Annotated[str, typer.Option(help="The stop-smoking service's ODS code.")],
) -> None:
    """Route a unit's referrals for one postcode district to a particular service."""
    with unit_of_work() as (_settings, session):
        orgs.route_district(session, unit_code=unit, district=district, service_code=service)
        typer.echo(f"{unit.upper()}: referrals from {district.upper()} go to {service.upper()}.")


@orgs_cli.command("list")
def orgs_list() -> None:
    """List organisations with their codes."""
    with unit_of_work() as (_settings, session):
        for org in orgs.list_(session):
            default = f" -> {org.default_service.code}" if org.default_service else ""
            typer.echo(f"{org.code:<16} {org.kind:<22} {org.name}{default}")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_cli.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name (lower case).")],
    role: Annotated[UserRole, typer.Option(help="What the person does.")],
    organisation: Annotated[str, typer.Option(help="ODS code of their unit or service.")],
    display_name: Annotated[str, typer.Option(help="Full name shown on pages.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    must_change_password: Annotated[
        bool, typer.Option(help="Ask for a new password at first login.")
    ] = True,
) -> None:
    """Add a person who logs in (password from a prompt or --password-stdin)."""
    password = _read_password(password_stdin)
    with unit_of_work() as (settings, session):
        user = identity.create_user(
            session,
            username=username,
            role=role,
            organisation=orgs.get_by_code_or_raise(session, organisation),
            password=password,
            min_password_length=settings.auth.min_password_length,
            display_name=display_name,
            must_change_password=must_change_password,
        )
        typer.echo(f"Created {user.role} {user.username} at {user.organisation.code}.")


def _set_active(username: str, active: bool) -> None:
    with unit_of_work() as (_settings, session):
        user = identity.get_user_by_username_or_raise(session, username)
        identity.set_active(session, user=user, active=active)
        typer.echo(f"{'Enabled' if active else 'Disabled'} {user.username}.")


@users_cli.command("disable")
def users_disable(username: Annotated[str, typer.Argument()]) -> None:
    """Stop someone logging in; their open sessions end at once."""
    _set_active(username, False)


@users_cli.command("enable")
def users_enable(username: Annotated[str, typer.Argument()]) -> None:
    """Let a disabled person log in again."""
    _set_active(username, True)


@users_cli.command("list")
def users_list() -> None:
    """List people with their role and organisation."""
    with unit_of_work() as (_settings, session):
        for user in session.scalars(select(User).order_by(User.username)):
            state = "" if user.is_active else "  (disabled)"
            typer.echo(f"{user.username:<24} {user.role:<8} {user.organisation.code}{state}")


@apikey_cli.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="A name for the system, e.g. epr-main.")],
    role: Annotated[ClientRole, typer.Option(help="epr, bridge or service.")],
    organisation: Annotated[str, typer.Option(help="ODS code of its unit or service.")],
) -> None:
    """Create an API key and print it once: nothing else goes to standard output."""
    with unit_of_work() as (_settings, session):
        _client, secret = identity.create_api_client(
            session,
            name=name,
            role=role,
            organisation=orgs.get_by_code_or_raise(session, organisation),
        )
    typer.echo(secret)
    typer.echo(f"Created API key {name}; store it now, it cannot be shown again.", err=True)


@apikey_cli.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key at once."""
    with unit_of_work() as (_settings, session):
        identity.revoke_api_client(session, name=name, now=utcnow())
        typer.echo(f"Revoked {name}.")


@apikey_cli.command("list")
def apikey_list() -> None:
    """List API clients (never their secrets)."""
    with unit_of_work() as (_settings, session):
        for client in session.scalars(select(ApiClient).order_by(ApiClient.name)):
            state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "active"
            typer.echo(f"{client.name:<24} {client.role:<8} {client.organisation.code:<10} {state}")


@audit_cli.command("who-viewed")
def audit_who_viewed(
    nhs_number: Annotated[
        str, typer.Option(help="The woman's NHS number; `-` reads it from standard input.")
    ],
) -> None:
    """Who has looked at this woman's record, oldest first (the query is audited too)."""
    from app.api.pregnancies import parse_nhs_number
    from app.audit.history import access_history

    if nhs_number == "-":
        nhs_number = sys.stdin.readline().strip()
    with unit_of_work() as (settings, session):
        number = parse_nhs_number(
            nhs_number, allow_synthetic=settings.synthetic_nhs_numbers_allowed
        )
        history = access_history(
            session, principal=command_line_principal(getpass.getuser()), nhs_number=number
        )
    if not history.pregnancy_ids:
        typer.echo("No pregnancy is recorded for that NHS number.")
        return
    for event in history.events:
        typer.echo(
            f"{event.occurred_at:%Y-%m-%d %H:%M:%S}Z  {event.outcome:<7} {event.action:<11} "
            f"{event.record_type or '-'}:{event.record_id or '-':<8} "
            f"{event.actor_type}:{event.actor_name} ({event.role or '-'})"
        )
