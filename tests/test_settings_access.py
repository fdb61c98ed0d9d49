"""Who may use the service (app/settings_access.py): hosts served, origins, the start-up warning."""

from __future__ import annotations

import pytest

from app.settings import from_env


@pytest.mark.parametrize(("host", "served"), [
    ("127.0.0.1", ("loopback",)), ("localhost", ("loopback",)), ("::1", ("loopback",)),
    ("127.0.0.5", ("loopback",)), ("0.0.0.0", None), ("::", None), ("10.1.2.3", None),
    ("myhost.example", None)])
def test_the_default_hosts_follow_where_it_listens(host: str, served: tuple[str, ...] | None
                                                   ) -> None:
    assert from_env({"STREAMCHAT_HOST": host}).served_hosts == served


def test_listed_hosts_win_and_a_star_serves_any() -> None:
    assert from_env({"STREAMCHAT_ALLOWED_HOSTS": "Chat.Example.com, loopback"}).served_hosts == (
        "chat.example.com", "loopback")
    assert from_env({"STREAMCHAT_ALLOWED_HOSTS": "*"}).served_hosts is None


def test_origins_are_kept_as_browsers_send_them() -> None:
    settings = from_env({"STREAMCHAT_CORS_ORIGINS":
                         "HTTP://App.Example:80/, https://b.example:8443,chrome-extension://abc"})
    assert settings.cors_origins == ("http://app.example", "https://b.example:8443",
                                     "chrome-extension://abc")
    assert from_env({}).cors_origins == ()


@pytest.mark.parametrize(("env", "warns"), [
    ({}, False),
    ({"STREAMCHAT_HOST": "0.0.0.0"}, True),
    ({"STREAMCHAT_HOST": "0.0.0.0", "STREAMCHAT_API_KEYS": "a:sk-a:chat"}, False),
    ({"STREAMCHAT_HOST": "10.0.0.2", "STREAMCHAT_JWT_SECRET": "s" * 32,
      "STREAMCHAT_JWT_AUDIENCE": "streamchat"}, False),
])
def test_listening_beyond_loopback_with_no_keys_is_warned_about(env: dict[str, str],
                                                                 warns: bool) -> None:
    warning = from_env(env).exposure_warning()
    assert (warning is not None) is warns
    if warning is not None:
        assert "0.0.0.0" in warning and "STREAMCHAT_API_KEYS" in warning
