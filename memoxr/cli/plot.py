"""The ``memoxr plot`` command (registered on ``memoxr.cli.main``). No logic here.

matplotlib is imported only when the command runs, so the rest of the CLI works
without the ``plot`` extra. The choices below mirror ``memoxr.plot.KINDS``,
``SCALES``, ``SORTS`` and ``FORMATS`` (kept literal so ``--help`` needs no matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .options import (
    allow_pickle_option,
    handle_errors,
    overwrite_option,
    quiet_option,
    remote_options,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions

KIND_FILES = {
    "box": "score_distributions",
    "violin": "score_violins",
    "scatter": "memorization_vs_influence",
    "agreement": "method_agreement",
    "top-k": "top_k_table",
}


@click.command("plot")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KIND_FILES)),
              help="Figure to draw; repeat for several.  box / violin: per-class distributions of --score; "
              "scatter: memorization against influence; agreement: Spearman heatmap of the methods; "
              "top-k: table of the top samples of --class.  [default: box, scatter, agreement, top-k]")
@click.option("--score", default="original_memo", show_default=True,
              help="Score whose per-class distributions are drawn and that ranks the top-k table: original_memo, "
              "one of the four scores, pos_infl_mean or influence_std (the last two rank the table by original_memo).")
@click.option("--class", "--analyze-class", "class_label", type=int, default=None,
              help="Class highlighted in the scatter and shown in the top-k table.  [default: the first class]")
@click.option("--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Rows of the top-k table.")
@click.option("--scale", type=click.Choice(["auto", "linear", "log", "symlog"]), default="auto", show_default=True,
              help="Value axis of box / violin (and the axes of scatter). auto: log (symlog with negative values) "
              "when at least 25% of the values are exactly 0 or they span over two decades, else linear. On log "
              "the boxes show the values > 0; the share of exact zeros of each class is written on the top axis.")
@click.option("--sort", "sort_by", type=click.Choice(["mean", "median", "nonzero", "class"]), default="mean",
              show_default=True, help="Order of the classes in box / violin: ascending mean, median (ties by mean), "
              "share of non-zero values, or class order.")
@click.option("--format", "fmt", type=click.Choice(["png", "svg", "pdf"]), default=None,
              help="File format of the figures in a folder OUTPUT.  [default: png; a file OUTPUT's suffix]")
@click.option("--dpi", type=click.IntRange(min=20, max=1200), default=150, show_default=True,
              help="Resolution of png files.")
@overwrite_option
@allow_pickle_option
@quiet_option
@handle_errors
@remote_options
def plot_command(
    input_path: str, output: str, kinds: tuple[str, ...], score: str, class_label: int | None, k: int, scale: str,
    sort_by: str, fmt: str | None, dpi: int, overwrite: bool, allow_pickle: bool, quiet: bool,
    storage_options: StorageOptions,
) -> None:
    """Draw figures of the scores of INPUT into OUTPUT, a folder or one file.

    \b
    INPUT: a scores store written by `memoxr calculate --output` (so scores
    computed with any --alpha/--beta are drawn as computed), an influence
    .zarr store or FZ .npz (scored with the default --alpha/--beta), or a
    seed-layout scores .npz (with --allow-pickle).

    \b
    OUTPUT ending in .png, .svg or .pdf: that one file, in that format; it
    takes exactly one --kind, e.g.
        memoxr plot scores.zarr violins.svg --kind violin --scale symlog
    Any other OUTPUT: a new folder with one file per --kind, named
    score_distributions (box), score_violins, memorization_vs_influence,
    method_agreement and top_k_table, with the --format suffix.

    OUTPUT appears only once every file is written; an existing one is
    replaced only with --overwrite. Needs matplotlib: pip install "memoxr[plot]" (from a clone: pip install ".[plot]").
    """
    from ..plot import (
        write_score_figures,  # without matplotlib: one line naming the extra, status 2
    )

    for path in write_score_figures(
        input_path, output, kinds=list(kinds) or None, class_label=class_label, score=score, k=k, scale=scale,
        sort_by=sort_by, fmt=fmt, overwrite=overwrite, allow_pickle=allow_pickle, dpi=dpi,
        storage_options=storage_options,
    ):
        click.echo(f"wrote {path}")
