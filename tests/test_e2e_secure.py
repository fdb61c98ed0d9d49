"""End to end, as it runs for real: the real service and engine over https and wss with a
self-signed certificate made here, API keys (one from `python -m app keys new`, kept in a keys
file as a hash), JSON logs, and a SIGTERM drain with a stream in flight."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e_server import REPO, LiveServer, start_server, stop_server
from tests.sse_parse import BackgroundStream, check_grammar, parse_frames
from tests.waiting import until_sync

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
OPS_KEY = "sk-ops-e2e-secret"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def new_key(key_id: str) -> tuple[str, str]:
    """`python -m app keys new`: the key (shown once) and its keys-file line."""
    out = subprocess.run([sys.executable, "-m", "app", "keys", "new", "--id", key_id,
                          "--scopes", "chat"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return (next(line for line in lines if line.startswith("sk-")),
            next(line for line in lines if line.startswith(f"{key_id}:sha256:")))


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    folder = tmp_path_factory.mktemp("secure")
    tls = self_signed(folder)
    key, line = new_key("alice")
    (folder / "keys").write_text(f"# made by the test\n{line}\n")
    server = start_server({"STREAMCHAT_API_KEYS_FILE": str(folder / "keys"),
                           "STREAMCHAT_API_KEYS": f"ops:{OPS_KEY}:admin",
                           "STREAMCHAT_LOG_FORMAT": "json"}, tls=tls)
    try:
        yield server, key
    finally:
        stop_server(server)


def client(server: LiveServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, verify=server.verify, headers=headers, timeout=120)


def test_https_sessions_with_a_key_and_refusals_without(secure: tuple[LiveServer, str]) -> None:
    server, key = secure
    with client(server, None) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.post("/v1/sessions").status_code == 401
        assert anonymous.get("/metrics").status_code == 401
    with client(server, key) as alice:
        sid = alice.post("/v1/sessions", json={"system": "Be brief."}).json()["id"]
        reply = alice.post(f"/v1/sessions/{sid}/messages", headers={
            "Accept": "text/event-stream", "X-Request-ID": "e2e-request-1"},
            json={"content": "Say hi.", "params": {"max_tokens": 8}})
        assert reply.headers["x-request-id"] == "e2e-request-1"
        assert check_grammar(parse_frames(reply.text))[-1]["event"] == "done"
        assert alice.get("/metrics").status_code == 403  # chat, not admin
    with client(server, OPS_KEY) as ops:
        assert "streamchat_rejected_requests_total" in ops.get("/metrics").text
        assert ops.get(f"/v1/sessions/{sid}").status_code == 403
    # JSON logs: one line per request and per stream, with the request id and the key, and
    # no text of the conversation.
    lines = server.records()
    stream = next(entry for entry in lines if entry.get("event") == "stream"
                  and entry.get("request_id") == "e2e-request-1")
    assert stream["key_id"] == "alice" and stream["session_id"] == sid
    assert stream["outcome"] == "done" and stream["completion_tokens"] > 0
    assert stream["ttft_ms"] > 0 and "content" not in stream and "reply" not in stream
    assert any(entry.get("event") == "request" and entry.get("status") == 401 for entry in lines)
    assert key not in server.log_path.read_text()


def test_wss_with_the_header_or_the_browser_subprotocol(secure: tuple[LiveServer, str]) -> None:
    server, key = secure
    with client(server, key) as alice:
        sid = alice.post("/v1/sessions").json()["id"]
    context = ssl.create_default_context(cafile=server.ca_file)
    url = server.url.replace("https://", "wss://") + f"/v1/sessions/{sid}/ws"
    for options in ({"additional_headers": {"Authorization": f"Bearer {key}"}},
                    {"subprotocols": ["streamchat", f"bearer.{key}"]}):
        with connect(url, ssl=context, open_timeout=30, **options) as ws:  # type: ignore[arg-type]
            ws.send(json.dumps({"type": "message", "content": "Hi", "params": {"max_tokens": 4}}))
            while (frame := json.loads(ws.recv(timeout=60)))["type"] not in ("done", "error"):
                pass
            assert frame["type"] == "done"
    with pytest.raises(Exception, match="401"):
        connect(url, ssl=context, additional_headers={"Authorization": "Bearer sk-wrong"})


def test_openai_sdk_over_https(secure: tuple[LiveServer, str]) -> None:
    server, key = secure
    with httpx.Client(verify=server.verify) as http:
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0,
                            http_client=http)
        chunks = list(sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0,
                              http_client=http)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()


def test_with_the_defaults_another_site_reaches_nothing(live_server: LiveServer) -> None:
    """The real service as `make run` starts it (loopback, no keys): a rebound name in Host
    is a 421, another site's WebSocket handshake a 403; the page's own origin and clients that
    send no Origin are served."""
    port = live_server.url.rsplit(":", 1)[1]
    rebound = httpx.get(live_server.url + "/v1/sessions", headers={"Host": f"rebound.example:{port}"})
    assert rebound.status_code == 421 and rebound.json()["error"]["code"] == "host_not_allowed"
    sid = httpx.post(live_server.url + "/v1/sessions").json()["id"]
    ws_url = live_server.url.replace("http", "ws") + f"/v1/sessions/{sid}/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, origin="http://attacker.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    with connect(ws_url.replace("127.0.0.1", "localhost"),
                 origin=f"http://localhost:{port}") as own_page:  # type: ignore[arg-type]
        own_page.send(json.dumps({"type": "message", "content": "Hi",
                                  "params": {"max_tokens": 2}}))
        while json.loads(own_page.recv(timeout=120))["type"] not in ("done", "error"):
            pass
    with connect(ws_url) as sdk:  # no Origin: not a page
        sdk.send(json.dumps({"type": "ping"}))
        assert json.loads(sdk.recv(timeout=10))["type"] == "pong"


def test_sigterm_drains_a_stream_in_flight_then_exits(secure: tuple[LiveServer, str]) -> None:
    """Last in this module: it stops the server."""
    server, key = secure
    with client(server, key) as alice:
        sid = alice.post("/v1/sessions").json()["id"]
        other = alice.post("/v1/sessions").json()["id"]
    listener = client(server, key)
    stream = BackgroundStream(listener, "POST", f"/v1/sessions/{sid}/messages",
                              headers={"Accept": "text/event-stream"},
                              json={"content": "Count.", "params": {"max_tokens": 120,
                                                                    "ignore_eos": True}})
    assert stream.first_token.wait(60)
    os.kill(server.process.pid, signal.SIGTERM)

    def ready_status() -> int:  # on a new connection each time: the listener stays open
        with client(server, key) as asking:
            return asking.get("/ready").status_code

    # The signal is handled between two of the server's event-loop steps: from then on.
    until_sync(lambda: ready_status() == 503)
    with client(server, key) as alice:
        ready = alice.get("/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        refused = alice.post(f"/v1/sessions/{other}/messages", json={"content": "x"})
        assert refused.status_code == 503 and refused.headers["retry-after"]
    events = check_grammar(stream.events(120))
    listener.close()
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["usage"]["completion_tokens"] == 120
    assert server.process.wait(60) == 0
    log = server.log_path.read_text(errors="replace")
    assert "SIGTERM: draining 1 generation(s)" in log and "drained; stopping" in log
