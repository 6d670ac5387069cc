"""The ``memoxr pairs`` command: parse, call :func:`memoxr.influence.pairs.pairs`, write, report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..io.chunks import DEFAULT_CHUNK_MB
from .options import (
    allow_pickle_option,
    dry_run_option,
    handle_errors,
    overwrite_option,
    quiet_option,
    remote_options,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions

__all__ = ["pairs_command"]


@click.command("pairs")
@click.argument("source", metavar="INPUT", type=click.Path())
@click.argument("output", metavar="OUT.csv", type=click.Path(dir_okay=False))
@click.option("--min-infl", type=float, default=0.15, show_default=True, help="Lowest influence of a kept pair (inclusive).")
@click.option("--min-mem", type=float, default=0.25, show_default=True, help="Lowest memorization of the pair's train sample (inclusive).")
@click.option("--top-k-per-test", type=click.IntRange(min=1), default=None, help="Keep at most K pairs per test sample, of highest influence.")
@click.option("--full", is_flag=True, help="Search influence_full(train_id, test_id) (a store of `memoxr estimate --full`) instead of the within-class blocks.")
@click.option("--chunk-mb", type=float, default=None, help=f"For an .npz INPUT: target chunk size in MB.  [default: {DEFAULT_CHUNK_MB:g}]")
@overwrite_option
@allow_pickle_option
@quiet_option
@dry_run_option
@handle_errors
@remote_options
def pairs_command(
    source: str, output: str, min_infl: float, min_mem: float, top_k_per_test: int | None, full: bool,
    chunk_mb: float | None, overwrite: bool, allow_pickle: bool, quiet: bool, dry_run: bool,
    storage_options: StorageOptions,
) -> None:
    """High-influence train/test pairs of an influence store or FZ npz, chunk by chunk.

    Keeps the pairs with influence >= --min-infl whose train sample has
    memorization >= --min-mem, as the FZ release's *_high_infl_pairs_*.npz do.
    OUT.csv gets class_label, train_index, test_index, test_label, memorization,
    influence; an OUT ending in .npz gets the FZ keys tr_idx, tt_idx, infl, mem
    (plus tr_labels, tt_labels).
    """
    from ..influence.pairs import check_pairs_output, pairs, write_pairs
    from ..io.chunks import validate_option_mb
    from ..io.storage import check_writable

    if chunk_mb is not None:
        chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    check_pairs_output(output)
    check_writable(output, overwrite=overwrite, storage_options=storage_options)
    if dry_run:
        from ..influence.plan import plan_pairs

        click.echo(str(plan_pairs(
            source, min_infl=min_infl, min_mem=min_mem, top_k_per_test=top_k_per_test, full=full,
            allow_pickle=allow_pickle, chunk_mb=chunk_mb, storage_options=storage_options,
        )))
        return
    table = pairs(
        source, min_infl=min_infl, min_mem=min_mem, top_k_per_test=top_k_per_test, full=full,
        allow_pickle=allow_pickle, chunk_mb=chunk_mb, storage_options=storage_options,
    )
    path = write_pairs(table, output, overwrite=overwrite, storage_options=storage_options)
    order = table.attrs.get("sample_order") or "unknown"
    click.echo(f"wrote {path}: {len(table)} pairs (indices in the {order!r} sample order)")
