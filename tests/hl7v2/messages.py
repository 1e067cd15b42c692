"""Building ORU^R01 messages for tests: a good one by default, each part replaceable."""

from __future__ import annotations

import datetime as dt

from app.clock import local_today
from tests.app.readings_helpers import due_for

TODAY = local_today()
EDD = due_for(84, TODAY)  # booked at 12 weeks today
NHS = "9990000069"  # synthetic range, allowed outside production
OTHER_NHS = "9990000018"


def hl7_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000")


def recent_time() -> str:
    return hl7_time(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))


def co_obx(
    index: int = 1,
    *,
    ppm: str = "5",
    units: str = "ppm",
    observed_at: str | None = None,
    device: str = "PB-104233",
    code: str = "251900003^Expired carbon monoxide concentration^SCT",
    value_type: str = "NM",
    status: str = "F",
) -> str:
    when = recent_time() if observed_at is None else observed_at
    return f"OBX|{index}|{value_type}|{code}||{ppm}|{units}|||||{status}|||{when}||||{device}"


def edd_obx(index: int, edd: dt.date = EDD) -> str:
    return f"OBX|{index}|DT|11778-8^Delivery date Estimated^LN||{edd:%Y%m%d}||||||F"


def smoking_obx(index: int, code: str = "77176002^Smoker^SCT") -> str:
    return f"OBX|{index}|CE|72166-2^Tobacco smoking status^LN||{code}||||||F"


def oru(
    *,
    control_id: str = "MSG0001",
    nhs_number: str = NHS,
    message_type: str = "ORU^R01^ORU_R01",
    pid3: str | None = None,
    obx: list[str] | None = None,
    edd: dt.date | None = EDD,
    ending: str = "\r",
    sender: str = "EPR|RXX",
) -> str:
    """An ORU^R01 with a 5 ppm reading and (by default) the due date, to register the pregnancy."""
    identifiers = f"{nhs_number}^^^NHS^NH~H123456^^^RXX^MR" if pid3 is None else pid3
    observations = obx if obx is not None else [co_obx(1)]
    if edd is not None:
        observations = [*observations, edd_obx(len(observations) + 1, edd)]
    segments = [
        f"MSH|^~\\&|{sender}|EXHALE|RXX|{recent_time()}||{message_type}|{control_id}|P|2.5",
        f"PID|1||{identifiers}||Testpatient^Jane||19940217|F|||1 Road^^Leeds^^LS1 4AP"
        "||07700 900123",
        "PV1|1|O",
        f"OBR|1|||251900003^Expired carbon monoxide concentration^SCT|||{recent_time()}",
        *observations,
    ]
    return "".join(segment + ending for segment in segments)


def segments(ack: str) -> dict[str, list[list[str]]]:
    """An ACK's segments by id, each split into fields (index 0 the segment id)."""
    found: dict[str, list[list[str]]] = {}
    for line in ack.replace("\n", "\r").split("\r"):
        if line:
            fields = line.split("|")
            found.setdefault(fields[0], []).append(fields)
    return found


def ack_code(ack: str) -> str:
    return segments(ack)["MSA"][0][1]
