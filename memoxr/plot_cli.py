"""The ``memoxr plot`` command (registered on ``memoxr.cli.main``). No logic here.

matplotlib is imported only when the command runs, so the rest of the CLI works
without the ``plot`` extra.
"""

from __future__ import annotations

import click

from ._cli_options import (
    allow_pickle_option,
    handle_errors,
    overwrite_option,
    quiet_option,
    remote_options,
)


@click.command("plot")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.argument("output_dir", metavar="OUTPUT_DIR", type=click.Path(file_okay=False))
@click.option("--class", "class_label", type=int, default=None,
              help="Class highlighted in the scatter and shown in the top-k table.  [default: the first class]")
@click.option("--score", default="original_memo", show_default=True,
              help="Score whose per-class distributions are drawn and that ranks the top-k table: original_memo, "
              "one of the four scores, pos_infl_mean or influence_std (the last two rank the table by original_memo).")
@click.option("--top-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Rows of the top-k table.")
@overwrite_option
@allow_pickle_option
@quiet_option
@handle_errors
@remote_options
def plot_command(
    input_path: str, output_dir: str, class_label: int | None, score: str, k: int, overwrite: bool,
    allow_pickle: bool, quiet: bool, storage_options: dict | None,
) -> None:
    """Draw the scores figures of INPUT (an influence .zarr store or FZ .npz) as PNG files in OUTPUT_DIR.

    Writes score_distributions.png (per-class box plots of --score),
    memorization_vs_influence.png, method_agreement.png (Spearman heatmap) and
    top_k_table.png. OUTPUT_DIR appears only once every file is written.
    Needs matplotlib: pip install "memoxr[plot]".
    """
    try:
        from .plot import write_score_figures
    except ImportError as exc:
        raise click.ClickException(str(exc)) from exc

    for path in write_score_figures(
        input_path, output_dir, class_label=class_label, score=score, k=k, overwrite=overwrite,
        allow_pickle=allow_pickle, show_progress=not quiet, storage_options=storage_options,
    ):
        click.echo(f"wrote {path}")
