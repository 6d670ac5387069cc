"""``memoxr import-scores``: one subcommand per tool (registered on ``memoxr.cli.main``). No logic here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .options import handle_errors, name_value_pairs, overwrite_option, remote_options

if TYPE_CHECKING:
    from ..io.location import StorageOptions


def _truth(values: tuple[str, ...]) -> dict[str, str]:
    return name_value_pairs(values, "--truth", form="NAME=FILE", example="is_mislabeled=mask.npy")


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """OUTPUT, --sample-order, --truth, --overwrite and the remote options of every importer."""
    func = click.argument("output", metavar="OUTPUT.zarr", type=click.Path())(func)
    func = click.option(
        "--sample-order", required=True,
        help="Name of the order the samples' identities follow (tfds, torchvision...); compare refuses to pair "
        "different orders without a --mapping.",
    )(func)
    func = click.option(
        "--truth", multiple=True, metavar="NAME=FILE",
        help="Ground truth over the samples (in the stored order), e.g. is_mislabeled=mask.npy (repeatable).",
    )(func)
    return handle_errors(remote_options(overwrite_option(func)))


@click.group("import-scores")
def import_scores_command() -> None:
    """Other tools' per-sample scores into a scores store that evaluate and compare read.

    Every subcommand writes OUTPUT.zarr complete or not at all: a store over
    `train_id` (the identity of each sample, in the order --sample-order names)
    whose scores carry a direction (+1: larger means more memorized or more
    likely mislabeled).
    """


def _done(path: Any) -> None:
    click.echo(f"wrote {path}")


@import_scores_command.command("plain")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@_common
@click.option("--name", default="score", show_default=True, help="Score name for an .npy/.npz/.txt or a headerless CSV.")
@click.option("--direction", type=click.Choice(["1", "-1"]), default="1", show_default=True,
              help="1 if a larger value means more memorized / mislabeled, -1 if a smaller one does.")
@click.option("--column", "columns", multiple=True, help="CSV column to import (repeatable).  [default: every numeric column]")
@click.option("--id-column", default=None, help="CSV column holding each row's sample identity.  [default: the row]")
@click.option("--sample-ids", type=click.Path(), default=None, help="File with each row's sample identity.")
def plain_command(input_path: str, output: str, sample_order: str, truth: tuple[str, ...], name: str, direction: str,
                  columns: tuple[str, ...], id_column: str | None, sample_ids: str | None, overwrite: bool,
                  storage_options: StorageOptions) -> None:
    """Per-sample values: an .npy, .npz, .txt or .csv (with or without a header)."""
    from ..importers.plain import import_plain

    _done(import_plain(input_path, output, sample_order=sample_order, name=name, direction=int(direction),
                       columns=columns or None, id_column=id_column, sample_ids=sample_ids, truth=_truth(truth),
                       overwrite=overwrite, storage_options=storage_options))


@import_scores_command.command("cleanlab")
@click.argument("pred_probs", metavar="PRED_PROBS", type=click.Path())
@click.argument("labels", metavar="LABELS", type=click.Path())
@_common
@click.option("--method", "methods", multiple=True,
              type=click.Choice(["self_confidence", "normalized_margin", "confidence_weighted_entropy"]),
              help="Label-quality method (repeatable).  [default: all three with cleanlab, self_confidence without]")
@click.option("--sample-ids", type=click.Path(), default=None, help="File with each row's sample identity.")
def cleanlab_command(pred_probs: str, labels: str, output: str, sample_order: str, truth: tuple[str, ...],
                     methods: tuple[str, ...], sample_ids: str | None, overwrite: bool,
                     storage_options: StorageOptions) -> None:
    """cleanlab label quality from out-of-sample PRED_PROBS (.npy, samples x classes) and LABELS."""
    from ..importers.cleanlab_scores import import_cleanlab

    _done(import_cleanlab(pred_probs, labels, output, sample_order=sample_order, sample_ids=sample_ids,
                          truth=_truth(truth), methods=methods or None, overwrite=overwrite,
                          storage_options=storage_options))


@import_scores_command.command("aum")
@click.argument("csv_path", metavar="AUM.csv", type=click.Path())
@_common
def aum_command(csv_path: str, output: str, sample_order: str, truth: tuple[str, ...], overwrite: bool,
                storage_options: StorageOptions) -> None:
    """Area under the margin: aum_values.csv or full_aum_records.csv of asappresearch/aum."""
    from ..importers.aum import import_aum

    _done(import_aum(csv_path, output, sample_order=sample_order, truth=_truth(truth), overwrite=overwrite,
                     storage_options=storage_options))


@import_scores_command.command("cartography")
@click.argument("folder", metavar="FOLDER", type=click.Path())
@_common
@click.option("--dynamics", is_flag=True, help="Write the per-epoch loss/correct/true_prob (a dynamics store) instead.")
def cartography_command(folder: str, output: str, sample_order: str, truth: tuple[str, ...], dynamics: bool,
                        overwrite: bool, storage_options: StorageOptions) -> None:
    """Dataset cartography: FOLDER holds dynamics_epoch_{e}.jsonl (or training_dynamics/ with them)."""
    from ..importers.cartography import import_cartography

    _done(import_cartography(folder, output, sample_order=sample_order, dynamics=dynamics, truth=_truth(truth),
                             overwrite=overwrite, storage_options=storage_options))


@import_scores_command.command("self-influence")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@_common
@click.option("--name", default="self_influence", show_default=True, help="Score name.")
@click.option("--sample-ids", type=click.Path(), default=None, help="File with each row's sample identity.")
def self_influence_command(input_path: str, output: str, sample_order: str, truth: tuple[str, ...], name: str,
                           sample_ids: str | None, overwrite: bool, storage_options: StorageOptions) -> None:
    """TRAK/TracIn-style self-influence: a vector, or a square train x train score matrix (its diagonal)."""
    from ..importers.self_influence import import_self_influence

    _done(import_self_influence(input_path, output, sample_order=sample_order, name=name, sample_ids=sample_ids,
                                truth=_truth(truth), overwrite=overwrite, storage_options=storage_options))
