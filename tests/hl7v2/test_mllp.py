"""`exhale mllp` as a real process, driven by python-hl7's MLLP clients and by raw sockets."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app import migrate
from app.db import make_engine, make_sessionmaker, session_scope
from app.readings.models import Reading
from referral.models import Referral
from tests import factories
from tests.conftest import on_postgres
from tests.helpers import REPO, exhale_env, free_port, run_exhale
from tests.hl7v2.messages import NHS, OTHER_NHS, co_obx, oru

START, END = b"\x0b", b"\x1c\r"


@dataclass
class Listener:
    database_url: str
    host: str
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def mllp_database(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[str]:
    """A database of the suite's kind, of this module's own: the listener commits into it."""
    if not on_postgres():
        yield f"sqlite:///{tmp_path_factory.mktemp('mllp') / 'mllp.db'}"
        return
    name = f"exhale_mllp_{uuid.uuid4().hex[:12]}"
    server = make_engine(
        make_url(database_url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _seed(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            unit = factories.make_unit(session, service=factories.make_service(session))
            for role, name in (("epr", "hl7-epr"), ("bridge", "hl7-bridge")):
                client, _secret = factories.make_api_client(session, role=role, organisation=unit)
                client.name = name
    finally:
        engine.dispose()


def _wait_for_port(listener: Listener, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if listener.process.poll() is not None:
            raise AssertionError(f"exhale mllp exited with {listener.process.returncode}")
        try:
            socket.create_connection((listener.host, listener.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("exhale mllp did not start listening")


@pytest.fixture(scope="module")
def listener(mllp_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    _seed(mllp_database)
    port = free_port()
    log = (tmp_path_factory.mktemp("mllp-log") / "mllp.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "mllp", "--port", str(port), "--client", "hl7-epr"],
        cwd=REPO,
        env=exhale_env(mllp_database),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = Listener(mllp_database, "127.0.0.1", port, process)
    try:
        _wait_for_port(running)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    assert process.returncode == 0, Path(log.name).read_text()


def _msa(ack: bytes | str) -> list[str]:
    raw = ack.decode() if isinstance(ack, bytes) else ack
    message = hl7.parse(raw.strip("\x0b\x1c\r\n"))
    msa = message.segment("MSA")
    return [str(msa(1)), str(msa(2))]


def _err(ack: bytes) -> str:
    message = hl7.parse(ack.decode().strip("\x0b\x1c\r\n"))
    return str(message.segment("ERR")(2))


def _send(listener: Listener, text: str) -> bytes:
    with MLLPClient(listener.host, listener.port) as client:
        answer: bytes = client.send_message(text)
        return answer


def _stored(listener: Listener, control_id: str) -> list[Reading]:
    engine = make_engine(listener.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(
                session.scalars(select(Reading).where(Reading.source_id.contains(control_id)))
            )
    finally:
        engine.dispose()


def _count(listener: Listener) -> int:
    engine = make_engine(listener.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return session.scalar(select(func.count()).select_from(Reading)) or 0
    finally:
        engine.dispose()


def _raw_exchange(
    listener: Listener, data: bytes, *, acks: int, close_write: bool = False
) -> list[bytes]:
    """Send bytes as they are; return the ACK frames answered (until ``acks`` or the end)."""
    with socket.create_connection((listener.host, listener.port), timeout=20) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while received.count(END) < acks:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return [frame + END for frame in received.split(END) if frame]


def test_a_5_ppm_oru_r01_is_acknowledged_stored_once_and_referred(listener: Listener) -> None:
    message = oru(control_id="MLLP-1")
    assert _msa(_send(listener, message)) == ["AA", "MLLP-1"]
    assert _msa(_send(listener, message)) == ["AA", "MLLP-1"]  # a re-send: the same ACK
    [reading] = _stored(listener, "MLLP-1")
    assert reading.co_ppm == 5
    engine = make_engine(listener.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            referral = session.get(Referral, reading.referral_id)
            assert referral is not None
            assert (referral.status, referral.reasons) == ("pending", ["co_elevated"])
    finally:
        engine.dispose()


def test_the_asyncio_client_gets_its_acks_on_one_connection(listener: Listener) -> None:
    async def exchange() -> list[list[str]]:
        reader, writer = await open_hl7_connection(listener.host, listener.port)
        answers = []
        try:
            for control_id, obx in (
                ("ASYNC-1", co_obx(1, ppm="2")),
                ("ASYNC-2", co_obx(1, ppm="x")),
            ):
                writer.writemessage(
                    hl7.parse(oru(control_id=control_id, nhs_number=OTHER_NHS, obx=[obx]))
                )
                await writer.drain()
                ack = await asyncio.wait_for(reader.readmessage(), 20)
                answers.append([str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))])
        finally:
            writer.close()
        return answers

    assert asyncio.run(exchange()) == [["AA", "ASYNC-1"], ["AE", "ASYNC-2"]]
    assert len(_stored(listener, "ASYNC-1")) == 1
    assert _stored(listener, "ASYNC-2") == []


@pytest.mark.parametrize(
    ("message", "code", "location"),
    [
        (oru(control_id="BAD-1", obx=[co_obx(1, ppm="high")]), "AE", "OBX^1^5"),
        (oru(control_id="BAD-2", pid3=""), "AE", "PID^1^3"),
        (oru(control_id="BAD-3", pid3="9990000060^^^NHS^NH"), "AE", "PID^1^3"),
        (oru(control_id="BAD-4", message_type="ADT^A01^ADT_A01"), "AR", "MSH^1^9^1^1"),
        (oru(control_id="BAD-5", nhs_number="9990000107", edd=None), "AE", ""),
    ],
)
def test_bad_messages_get_ae_or_ar_and_nothing_is_stored(
    listener: Listener, message: str, code: str, location: str
) -> None:
    before = _count(listener)
    ack = _send(listener, message)
    assert _msa(ack)[0] == code
    assert _err(ack) == location
    assert _count(listener) == before


def test_a_truncated_frame_gets_an_ar_and_the_next_frame_is_served(listener: Listener) -> None:
    good = oru(control_id="AFTER-CUT", nhs_number=NHS, edd=None).encode()
    cut = oru(control_id="CUT-1").encode()[:120]
    first, second = _raw_exchange(listener, START + cut + START + good + END, acks=2)
    assert _msa(first) == ["AR", "CUT-1"]
    assert _msa(second) == ["AA", "AFTER-CUT"]
    assert _stored(listener, "CUT-1") == []

    [ended] = _raw_exchange(listener, START + cut, acks=1, close_write=True)
    assert _msa(ended)[0] == "AR"


def test_binary_garbage_does_not_stop_the_listener(listener: Listener) -> None:
    garbage = random.Random(10).randbytes(20_000).replace(END, b"").replace(START, b"")
    with socket.create_connection((listener.host, listener.port), timeout=20) as noisy:
        noisy.sendall(garbage)  # left open, never framed
        assert _msa(_send(listener, oru(control_id="WHILE-NOISY", edd=None))) == [
            "AA",
            "WHILE-NOISY",
        ]
    [answer] = _raw_exchange(listener, garbage + END, acks=1)
    assert _msa(answer)[0] == "AR"
    [answer] = _raw_exchange(listener, START + b"\xff\xfe\x00garbage" + END, acks=1)
    assert _msa(answer)[0] == "AR"
    assert _msa(_send(listener, oru(control_id="AFTER-NOISE", edd=None))) == ["AA", "AFTER-NOISE"]
    assert listener.process.poll() is None


def test_the_listener_needs_an_active_epr_client(listener: Listener) -> None:
    env = exhale_env(listener.database_url)
    for client, expected in (("nobody", "No active API client"), ("hl7-bridge", "bridge role")):
        result = run_exhale("mllp", "--port", str(free_port()), "--client", client, env=env)
        assert result.returncode == 2
        assert expected in result.stderr
