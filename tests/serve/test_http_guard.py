"""The HTTP edge of a keyless local server: web pages elsewhere can neither rebind a
name to it (Host) nor write to it (Origin, Sec-Fetch-Site, Content-Type); its own page
and non-browser clients still can. Issue 12, medium #3."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from dialoop.assistant import open_assistant
from dialoop.config import Settings, load_settings
from dialoop.errors import ConfigError
from dialoop.serve import create_app
from dialoop.serve.guard import names_for_bind
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine

CSV = b"subject,relation,object\nEvil Corp,owns,the web page\n"


@dataclass
class Local:
    """A keyless local server, and an httpx client for it (which sends no Origin)."""

    url: str
    port: int

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextmanager
def _serve(settings: Settings, allowed_hosts: Sequence[str] | None = None) -> Iterator[Local]:
    with open_assistant(settings, engine=FakeEngine()) as bot:
        app = create_app(bot, allowed_hosts=allowed_hosts)
        with background_server(app) as running:
            yield Local(running.url, running.port)


@pytest.fixture
def local(settings: Settings) -> Iterator[Local]:
    with _serve(settings) as running:
        yield running


def _stats(local: Local) -> dict[str, int]:
    response = local.request("GET", "/api/knowledge/stats")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_issues_cross_site_import_writes_nothing(local: Local) -> None:
    before = _stats(local)
    # The probe of the issue: foreign Host, foreign Origin, text/plain.
    probe = {"Content-Type": "text/plain", "Origin": "http://evil.example",
             "Host": "evil.example"}
    refused = [local.request("POST", "/api/knowledge/import", params={"filename": "evil.csv"},
                             content=CSV, headers=headers)
               for headers in (probe,
                               {**probe, "Host": f"127.0.0.1:{local.port}"},
                               {**probe, "Host": f"127.0.0.1:{local.port}", "Origin": "null"},
                               {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"},
                               {"Content-Type": "text/plain"},
                               {"Content-Type": "application/x-www-form-urlencoded"})]
    assert [r.status_code for r in refused] == [421, 403, 403, 403, 415, 415]
    assert [r.json()["error"]["code"] for r in refused] == [
        "host_not_allowed", "cross_origin", "cross_origin", "cross_origin",
        "unsupported_media_type", "unsupported_media_type"]
    assert "application/octet-stream" in refused[-1].json()["error"]["message"]
    assert _stats(local) == before


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/csv"])
def test_a_program_imports_a_file(local: Local, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = local.request("POST", "/api/knowledge/import", params={"filename": "a.csv"},
                             content=CSV, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 1


def test_reads_through_a_rebound_name_are_refused(local: Local) -> None:
    for host in ("evil.example", f"evil.example:{local.port}", "localhost.evil.example",
                 "127.0.0.1.evil.example", "bad host", f"127.0.0.1:{local.port}:1"):
        response = local.request("GET", "/api/sessions", headers={"Host": host})
        assert response.status_code == 421, host
        assert response.json()["error"]["code"] == "host_not_allowed"
    for host in (f"127.0.0.1:{local.port}", f"localhost:{local.port}", "LOCALHOST",
                 f"[::1]:{local.port}", "127.0.0.1"):
        assert local.request("GET", "/api/sessions", headers={"Host": host}).status_code == 200


def test_listed_names_and_star(settings: Settings) -> None:
    with _serve(settings, allowed_hosts=["dialoop.lan"]) as local:
        assert local.request("GET", "/api/health",
                             headers={"Host": "dialoop.lan:8000"}).status_code == 200
        assert local.request("GET", "/api/health",
                             headers={"Host": "evil.example"}).status_code == 421
    with _serve(settings, allowed_hosts=["*"]) as local:
        assert local.request("GET", "/api/health",
                             headers={"Host": "anything.example"}).status_code == 200


def test_the_setting_lists_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_SERVE_ALLOWED_HOSTS", '["Dialoop.LAN."]')
    settings = load_settings()
    assert settings.serve_allowed_hosts == ["dialoop.lan"]
    with _serve(settings) as local:  # create_app's default: the setting
        assert local.request("GET", "/api/health",
                             headers={"Host": "dialoop.lan"}).status_code == 200
        assert local.request("GET", "/api/health",
                             headers={"Host": "other.lan"}).status_code == 421
    with pytest.raises(ConfigError, match="serve_allowed_hosts"):
        load_settings(serve_allowed_hosts=["http://dialoop.lan:8000/"])


def test_the_servers_own_page_still_writes(local: Local) -> None:
    """What the web page sends (app.js): same-origin fetch with a JSON body, or none."""
    page = {"Origin": local.url, "Sec-Fetch-Site": "same-origin"}
    added = local.request("POST", "/api/knowledge/triples", headers=page,
                          json={"subject": "Ann", "relation": "likes", "object": "tea"})
    assert added.status_code == 201, added.text
    triple = added.json()["id"].removeprefix("triple:")
    assert local.request("DELETE", f"/api/knowledge/triples/{triple}",
                         headers=page).status_code == 204
    # The same page reached as localhost: its origin is then http://localhost:PORT.
    as_localhost = {"Origin": f"http://localhost:{local.port}",
                    "Host": f"localhost:{local.port}"}
    assert local.request("POST", "/api/knowledge/triples", headers=as_localhost,
                         json={"subject": "Ann", "relation": "likes", "object": "jam"}
                         ).status_code == 201
    # Another port of the same machine is another origin (a different local web app).
    other_port = {"Origin": f"http://127.0.0.1:{local.port + 1}",
                  "Sec-Fetch-Site": "same-site"}
    assert local.request("POST", "/api/knowledge/triples", headers=other_port,
                         json={"subject": "Ann", "relation": "likes", "object": "gin"}
                         ).status_code == 403


def test_json_endpoints_take_only_json(local: Local) -> None:
    body = b'{"subject": "Ann", "relation": "likes", "object": "tea"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = local.request("POST", "/api/knowledge/triples", content=body,
                                 headers=headers)
        assert response.status_code == 415, content_type
        assert "application/json" in response.json()["error"]["message"]
    assert local.request("POST", "/v1/chat/completions", content=b'{"messages": []}',
                         headers={"Content-Type": "text/plain"}).status_code == 415
    assert local.request("POST", "/api/knowledge/triples", content=body,
                         headers={"Content-Type": "application/json; charset=utf-8"}
                         ).status_code == 201
    # No body at all is not a content-type question (the route says what it misses).
    assert local.request("POST", "/api/knowledge/triples").status_code == 400


def test_bind_names() -> None:
    assert names_for_bind("127.0.0.1") == [] and names_for_bind("192.168.1.5") == []
    assert names_for_bind("Dialoop.lan") == ["dialoop.lan"]
    assert names_for_bind("0.0.0.0")  # this machine's own names
