"""``python -m memoxr``: the same as the ``memoxr`` command."""

from .cli.main import run

run()
