"""The ``memoxr estimate`` and ``memoxr convergence`` commands: parse, call one function, report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB
from .options import (
    dry_run_option,
    handle_errors,
    overwrite_option,
    quiet_option,
    remote_options,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions

__all__ = ["convergence_command", "estimate_command"]


@click.command("estimate")
@click.argument("trials", metavar="TRIALS", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@overwrite_option
@click.option("--full", is_flag=True, help="Also store influence_full(train_id, test_id), across classes (Zarr output only).")
@click.option(
    "--chunk-mb", type=float, default=DEFAULT_CHUNK_MB, show_default=True,
    help="Target size in MB of one influence chunk and of one block of trials.",
)
@click.option(
    "--sample-order", default=None,
    help="Name of the order the records' samples follow, recorded in the output.  "
    "[default: the order the records carry, else 'trials']",
)
@click.option(
    "--append", is_flag=True,
    help="Add the TRIALS to the estimate store OUTPUT (its sums), without re-reading the old trials; "
    "OUTPUT is replaced only once the new estimate is complete.",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
    help="Add percentile confidence intervals from N bootstrap resamples of the trials (Zarr output).",
)
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Coverage of the bootstrap intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resampling.")
@quiet_option
@dry_run_option
@handle_errors
@remote_options
def estimate_command(
    trials: str, output: str, overwrite: bool, full: bool, chunk_mb: float, sample_order: str | None, append: bool,
    bootstrap: int, confidence: float, seed: int, quiet: bool, dry_run: bool, storage_options: StorageOptions,
) -> None:
    """Estimate memorization and influence (Feldman–Zhang) from trial records.

    TRIALS (.npz or Zarr store) holds mask and train_correct (trial, train),
    test_correct (trial, test), tr_labels and tt_labels. OUTPUT ending in .npz
    is written in the FZ npz layout, one ending in .zarr (or with no suffix) as a
    Zarr influence store with standard errors and the sums that --append adds to; it appears only
    once complete.
    """
    from ..io.chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    if dry_run:
        from ..estimate.plan import plan_estimate
        from ..io.storage import check_writable

        if not append:  # the run would refuse an existing OUTPUT: so does its plan
            kind = "file" if str(output).endswith(".npz") else "folder"
            check_writable(output, overwrite=overwrite, storage_options=storage_options, kind=kind)
        plan = plan_estimate(trials, chunk_mb=chunk_mb, full=full, storage_options=storage_options)
        click.echo(str(plan))
        if bootstrap:
            click.echo(f"  note: --bootstrap {bootstrap} adds a pass over the records per block of resamples, "
                       "not counted above")
        if append:
            click.echo(f"  note: --append adds these trials' sums to {output!r}; its old trials are not read")
        return
    from ..estimate.incremental import write_or_append_estimate

    if append and (overwrite or full or bootstrap or sample_order):
        raise MemoxrInputError(
            "--append: adds to the store OUTPUT as it is; received it with --overwrite, --full, "
            "--bootstrap or --sample-order, which only a new estimate takes"
        )
    path = write_or_append_estimate(
        trials, output, append=append, overwrite=overwrite, full=full, chunk_mb=chunk_mb, sample_order=sample_order,
        storage_options=storage_options, bootstrap=bootstrap, confidence=confidence, seed=seed,
    )
    click.echo(f"{'appended to' if append else 'wrote'} {path}")


@click.command("convergence")
@click.argument("trials", metavar="TRIALS", type=click.Path())
@click.argument("output", metavar="OUTPUT.csv", type=click.Path())
@click.option("--fractions", default=None,
              help="Increasing fractions of the trials, comma-separated.  [default: 0.1,0.2,...,1]")
@click.option("--figure", type=click.Path(), default=None, help="Also draw the table as a PNG.")
@click.option("--chunk-mb", type=float, default=DEFAULT_CHUNK_MB, show_default=True,
              help="Target size in MB of one block of trials and of one influence chunk.")
@overwrite_option
@quiet_option
@handle_errors
def convergence_command(
    trials: str, output: str, fractions: str | None, figure: str | None, chunk_mb: float, overwrite: bool, quiet: bool
) -> None:
    """How FZ estimates move as trials are added: a CSV table (and a figure).

    For the first 10%, 20%, ... of the TRIALS, the correlation of memorization
    and influence with the all-trial estimate and their mean |change|.
    """
    from ..estimate.uncertainty import DEFAULT_FRACTIONS, write_convergence
    from ..io.chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    try:
        values = DEFAULT_FRACTIONS if fractions is None else tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise MemoxrInputError(f"--fractions: expected comma-separated numbers, received {fractions!r}") from None
    table, written = write_convergence(trials, output, fractions=values, figure=figure, chunk_mb=chunk_mb,
                                       overwrite=overwrite)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for path in written:
        click.echo(f"wrote {path}")
