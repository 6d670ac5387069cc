"""``python -m memoxr``: the same as the ``memoxr`` command."""

from .cli import main

main(prog_name="memoxr")
