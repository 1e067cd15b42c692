"""Who is making a request: a person with a web session, or a machine with an API key."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ActorType(enum.StrEnum):
    user = "user"
    api_client = "api_client"
    cli = "cli"
    system = "system"
    anonymous = "anonymous"


@dataclass(frozen=True)
class Principal:
    actor_type: ActorType
    id: int | None
    name: str
    role: str | None
    organisation_id: int | None
    organisation_kind: str | None = None
    must_change_password: bool = False
    session_id: str | None = None
    csrf_token: str | None = None

    @property
    def is_user(self) -> bool:
        return self.actor_type is ActorType.user

    @property
    def is_client(self) -> bool:
        return self.actor_type is ActorType.api_client


def command_line_principal(os_user: str) -> Principal:
    """The operator running an ``exhale`` command on the server."""
    return Principal(ActorType.cli, None, os_user, "admin", None)
