"""What services provide each other (netfate.contract: ``Service.provides``,
``Capabilities``): a service asks the platform by a capability's name and never
imports the provider. The function is imported when first asked for; a name no
registered service provides is a clear NotProvided; a name provided twice stops
the app from being built."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

import fakesvc
from netfate.contract import Capabilities, ContractError, NotProvided
from netfate.orchestrator.app import Settings, create_app

ECHO = {"echo": "fakesvc.provided:echo"}


def test_a_capability_is_found_by_name_and_loaded_when_first_asked_for() -> None:
    sys.modules.pop("fakesvc.provided", None)
    caps = Capabilities([replace(fakesvc.SERVICE, provides=ECHO)])
    assert "fakesvc.provided" not in sys.modules  # registering it imports nothing
    assert caps.provider("echo") == "fake" and caps.provider("personal-network") is None
    assert caps.get("echo")("hello") == "fakesvc heard hello"
    assert "fakesvc.provided" in sys.modules
    assert caps.get("echo") is caps.get("echo")


def test_a_capability_nobody_provides_is_a_clear_error() -> None:
    caps = Capabilities([replace(fakesvc.SERVICE, provides=ECHO)])
    with pytest.raises(NotProvided) as e:
        caps.get("personal-network")
    assert str(e.value) == (
        "no registered service provides 'personal-network' (provided: echo (fake))"
    )
    with pytest.raises(NotProvided, match=r"\(provided: nothing\)"):
        Capabilities([]).get("echo")


def test_a_reference_that_is_no_function_is_a_contract_error() -> None:
    caps = Capabilities([replace(fakesvc.SERVICE, provides={"x": "fakesvc.provided"})])
    with pytest.raises(ContractError, match="is not callable"):
        caps.get("x")


def test_a_capability_provided_twice_stops_the_app(tmp_path: Path) -> None:
    one = replace(fakesvc.SERVICE, provides=ECHO)
    two = replace(fakesvc.SERVICE, name="fake2", provides=ECHO)
    with pytest.raises(ContractError, match="'echo' is provided by both fake and fake2"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db"), services=[one, two])


def test_the_app_holds_its_services_capabilities(tmp_path: Path) -> None:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db"),
        services=[replace(fakesvc.SERVICE, provides=ECHO)],
    )
    assert app.state.capabilities.get("echo")("x") == "fakesvc heard x"
