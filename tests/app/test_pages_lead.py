"""The lead's page: her unit's measures with their SPC charts, and no one else's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.measures.definitions import MEASURES
from tests.app.access_world import Side, build_side, sign_in


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def test_the_lead_sees_every_measure_with_its_chart(
    client: TestClient, session: Session, side: Side
) -> None:
    sign_in(client, session, side.users["lead"])
    page = client.get("/measures", params={"months": "12", "chart": "xmr"})
    assert page.status_code == 200
    assert side.unit.name in page.text
    for measure in MEASURES:
        assert f'id="measure-{measure.code}"' in page.text
    assert page.text.count('src="data:image/svg+xml;base64,') == len(MEASURES)
    assert '<option value="xmr" selected>' in page.text
    assert "Testpatient" not in page.text


@pytest.mark.parametrize("role", ["midwife", "advisor"])
def test_other_roles_get_a_page_saying_who_it_is_for(
    client: TestClient, session: Session, side: Side, role: str
) -> None:
    sign_in(client, session, side.users[role])
    page = client.get("/measures")
    assert page.status_code == 403
    assert "This page is for leads" in page.text
