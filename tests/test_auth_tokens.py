from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.auth import UNAUTHENTICATED, Authenticator, Principal
from app.errors import ConfigError, Unauthenticated
from app.settings import Settings

SECRET = "a-shared-jwt-secret-" + "0123456789" * 5  # 70 bytes: long enough for HS512 too
AUDIENCE = "streamchat"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "user-42", "aud": AUDIENCE, "exp": int(time.time()) + 300}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def hs256() -> Authenticator:
    auth = Authenticator.from_settings(Settings(jwt_secret=SECRET, jwt_audience=AUDIENCE))
    assert auth is not None
    return auth


def rs256(public_key: str) -> Authenticator:
    auth = Authenticator.from_settings(Settings(jwt_public_key=public_key, jwt_audience=AUDIENCE))
    assert auth is not None
    return auth


def refused(auth: Authenticator, token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate(token)
    assert caught.value.message == UNAUTHENTICATED


def test_hs256_token_gives_its_subject_with_chat_by_default() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert hs256().authenticate(token) == Principal("user-42", frozenset({"chat"}), "jwt")


def test_rs256_token_with_the_key_as_pem_text_a_file_or_one_escaped_line(
        rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    token = jwt.encode(claims(scope="chat admin"), rsa_key, algorithm="RS256")
    pem = public_pem(rsa_key)
    path = tmp_path / "jwt.pub"
    path.write_text(pem)
    for configured in (pem, str(path), pem.replace("\n", "\\n")):
        principal = rs256(configured).authenticate(token)
        assert principal == Principal("user-42", frozenset({"chat", "admin"}), "jwt")


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A token signed with HMAC-SHA256 by hand: PyJWT itself refuses to sign with a PEM."""
    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing_input = part(json.dumps(header).encode()) + b"." + part(json.dumps(payload).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + part(signature)).decode()


@pytest.mark.parametrize("token", [
    jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256"),
    jwt.encode(claims(aud="another-service"), SECRET, algorithm="HS256"),
    jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
    jwt.encode(claims(aud=None), SECRET, algorithm="HS256"),
    jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
    jwt.encode(claims(sub=""), SECRET, algorithm="HS256"),
    jwt.encode(claims(), SECRET + "-but-another", algorithm="HS256"),
    jwt.encode(claims(), "", algorithm="none"),
    jwt.encode(claims(), SECRET, algorithm="HS512"),  # right secret, algorithm not the pinned one
    jwt.encode(claims(scope=["chat"]), SECRET, algorithm="HS256"),  # scope must be text
    jwt.encode(claims(scopes="chat"), SECRET, algorithm="HS256"),  # scopes must be a list
    jwt.encode(claims(nbf=int(time.time()) + 300), SECRET, algorithm="HS256"),  # not yet valid
    "a.b.c", "..", "not-base64!.eyJ.sig",
], ids=["expired", "wrong-aud", "no-exp", "no-aud", "no-sub", "empty-sub", "wrong-signature",
        "alg-none", "hs512", "scope-list", "scopes-text", "nbf-future", "garbage",
        "dots", "bad-base64"])
def test_bad_hs256_tokens_are_refused_with_one_message(token: str) -> None:
    refused(hs256(), token)


def test_rs256_refuses_hs256_signed_with_its_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    # The algorithm-confusion attack: the public key, known to all, used as an HMAC secret.
    refused(rs256(pem), forge({"alg": "HS256", "typ": "JWT"}, claims(), pem.encode()))
    refused(rs256(pem), jwt.encode(claims(), SECRET, algorithm="HS256"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(rs256(pem), jwt.encode(claims(), other, algorithm="RS256"))


def test_hs256_refuses_an_rs256_token(rsa_key: rsa.RSAPrivateKey) -> None:
    refused(hs256(), jwt.encode(claims(), rsa_key, algorithm="RS256"))


@pytest.mark.parametrize(("extra", "scopes"), [
    ({}, {"chat"}),
    ({"scope": "admin"}, {"admin"}),
    ({"scope": "openid chat  email"}, {"chat"}),  # other services' scopes are ignored
    ({"scopes": ["admin", "chat"]}, {"admin", "chat"}),
    ({"scope": "chat", "scopes": ["admin"]}, {"admin", "chat"}),
    ({"scope": ""}, set()),  # scopes given, none of them ours: no default
    ({"scopes": ["profile"]}, set()),
])
def test_scopes_come_from_scope_or_scopes(extra: dict[str, Any], scopes: set[str]) -> None:
    principal = hs256().authenticate(jwt.encode(claims(**extra), SECRET, algorithm="HS256"))
    assert principal.scopes == scopes


def test_audience_list_containing_ours_is_accepted() -> None:
    token = jwt.encode(claims(aud=["other", AUDIENCE]), SECRET, algorithm="HS256")
    assert hs256().authenticate(token).owner == "user-42"


@pytest.mark.parametrize(("setting", "needle"), [
    ("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
     "STREAMCHAT_JWT_PUBLIC_KEY: not a PEM public key"),
    ("/nonexistent/jwt.pub", "STREAMCHAT_JWT_PUBLIC_KEY: not PEM text, and cannot read it"),
])
def test_a_bad_public_key_is_a_config_error(setting: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        rs256(setting)


def test_a_pem_file_without_a_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "jwt.pub"
    path.write_text("hello\n")
    with pytest.raises(ConfigError, match=f"STREAMCHAT_JWT_PUBLIC_KEY \\({path}\\): not a PEM"):
        rs256(str(path))


def test_only_rsa_keys_of_2048_bits_or_more() -> None:
    with pytest.raises(ConfigError, match="RS256 needs an RSA public key"):
        rs256(public_pem(ec.generate_private_key(ec.SECP256R1())))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="1024 bits, at least 2048"):
        rs256(public_pem(small))


def test_a_short_hs256_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="STREAMCHAT_JWT_SECRET must be at least 32 bytes"):
        Authenticator.from_settings(Settings(jwt_secret="short", jwt_audience=AUDIENCE))
