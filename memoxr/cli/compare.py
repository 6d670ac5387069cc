"""The ``memoxr compare`` command: parse, call :func:`memoxr.importers.compare.compare_scores`, report."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..errors import MemoxrInputError
from .options import handle_errors, overwrite_flag, quiet_option, remote_options

if TYPE_CHECKING:
    from ..io.location import StorageOptions

__all__ = ["compare_command"]


# --------------------------------------------------------------------------- command line


def _mappings(values: tuple[str, ...]) -> Any:
    """``--mapping FILE`` (one order differs) or ``--mapping ORDER=FILE`` (repeatable)."""
    if not values:
        return None
    if len(values) == 1 and os.path.exists(values[0]):
        return values[0]
    out: dict[str, str] = {}
    for item in values:
        order, sep, path = item.rpartition("=")
        if not sep or not order or not path:
            raise MemoxrInputError(
                f"--mapping {item!r}: expected FILE (an existing permutation file) or ORDER=FILE, e.g. tfds=tfds_to_torchvision.npy"
            )
        out[order] = path
    return out


def _selections(values: tuple[str, ...]) -> dict[str, Any]:
    """``--sel DIM=VALUE``: the value as an int, else a float, else text."""
    out: dict[str, Any] = {}
    for item in values:
        dim, sep, text = item.partition("=")
        if not sep or not dim or not text:
            raise MemoxrInputError(f"--sel {item!r}: expected DIM=VALUE, e.g. noise=0.1")
        for cast in (int, float, str):
            try:
                out[dim] = cast(text)
                break
            except ValueError:
                continue
    return out


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
@quiet_option
@handle_errors
@remote_options
def compare_command(stores: tuple[str, ...], mask: str | None, memorization: str | None, mappings: tuple[str, ...],
                    proxies: tuple[str, ...], selections: tuple[str, ...], csv_path: str | None, overwrite: bool,
                    quiet: bool, storage_options: StorageOptions) -> None:
    """Every score of every STORE in one table: detection of --mask, agreement with FZ --memorization.

    STORE is a dynamics store (its proxies: CSL and the baselines), a scores
    store (memoxr import-scores) or an influence store / FZ .npz (its
    memorization). Samples are paired by identity; different sample orders
    are refused unless --mapping translates them.
    """
    from ..importers.compare import compare_scores
    from ..io.storage import atomic_output, check_writable

    if csv_path is not None:
        check_writable(csv_path, overwrite=overwrite, storage_options=storage_options)
    # --quiet: no bar; else quiet_option's progress context draws one for each pass that lasts.
    table = compare_scores(list(stores), mask=mask, memorization=memorization, mapping=_mappings(mappings),
                           proxies=list(proxies) or None, select=_selections(selections),
                           storage_options=storage_options)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if csv_path is not None:
        with atomic_output(csv_path, overwrite=overwrite, storage_options=storage_options) as tmp:
            table.to_csv(tmp, index=False)
        click.echo(f"wrote {csv_path}")

