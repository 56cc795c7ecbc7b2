import pytest
from typer.testing import CliRunner

from netfate.cli import PARTS, build

runner = CliRunner()


def test_help_lists_every_part() -> None:
    r = runner.invoke(build(), ["--help"])
    assert r.exit_code == 0, r.output
    for name in PARTS:
        assert name in r.output


@pytest.mark.parametrize("name", sorted(PARTS))
def test_each_part_runs_alone(name: str) -> None:
    # What `netfate NAME ...` builds: only that part, still addressed by its name.
    r = runner.invoke(build(name), [name, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def test_unknown_command_is_an_error() -> None:
    r = runner.invoke(build("nope"), ["nope"])
    assert r.exit_code != 0
