"""``exhale mllp``: an HL7 v2 listener (MLLP over TCP) for an integration engine.

MLLP carries no credential, so the listener speaks for one registered API client (``--client``,
role epr): messages are recorded as that client's, at its maternity unit, exactly as if it had
posted them to ``POST /hl7/v2`` with its key. Run one listener per sending system, bound to
127.0.0.1 (the default) or to an interface only the integration engine can reach.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from app.cli import cli, unit_of_work
from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow
from app.errors import ExhaleError
from app.hl7v2 import service
from app.hl7v2.mllp import Limits, Listener, serve
from app.logs import get_logger

log = get_logger(__name__)


def _receive_one(
    sessions: sessionmaker[Session], settings: Settings, client: str, text: str
) -> str:
    """One message in its own transaction: committed when accepted, rolled back otherwise."""
    now = utcnow()
    try:
        with sessions() as session:
            principal = service.principal_for_listener(session, client)
            received = service.receive(
                session, principal=principal, text=text, settings=settings, now=now
            )
            if received.accepted:
                session.commit()
            else:
                session.rollback()
            return received.ack
    except ExhaleError as error:
        log.error("mllp_client_unusable", error=error.code)
    except Exception as error:
        log.error("mllp_message_failed", error_type=type(error).__name__)
    return service.internal_error(text, now=now)


@cli.command("mllp")
def mllp(
    client: Annotated[
        str,
        typer.Option(
            "--client",
            help="The API client (role epr) whose messages these are: its unit and role apply.",
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port.")] = 2575,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    max_message_kb: Annotated[int, typer.Option(help="Largest message accepted, in KB.")] = 1024,
    idle_timeout_s: Annotated[
        float, typer.Option("--idle-timeout", help="Close a connection silent this long (s).")
    ] = 300.0,
) -> None:
    """Receive HL7 v2 ORU^R01 messages over MLLP and answer each with an ACK (AA, AE or AR)."""
    with unit_of_work() as (settings, session):
        service.principal_for_listener(session, client)  # refuse to start for a bad client
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        limits = Limits(max_message_kb * 1024, idle_timeout_s)

        async def handle(text: str) -> str:
            return await asyncio.to_thread(_receive_one, sessions, settings, client, text)

        def refuse(text: str, problem: str) -> str:
            return service.unreadable(text, problem, now=utcnow())

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await serve(
                Listener(handle, refuse, limits),
                host=host,
                port=port,
                stop=stop,
                on_ready=lambda address: typer.echo(
                    f"exhale mllp: listening on {address} for {client}", err=True
                ),
            )

        asyncio.run(main())
    finally:
        engine.dispose()
