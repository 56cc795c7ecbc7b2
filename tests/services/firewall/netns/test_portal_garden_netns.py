"""The captive portal's walled garden in namespaces (gate.py): a client that has not
logged in reaches the garden's web (the run's front door, in a testbed) directly,
while its other web traffic is still sent to the portal and nothing else passes;
with a `signin` (the front-end's sign-in, in the garden) the portal sends captive
clients there instead of to its own login form.

The portal rig of test_portal_netns.py (portal_rig.PortalNet): the web host
NET.1.20 stands for the front door, with servers on 80 (in the garden) and 8080
(not: the garden is web only); NET.1.5 stands for any other site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_rig import PortalNet
from waiting import until

NET = "10.76"
DOOR = f"{NET}.1.20"


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[PortalNet]:
    with PortalNet(run_prefix, tmp_path, NET).built((8080, 80)) as n:
        yield n


def test_a_captive_client_reaches_the_garden_and_nothing_else(net: PortalNet) -> None:
    cfg = net.portal_config("garden-secret")
    cfg["garden"] = [DOOR]
    net.start_portal(cfg)
    # Another site's web: redirected to the portal's login page (the gate is up).
    other = until(lambda: net.curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                   f"http://{NET}.1.5/").stdout.startswith("302"))  # fmt: skip
    assert other
    assert net.curl("-o", "/dev/null", "-w", "%{redirect_url}", f"http://{NET}.1.5/").stdout == (
        f"http://{NET}.0.1/login"
    )
    # The garden's web: the server itself answers, before any login.
    page = net.curl("-i", f"http://{DOOR}/hello.txt").stdout
    assert page.startswith("HTTP/1.0 200") and "hello from the web" in page, page
    # Not web, or not the garden: nothing passes.
    assert net.curl("-m", "2", f"http://{DOOR}:8080/hello.txt").stdout == ""
    assert net.stats()["logins"] == 0


def test_a_garden_that_is_no_address_is_refused(net: PortalNet) -> None:
    cfg = net.portal_config("garden-secret")
    cfg["garden"] = ["the door"]
    with pytest.raises(AssertionError, match="garden: 'the door' is not an IPv4 address"):
        net.start_portal(cfg)


def test_with_a_signin_captive_clients_are_sent_to_the_front_ends_sign_in(
    net: PortalNet,
) -> None:
    cfg = net.portal_config("garden-secret")
    signin = f"http://{DOOR}/signin?next=/api/v1/streaming/app"
    cfg["garden"], cfg["signin"] = [DOOR], signin
    net.start_portal(cfg)
    # Another site's web: to the front-end's sign-in, not the portal's form.
    got = until(lambda: net.curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                                 f"http://{NET}.1.5/news").stdout == f"302 {signin}")  # fmt: skip
    assert got, net.curl("-i", f"http://{NET}.1.5/news").stdout
    # RFC 8908 says the same; the sign-in itself is reached (the garden).
    api = net.curl(f"http://{NET}.0.1/api/captive").stdout
    assert f'"user-portal-url": "{signin}"' in api and '"captive": true' in api, api
    assert "hello from the web" in net.curl(f"http://{DOOR}/hello.txt").stdout


def test_a_signin_outside_the_garden_is_refused(net: PortalNet) -> None:
    cfg = net.portal_config("garden-secret")
    cfg["garden"], cfg["signin"] = [DOOR], f"http://{NET}.1.5/signin"
    with pytest.raises(AssertionError, match="is not in the garden"):
        net.start_portal(cfg)
