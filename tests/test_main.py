"""How app/main.py serves the page: its security headers, on the page only."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_the_page_is_served_with_its_security_headers(client: TestClient) -> None:
    for path in ("/", "/static/chat.js", "/static/chat.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = {d.split(" ", 1)[0]: d.split(" ", 1)[1]
               for d in response.headers["content-security-policy"].split("; ")}
        assert csp["script-src"] == "'self'" and "unsafe-inline" not in csp["script-src"]
        assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'"
        assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers.get_list("content-security-policy") == [
            response.headers["content-security-policy"]]  # set once
    revalidated = client.get("/static/chat.js", headers={
        "If-None-Match": client.get("/static/chat.js").headers["etag"]})
    assert revalidated.status_code == 304
    assert "script-src 'self'" in revalidated.headers["content-security-policy"]
    api = client.get("/v1/sessions")
    assert "content-security-policy" not in api.headers  # the API is not a page
