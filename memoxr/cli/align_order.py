"""The ``memoxr align-order`` command: parse, call :func:`memoxr.io.sample_order.align_order`, write, report."""

from __future__ import annotations

import click

from .options import handle_errors, overwrite_option, quiet_option

__all__ = ["align_order_command"]


@click.command("align-order")
@click.argument("a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("b", metavar="B", type=click.Path(dir_okay=False))
@click.argument("output", metavar="OUT.npy", type=click.Path(dir_okay=False))
@overwrite_option
@quiet_option
@handle_errors
def align_order_command(a: str, b: str, output: str, overwrite: bool, quiet: bool) -> None:
    """The permutation from A's sample order to B's, from the samples' content.

    A and B are .npy arrays of samples (first axis) or .npz files with key x
    (samples) and optional key y (labels, used to pair exact duplicates).
    OUT.npy (or .txt/.csv) gets mapping[i] = position in B of A's sample i: the
    file --mapping takes when A follows the first store's order and B the
    other's. Refused, with the number of matching samples, when A and B hold
    different samples.
    """
    from ..io.sample_order import align_order, check_mapping_output, write_mapping
    from ..io.storage import check_writable

    check_mapping_output(output)
    check_writable(output, overwrite=overwrite)
    result = align_order(a, b)
    click.echo(result.summary())
    click.echo(f"wrote {write_mapping(result.mapping, output, overwrite=overwrite)}")
