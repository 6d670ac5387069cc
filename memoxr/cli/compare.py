"""The ``memoxr compare`` command: parse, call :func:`memoxr.importers.report.compare_report`, report."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .options import (
    handle_errors,
    name_value_pairs,
    overwrite_flag,
    quiet_option,
    remote_options,
    skipna_option,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions

__all__ = ["compare_command"]


# --------------------------------------------------------------------------- command line


def _mappings(values: tuple[str, ...]) -> str | dict[str, str] | None:
    """``--mapping FILE`` (one order differs) or ``--mapping ORDER=FILE`` (repeatable)."""
    from ..io.location import is_url

    if len(values) == 1:
        value = values[0]
        # A URL is a FILE (its path may hold "=" too); ORDER=URL has "=" before the "://".
        if os.path.exists(value) or (is_url(value) and "=" not in value.split("://", 1)[0]):
            return value
    return name_value_pairs(values, "--mapping", form="FILE (an existing permutation file) or ORDER=FILE",
                            example="tfds=tfds_to_torchvision.npy") or None


def _scalar(text: str) -> Any:
    """A ``--sel`` value as an int, else a float, else text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


@click.command("compare")
@click.argument("stores", nargs=-1, required=True, metavar="STORE...")
@click.option("--mask", default=None, help="Boolean ground truth of a STORE, e.g. is_mislabeled: AUROC, AUPRC, FPR at 95% TPR.")
@click.option("--memorization", type=click.Path(), default=None,
              help="Influence store or FZ .npz whose tr_mem to correlate with (cosine, Pearson, Spearman).")
@click.option("--mapping", "mappings", multiple=True, metavar="[ORDER=]FILE",
              help="Permutation translating ORDER's identities into the reference order (the mask's store's; else "
              "the first STORE's): FILE[i] = reference identity of ORDER's sample i, the inverse of evaluate's "
              "--mapping; `memoxr align-order --from OTHER --to REFERENCE` writes it. FILE alone when one order "
              "differs (repeatable).")
@click.option("--proxy", "proxies", multiple=True, help="Proxy computed from dynamics stores (repeatable).  [default: all recorded]")
@click.option("--sel", "selections", multiple=True, metavar="DIM=VALUE",
              help="Keep one value of a run dim in every store that has it, e.g. noise=0.1 (repeatable).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the table to this CSV.")
@overwrite_flag("Replace the --csv file if it exists.")
@skipna_option
@quiet_option
@handle_errors
@remote_options
def compare_command(stores: tuple[str, ...], mask: str | None, memorization: str | None, mappings: tuple[str, ...],
                    proxies: tuple[str, ...], selections: tuple[str, ...], csv_path: str | None, overwrite: bool,
                    skipna: bool | None, quiet: bool, storage_options: StorageOptions) -> None:
    """Every score of every STORE in one table: detection of --mask, agreement with FZ --memorization.

    STORE is a dynamics store (its proxies: CSL and the baselines), a scores
    store (memoxr import-scores) or an influence store / FZ .npz (its
    memorization). Samples are paired by identity; different sample orders
    are refused unless --mapping translates them.
    """
    from ..importers.report import compare_report
    from ..io.location import Location, locate, locate_each

    selections_by_dim = name_value_pairs(selections, "--sel", form="DIM=VALUE", example="noise=0.1")
    # --quiet: no bar; else quiet_option's progress context draws one for each pass that lasts.
    # Each path its own Location, resolved once with --storage-options.
    table = compare_report([Location.of(store, storage_options) for store in stores], mask=mask,
                           memorization=locate(memorization, storage_options), mapping=locate_each(_mappings(mappings), storage_options),
                           proxies=list(proxies) or None,
                           select={dim: _scalar(text) for dim, text in selections_by_dim.items()},
                           output=locate(csv_path, storage_options), overwrite=overwrite, skipna=skipna)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if csv_path is not None:
        click.echo(f"wrote {csv_path}")
