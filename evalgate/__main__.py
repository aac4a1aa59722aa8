"""``python -m evalgate`` is the ``evalgate`` command."""

from evalgate.cli import app

app()
