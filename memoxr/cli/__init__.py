"""The ``memoxr`` command: each command parses its options, calls one function and reports."""

from .main import main

__all__ = ["main"]
