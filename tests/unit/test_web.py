"""The dashboard is served with the right types, from this origin only.

The browser tests (tests/netns/test_dashboard.py) check what it draws; these check
what it is made of: pages and static files, content types, the CSP, no external
URL anywhere, no innerHTML, and the panel convention.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
import netfate.web as web
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered

WEB = Path(web.__file__).parent
SRC = WEB.parent
# The dashboard's files and every registered service's pages and panels (its folder's
# templates/ and static/, which its contract serves).
SOURCES = sorted(
    p
    for d in [WEB, *(s.folder for s in registered())]
    for p in [*d.glob("templates/*"), *d.glob("static/**/*")]
    if p.is_file()
)

# A URL with a scheme or protocol-relative ("//host"): anything that could leave
# this origin. XML namespace names are identifiers, not fetched, so they are allowed.
EXTERNAL = re.compile(r"""(?i)(?:\b[a-z][a-z0-9+.-]*:)?//[a-z0-9.-]+""")
NAMESPACES = {"//www.w3.org"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    web.mount(app)
    with TestClient(app) as c:
        yield c


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        for name in ("src", "href", "action", "poster", "data"):
            if d.get(name):
                self.refs.append((tag, name, str(d[name])))
        if tag == "script":
            self._in_script = "src" not in d
        if tag == "style" or "style" in d:
            self.inline_styles += 1
        if any(k.startswith("on") for k in d):
            self.inline_scripts += 1

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _refs(page: str) -> _Refs:
    p = _Refs()
    p.feed(page)
    return p


def test_sources_exist() -> None:
    names = {p.relative_to(SRC).as_posix() for p in SOURCES}
    assert {
        "web/templates/dashboard.html",
        "web/static/dashboard.js",
        "web/static/dashboard.css",
        "web/static/favicon.svg",
        "services/firewall/static/panel.js",
        "services/sharing/templates/page.html",
    } <= names


def test_dashboard_is_html_with_a_same_origin_csp(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "charset=utf-8" in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<title>netfate" in r.text
    assert 'id="topology"' in r.text


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/static/dashboard.js", ("text/javascript", "application/javascript")),
        ("/static/dashboard.css", ("text/css",)),
        ("/static/favicon.svg", ("image/svg+xml",)),
        ("/static/panels/README.md", ("text/markdown", "text/x-markdown", "text/plain")),
    ],
)
def test_static_files_have_their_types(
    client: TestClient, path: str, ctype: tuple[str, ...]
) -> None:
    r = client.get(path)
    assert r.status_code == 200, path
    assert r.headers["content-type"].split(";")[0] in ctype
    assert r.content == (WEB / path.removeprefix("/")).read_bytes()


def test_unknown_static_file_is_404(client: TestClient) -> None:
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../__init__.py").status_code == 404


def test_every_reference_on_the_page_is_same_origin_and_served(client: TestClient) -> None:
    page = client.get("/").text
    parsed = _refs(page)
    assert parsed.refs, "the page references its script and style"
    for tag, attr, url in parsed.refs:
        assert url.startswith("/") and not url.startswith("//"), (tag, attr, url)
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url
    srcs = [u for t, a, u in parsed.refs if t == "script"]
    assert srcs[:2] == ["/static/session.js", "/static/dashboard.js"]  # who, then the page
    # The CSP forbids inline code and styles; the page must not rely on them.
    assert parsed.inline_scripts == 0
    assert parsed.inline_styles == 0


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(SRC).as_posix())
def test_no_external_urls(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = []
    for m in EXTERNAL.finditer(text):
        url = m.group(0)
        host = url[url.index("//") :]
        if host in NAMESPACES and text[max(0, m.start() - 7) : m.start()].endswith('xmlns="'):
            continue
        found.append(url)
    assert not found, f"{path.name} refers outside this origin: {found}"
    assert "@import" not in text


def test_rendered_page_has_no_external_urls(client: TestClient) -> None:
    page = client.get("/").text
    assert not [m.group(0) for m in EXTERNAL.finditer(page)]


@pytest.mark.parametrize("path", [p for p in SOURCES if p.suffix == ".js"], ids=lambda p: p.name)
def test_scripts_never_parse_data_as_markup(path: Path) -> None:
    code = path.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)  # comments may name the rule
    code = re.sub(r"(?m)^\s*//.*$", "", code)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code, f"{path.name} uses {sink}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("path", [p for p in SOURCES if p.suffix == ".js"], ids=lambda p: p.name)
def test_scripts_parse(path: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    r = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_panels_in_the_panels_folder_load_after_the_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "b-second.js").write_text("// b\n")
    (tmp_path / "a-first.js").write_text("// a\n")
    (tmp_path / "notes.txt").write_text("not a panel\n")
    monkeypatch.setattr(web, "PANELS_DIR", tmp_path)
    monkeypatch.setattr(web, "_registered", [])
    web.register_panel('/svc/static/x.js?v=1&y="2"')
    web.register_panel('/svc/static/x.js?v=1&y="2"')  # idempotent
    srcs = [u for t, a, u in _refs(web.render_dashboard()).refs if t == "script"]
    assert srcs == [
        "/static/session.js",
        "/static/dashboard.js",
        "/static/panels/a-first.js",
        "/static/panels/b-second.js",
        '/svc/static/x.js?v=1&y="2"',
    ]
    assert "&quot;2&quot;" in web.render_dashboard()


@pytest.mark.parametrize(
    "url", ["https://cdn.example.com/x.js", "//cdn.example.com/x.js", "panels/x.js"]
)
def test_register_panel_refuses_other_origins(url: str) -> None:
    with pytest.raises(ValueError):
        web.register_panel(url)


def test_mounted_on_the_orchestrator_next_to_the_api(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db"))
    with authn.client(app) as c:
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert c.get("/static/dashboard.js").status_code == 200
        assert c.get("/api/v1/health").json()["status"] == "ok"
        # The routes the dashboard reads exist.
        for path in ("/api/v1/topology", "/api/v1/instances", "/api/v1/migrations"):
            assert c.get(path).status_code == 200, path
        assert c.get("/api/v1/events?after=0&limit=1").status_code == 200
