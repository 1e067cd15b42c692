"""Signing secrets sealed at rest.

HMAC signing needs a service's secret itself, so it cannot be kept as a digest. It is kept
sealed instead (Fernet: AES-128-CBC with an HMAC-SHA256 tag) under keys that live in the
environment, not in the database: a copy of the database alone does not let anyone sign webhooks
as exhale. Several keys make a key change possible: the first seals, every one opens.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import DeliverySettings, sealing_keys

UNOPENED = (
    "a signing secret is sealed with a key that EXHALE_DELIVERY__SEALING_KEYS no longer holds; "
    "add that key back, or rotate the service's secret"
)


class SealError(Exception):
    """A sealed secret that none of the keys opens (its key was dropped too soon)."""


class Sealer:
    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> Sealer:
        return cls(sealing_keys(settings.sealing_keys))

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise SealError(UNOPENED) from None

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the first key (for a key change)."""
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SealError(UNOPENED) from None
