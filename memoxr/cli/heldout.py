"""The ``memoxr trials-from-runs`` command: parse, call :func:`~memoxr.convert.heldout_runs.heldout_runs_to_trials`, report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .options import handle_errors, overwrite_option, quiet_option, remote_options

if TYPE_CHECKING:
    from ..io.location import StorageOptions

__all__ = ["trials_from_runs_command"]


@click.command("trials-from-runs")
@click.argument("folder", metavar="FOLDER", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option(
    "--labels", "labels", required=True, type=click.Path(),
    help="An .npz holding tr_labels and tt_labels (TensorFlow-Datasets order).",
)
@click.option(
    "--subset-ratio", default=None,
    help="The subset-ratio folder to read (e.g. 0.7).  [required when FOLDER holds several]",
)
@overwrite_option
@quiet_option
@handle_errors
@remote_options
def trials_from_runs_command(
    folder: str, output: str, labels: str, subset_ratio: str | None, overwrite: bool, quiet: bool,
    storage_options: StorageOptions,
) -> None:
    """Build trial records from the held-out influence release's per-run files.

    FOLDER is an experiment folder: FOLDER/<subset_ratio>/<run_id>/aux_arrays.npz.
    Every run is validated first; OUTPUT (.npz, or else a Zarr store) holds mask,
    train_correct, test_correct, tr_labels and tt_labels for `memoxr estimate`
    (which keeps their order, tfds), and appears only once complete.
    """
    # Imported here: --help loads no dask, zarr or scipy.
    from ..convert.heldout_runs import heldout_runs_to_trials

    path = heldout_runs_to_trials(
        folder, output, subset_ratio=subset_ratio, labels=labels, overwrite=overwrite, storage_options=storage_options,
    )
    click.echo(f"wrote {path}")
