"""``python -m netfate.experiment hrh ...`` (until ``netfate experiment`` is mounted)."""

from netfate.experiment.cli import app

app(prog_name="netfate experiment")
