"""``python -m memoxr``: the same as the ``memoxr`` command."""

from .cli.main import main

main(prog_name="memoxr")
