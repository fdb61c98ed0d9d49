from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from app.auth import UNAUTHENTICATED, Authenticator, Principal, hash_secret
from app.errors import ConfigError, Unauthenticated
from app.settings import Settings

REPO = Path(__file__).resolve().parent.parent
JWT_SECRET = "a-shared-jwt-secret-of-more-than-32-bytes"


def test_no_authenticator_when_auth_is_off() -> None:
    assert Authenticator.from_settings(Settings()) is None
    assert Authenticator.from_settings(Settings(api_keys="alice:sk-alice-1:chat")) is not None


def test_keys_from_the_variable_and_the_file_together(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"bob:sha256:{hash_secret('sk-bob-1').hex()}:admin\n")
    auth = Authenticator.from_settings(Settings(api_keys="alice:sk-alice-1:chat",
                                                api_keys_file=path))
    assert auth is not None and auth.describe() == "2 API keys"
    assert auth.authenticate("sk-alice-1") == Principal("alice", frozenset({"chat"}), "key")
    assert auth.authenticate("sk-bob-1") == Principal("bob", frozenset({"admin"}), "key")


def test_an_id_in_both_the_variable_and_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"alice:sha256:{hash_secret('sk-alice-2').hex()}:chat\n")
    with pytest.raises(ConfigError, match=f"key id 'alice' is given twice: STREAMCHAT_API_KEYS "
                                          f"entry 1 and STREAMCHAT_API_KEYS_FILE {path} line 1"):
        Authenticator.from_settings(Settings(api_keys="alice:sk-alice-1:chat", api_keys_file=path))


def test_admin_does_not_imply_chat() -> None:
    ops = Principal("ops", frozenset({"admin"}), "key")
    assert ops.can("admin") and not ops.can("chat")


@pytest.mark.parametrize("token", [None, "", "sk-nobody", "sk-alice-1x", "x" * 10_000])
def test_every_refusal_has_one_message_and_logs_why_at_debug(
        token: str | None, caplog: pytest.LogCaptureFixture) -> None:
    auth = Authenticator.from_settings(Settings(api_keys="alice:sk-alice-1:chat"))
    assert auth is not None
    with caplog.at_level(logging.DEBUG, logger="streamchat.auth"), \
            pytest.raises(Unauthenticated) as caught:
        auth.authenticate(token)
    assert caught.value.message == UNAUTHENTICATED and caught.value.code == "unauthorized"
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and record.getMessage().startswith("credential refused")
    if token:
        assert token not in caplog.text  # the credential itself is never logged


def test_expired_and_unknown_give_the_same_answer() -> None:
    auth = Authenticator.from_settings(Settings(api_keys="alice:sk-alice-1:chat",
                                                jwt_secret=JWT_SECRET, jwt_audience="sc"))
    assert auth is not None
    expired = jwt.encode({"sub": "alice", "aud": "sc", "exp": int(time.time()) - 60}, JWT_SECRET)
    answers = set()
    for token in (expired, "sk-unknown"):
        with pytest.raises(Unauthenticated) as caught:
            auth.authenticate(token)
        answers.add((type(caught.value), caught.value.message, caught.value.code))
    assert len(answers) == 1


def test_jwt_shaped_tokens_go_to_the_jwt_verifier_and_others_to_the_keys() -> None:
    keys = "alice:sk-alice-1:chat,dotted:a.b.c:chat"
    both = Authenticator.from_settings(Settings(api_keys=keys, jwt_secret=JWT_SECRET,
                                                jwt_audience="sc"))
    assert both is not None
    token = jwt.encode({"sub": "carol", "aud": "sc", "exp": int(time.time()) + 60}, JWT_SECRET)
    assert both.authenticate(token).via == "jwt"
    assert both.authenticate("sk-alice-1").via == "key"
    with pytest.raises(Unauthenticated):
        both.authenticate("a.b.c")  # looks like a JWT, and JWTs are on: not a key lookup
    keys_only = Authenticator.from_settings(Settings(api_keys=keys))
    assert keys_only is not None and keys_only.authenticate("a.b.c").owner == "dotted"
    with pytest.raises(Unauthenticated):
        keys_only.authenticate(token)  # a JWT with JWTs off is an unknown key


def run_app(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_cli_prints_a_key_that_then_authenticates(tmp_path: Path) -> None:
    result = run_app("keys", "new", "--id", "alice", "--scopes", "chat+admin")
    assert result.returncode == 0, result.stderr
    [secret] = re.findall(r"^\s*(sk-alice-\S+)$", result.stdout, re.MULTILINE)
    [line] = re.findall(r"^\s*(alice:sha256:\S+)$", result.stdout, re.MULTILINE)
    assert "keys file" in result.stdout and secret not in line
    path = tmp_path / "keys"
    path.write_text(f"# made by python -m app keys new\n{line}\n")
    auth = Authenticator.from_settings(Settings(api_keys_file=path))
    assert auth is not None
    assert auth.authenticate(secret) == Principal("alice", frozenset({"chat", "admin"}), "key")


def test_cli_help_and_errors() -> None:
    helped = run_app("keys", "--help")
    assert helped.returncode == 0 and "new" in helped.stdout
    bad = run_app("keys", "new", "--id", "alice", "--scopes", "root")
    assert bad.returncode == 2 and "unknown scope" in bad.stderr and "Traceback" not in bad.stderr
    assert run_app("keys").returncode == 2


def test_auth_does_not_import_starlette() -> None:
    code = ("import sys, app.auth, app.auth.cli; "
            "assert 'starlette' not in sys.modules, 'app.auth imports starlette'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
