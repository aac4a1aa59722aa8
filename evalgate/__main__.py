"""``python -m evalgate`` is the ``evalgate`` command."""

from evalgate.cli.main import app

app()
