"""Command functions for the main ``exhale`` CLI to register (``devices`` builds no Typer app).

cli.command("simulator")(simulator_command)
cli.command("bridge")(bridge_command)
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from devices.bridge import Bridge, BridgeStatus
from devices.simulator import load_scenario, run_simulator

DEFAULT_QUEUE = Path("var/bridge-queue.db")


def simulator_command(
    scenario: Annotated[
        str,
        typer.Option(
            help="A scenario JSON file, or fixed:N, mix, mix:SEED, file:PATH, faults, manual."
        ),
    ] = "mix",
    fast: Annotated[
        bool, typer.Option("--fast", help="Every timing at 1/100 (a 15 s breath hold: 0.15 s).")
    ] = False,
    link: Annotated[
        Path | None,
        typer.Option(help="Keep a symbolic link here to the terminal, across reconnects."),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(help="JSON file keeping sequence numbers across restarts."),
    ] = None,
) -> None:
    """Run a simulated CO monitor on a pseudo-terminal until Ctrl-C; prints the port to use."""
    _ensure_logging()
    try:
        chosen = load_scenario(scenario)
    except (ValueError, TypeError, OSError) as error:
        raise typer.BadParameter(str(error), param_hint="--scenario") from None
    try:
        monitor = run_simulator(chosen, fast=fast, link=link, state_file=state_file)
    except FileExistsError as error:
        raise typer.BadParameter(str(error), param_hint="--link") from None
    _stop_on_sigterm()
    typer.echo(monitor.path)
    if link is not None:
        typer.echo(f"link: {link}", err=True)
    try:
        monitor.wait()
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()


def bridge_command(
    device: Annotated[
        str,
        typer.Option(
            "--device", help="Monitor port or URL: /dev/ttyUSB0, COM3, socket://host:port."
        ),
    ],
    server: Annotated[
        str, typer.Option("--server", help="The exhale service, e.g. https://exhale.trust.nhs.uk")
    ],
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            envvar="EXHALE_BRIDGE_API_KEY",
            show_envvar=True,
            help="API key for the device-readings endpoint.",
        ),
    ],
    queue: Annotated[
        Path, typer.Option("--queue", help="SQLite file holding results until delivered.")
    ] = DEFAULT_QUEUE,
) -> None:
    """Forward results from a CO monitor to the exhale service until Ctrl-C or SIGTERM."""
    _ensure_logging()
    if not api_key.strip():
        raise typer.BadParameter("the API key is empty", param_hint="--api-key")

    def show(status: BridgeStatus) -> None:
        typer.echo(status.line())

    Bridge(device, server, api_key, queue, on_status=show).run()


def _ensure_logging() -> None:
    """Plain logs on standard error unless the host program configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def _stop_on_sigterm() -> None:
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
