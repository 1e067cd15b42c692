"""Keys and client assertions for the signed-JWT client credentials tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = "https://exhale.test/oauth2/token"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@cache
def rsa_key(name: str = "a", bits: int = 2048) -> rsa.RSAPrivateKey:
    """One key per name for the whole run (the name only tells keys apart)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(name: str = "a") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: PrivateKey, kid: str, **members: Any) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else None
    if algorithm is not None:
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", **members}


def jwks(*keys: dict[str, Any]) -> str:
    return json.dumps({"keys": list(keys)})


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims(client_id: str, *, exp_in_s: float = 240, **changes: Any) -> dict[str, Any]:
    now = time.time()
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "jti": str(uuid.uuid4()),
        "iat": int(now),
        "exp": int(now + exp_in_s),
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def assertion(
    key: PrivateKey, client_id: str, *, kid: str = "key-1", alg: str = "RS512", **changes: Any
) -> str:
    return jwt.encode(claims(client_id, **changes), key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_assertion(client_id: str, *, kid: str = "key-1") -> str:
    """``alg: none``: a JWT with no signature at all."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(claims(client_id)).encode())}."


def hmac_with_public_key(key: PrivateKey, client_id: str, *, kid: str = "key-1") -> str:
    """HS256 keyed with the client's public key: the classic algorithm-confusion attack."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims(client_id)).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem(key), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def token_form(client_assertion: str, **changes: str | None) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
        **changes,
    }
    return {name: value for name, value in form.items() if value is not None}
