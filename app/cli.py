"""The ``exhale`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.config import ConfigError, Settings, load_settings, sqlite_path
from app.errors import ExhaleError
from devices.cli import bridge_command, simulator_command

cli = typer.Typer(
    name="exhale",
    help="CO screening in pregnancy and opt-out referral to stop-smoking support.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CliError(Exception):
    """Ends the command with one line on standard error and a non-zero exit."""


def _settings() -> Settings:
    from app.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _prepare_database(settings: Settings, revision: str = "head") -> None:
    """Migrate, creating the SQLite file's folder first when needed."""
    path = sqlite_path(settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    from app import migrate

    migrate.upgrade(settings.database_url, revision)


def _bootstrap(settings: Settings) -> None:
    from app.bootstrap import bootstrap_if_empty
    from app.db import make_engine, make_sessionmaker, session_scope

    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            created = bootstrap_if_empty(session)
    finally:
        engine.dispose()
    if created is None:
        return
    typer.echo(
        "\n"
        f"  First start: created maternity unit {created.unit_code}, stop-smoking service "
        f"{created.service_code} and an administrator.\n"
        f"    username: {created.username}\n"
        f"    password: {created.password}\n"
        "  The password is shown once; you will be asked to change it when you first log in.\n"
    )


orgs_cli = typer.Typer(help="Maternity units and stop-smoking services.", no_args_is_help=True)
users_cli = typer.Typer(help="People who log in to the web pages.", no_args_is_help=True)
apikey_cli = typer.Typer(
    help="API keys for machines: EPRs, bridges, services.", no_args_is_help=True
)
audit_cli = typer.Typer(help="The audit trail of patient records.", no_args_is_help=True)
cli.command("simulator", help="A simulated CO monitor on a pseudo-terminal (prints its path).")(
    simulator_command
)
cli.command("bridge", help="Forward a monitor's results to the exhale service, losing none.")(
    bridge_command
)
cli.add_typer(orgs_cli, name="orgs")
cli.add_typer(users_cli, name="users")
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(audit_cli, name="audit")


@contextmanager
def unit_of_work() -> Iterator[tuple[Settings, Session]]:
    """Settings and a session committed on success; exhale errors become one line."""
    from app.db import make_engine, make_sessionmaker, session_scope

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield settings, session
    finally:
        engine.dispose()


@cli.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the database's tables up to date (creates the SQLite file if needed)."""
    _prepare_database(_settings(), revision)
    typer.echo(f"Database migrated to {revision}.")


@cli.command()
def bootstrap() -> None:
    """Migrate, and on an empty database create the demo unit, service and admin account."""
    settings = _settings()
    _prepare_database(settings)
    _bootstrap(settings)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default EXHALE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default EXHALE_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Web processes sharing the port (default 1). Requests are mostly CPU-bound "
            "Python, so more processes use more cores: one per core is a good start.",
        ),
    ] = 1,
) -> None:
    """Serve the web app and API (without the worker)."""
    import uvicorn

    from app import serving
    from app.logs import configure_logging

    settings = _settings()
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "access_log": False,
        "log_config": None,
        "server_header": False,
    }
    if workers == 1:
        from app.main import create_app, settle_heap

        application = create_app(settings)
        settle_heap()
        uvicorn.run(application, **options)
    elif serving.reuse_port_supported():
        # Each process binds the port itself, so the kernel spreads connections over them, and
        # builds its own app (and connection pool) from the environment.
        configure_logging(settings.log_level, json=settings.log_json)
        supervisor = serving.Supervisor(
            workers=workers, host=options.pop("host"), port=options.pop("port"), options=options
        )
        try:
            code = supervisor.run()
        except OSError as error:
            typer.echo(f"Cannot listen on {supervisor.host}:{supervisor.port}: {error}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)
    else:
        uvicorn.run("app.main:serving_app", factory=True, workers=workers, **options)


@cli.command()
def worker() -> None:
    """Run the worker: webhook delivery and scheduled jobs. Stops cleanly on SIGTERM or Ctrl-C."""
    from app.worker import run_worker

    run_worker(_settings())


@cli.command()
def run(
    host: Annotated[str | None, typer.Option(help="Interface (default EXHALE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default EXHALE_PORT).")] = None,
) -> None:
    """Everything `make run` needs: migrate, bootstrap, then the web app and the worker together."""
    settings = _settings()
    _prepare_database(settings)
    _bootstrap(settings)
    worker_process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
    try:
        typer.echo(
            f"  exhale is starting on http://{host or settings.host}:{port or settings.port} "
            "(Ctrl-C stops the web app and the worker)\n"
        )
        serve(host=host, port=port)
    finally:
        _stop_child(worker_process)


def _stop_child(process: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _describe_exhale_error(error: Exception) -> str:
    assert isinstance(error, ExhaleError)
    fields = "; ".join(f"{f.field}: {f.message}" for f in error.fields)
    return f"{error.detail} {fields}".strip()


def _database_for_humans() -> str:
    from sqlalchemy.engine import make_url

    return make_url(load_settings().database_url).render_as_string(hide_password=True)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"exhale: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected failure ends with one line saying what to change."""
    handlers: dict[type[Exception], Callable[[Exception], str]] = {
        ConfigError: lambda e: f"configuration error: {e}",
        CliError: str,
        ExhaleError: _describe_exhale_error,
        SQLAlchemyError: lambda e: (
            f"the database at {_database_for_humans()} could not be used ({type(e).__name__}): "
            "check EXHALE_DATABASE_URL, that the server is running and that the user may connect"
        ),
    }
    try:
        cli(args=argv, standalone_mode=True)
    except tuple(handlers) as error:
        for kind, describe in handlers.items():
            if isinstance(error, kind):
                _fail(describe(error), 1 if kind is SQLAlchemyError else 2)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


import app.cli_admin  # noqa: E402, F401  (registers the administration commands)
import app.cli_delivery as _delivery_commands  # noqa: E402, F401  (`exhale delivery`)
import app.cli_measures as _measures_commands  # noqa: E402, F401  (`demo-data`, `measures`)
import app.cli_mllp as _mllp_commands  # noqa: E402, F401  (`exhale mllp`)
import app.cli_oauth as _oauth_commands  # noqa: E402, F401  (`exhale oauth`)

if __name__ == "__main__":
    # Run as `python -m app.cli`: use the importable module, where every command is registered.
    from app.cli import main as entry_point

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    entry_point()
