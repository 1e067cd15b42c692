"""``exhale oauth``: clients that authenticate with signed JWTs, and their public keys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli import CliError, cli, unit_of_work
from app.db import utcnow
from app.identity import service as identity
from app.identity.models import ClientRole
from app.logs import get_logger
from app.oauth import keys
from app.orgs import service as orgs

log = get_logger(__name__)

oauth_cli = typer.Typer(
    help="Signed-JWT client credentials (RFC 7523) for EPRs: clients and their public keys.",
    no_args_is_help=True,
)
client_cli = typer.Typer(help="Clients that get tokens with signed JWTs.", no_args_is_help=True)
key_cli = typer.Typer(help="The public keys a client signs with.", no_args_is_help=True)
oauth_cli.add_typer(client_cli, name="client")
oauth_cli.add_typer(key_cli, name="key")
cli.add_typer(oauth_cli, name="oauth")

ClientOption = Annotated[str, typer.Option("--client", help="The client id (API client name).")]


@client_cli.command("create")
def client_create(
    name: Annotated[str, typer.Option(help="The client id the EPR puts in iss and sub.")],
    role: Annotated[ClientRole, typer.Option(help="epr, bridge or service.")],
    organisation: Annotated[str, typer.Option(help="ODS code of its unit or service.")],
) -> None:
    """Create a client that authenticates by signed JWT only (it has no usable API key)."""
    with unit_of_work() as (_settings, session):
        identity.create_api_client(
            session,
            name=name,
            role=role,
            organisation=orgs.get_by_code_or_raise(session, organisation),
        )  # the API key it returns is dropped unseen: only signed assertions can authenticate
        typer.echo(f"Created client {name}; register its public keys with `exhale oauth key add`.")


def _read_jwks(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the JWKS file {path}: {error.__class__.__name__}") from None


@key_cli.command("add")
def key_add(
    client: ClientOption,
    jwks: Annotated[str, typer.Option(help="A JWKS file of public keys; `-` reads stdin.")],
) -> None:
    """Register a client's public keys (a JWKS). Keys already registered are left as they are."""
    text = _read_jwks(jwks)
    with unit_of_work() as (_settings, session):
        api_client = keys.get_client_or_raise(session, client)
        registration = keys.register(session, client=api_client, jwks_text=text, now=utcnow())
    log.info("oauth_keys_registered", client=client, added=registration.added)
    for kid in registration.added:
        typer.echo(f"Registered key {kid} for {client}.")
    for kid in registration.unchanged:
        typer.echo(f"Key {kid} was already registered for {client}.")


@key_cli.command("list")
def key_list(client: ClientOption) -> None:
    """List a client's keys by kid, with their RFC 7638 thumbprints."""
    with unit_of_work() as (_settings, session):
        api_client = keys.get_client_or_raise(session, client)
        for key in keys.list_(session, client=api_client):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
            typer.echo(f"{key.kid:<40} {key.kty:<4} {key.thumbprint}  {state}")


@key_cli.command("revoke")
def key_revoke(
    client: ClientOption,
    kid: Annotated[str, typer.Option(help="The key's kid, as `exhale oauth key list` shows.")],
) -> None:
    """Revoke one key at once: its assertions and the access tokens it earned are refused."""
    with unit_of_work() as (_settings, session):
        api_client = keys.get_client_or_raise(session, client)
        keys.revoke(session, client=api_client, kid=kid, now=utcnow())
    log.info("oauth_key_revoked", client=client, kid=kid)
    typer.echo(f"Revoked key {kid} of {client}.")
