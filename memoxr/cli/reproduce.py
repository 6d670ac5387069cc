"""The ``memoxr reproduce`` command (registered lazily on ``memoxr.cli.main``). No logic here."""

from __future__ import annotations

import click

from .options import handle_errors, overwrite_flag, quiet_option


@click.command("reproduce")
@click.argument("out_dir", metavar="OUT_DIR", type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Fewer models, epochs and architectures: the same experiments in under a minute.")
@click.option("--trials", type=int, default=None, help="FZ models per architecture on random 70% subsets.  [default: 1000; 64 with --quick]")
@click.option("--seeds", type=int, default=None, help="Seeds of every full-data, mislabel and duplicate run.  [default: 3]")
@click.option("--epochs", type=int, default=None, help="Epochs of every model (FZ trials, dynamics, duplicates).  [default: 20; 10 with --quick]")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures (they need matplotlib: pip install 'memoxr[plot]', or '.[plot]' from a clone).")
@overwrite_flag("Start again in an OUT_DIR that holds other files or another run: what reproduce wrote there is "
    "deleted first (other files are kept).",
)
@quiet_option
@handle_errors
def reproduce_command(
    out_dir: str, quick: bool, trials: int | None, seeds: int | None, epochs: int | None, no_figures: bool,
    overwrite: bool, quiet: bool,
) -> None:
    """Reproduce the CSL paper's experiments on scikit-learn's digits, from scratch.

    FZ memorization from many models on random 70% subsets, training dynamics of
    several architectures and seeds, then Table 1 (CSL and baselines against FZ),
    Table 2 (mislabel AUROC at 1-10% noise), Table 3 (planted duplicates),
    Table 4 (across architectures) and the cost table: Zarr stores, CSV, PNG and
    report.md in OUT_DIR. Complete stages in OUT_DIR are reused; an interrupted
    run resumes. OUT_DIR holding anything else needs --overwrite (which replaces
    only what reproduce writes).
    """
    from ..reproduce.pipeline import reproduce

    result = reproduce(
        out_dir, quick=quick, trials=trials, seeds=seeds, epochs=epochs, overwrite=overwrite,
        figures=not no_figures, echo=None if quiet else _progress,
    )
    if quiet:
        click.echo(f"wrote {result.out_dir / 'report.md'}")


def _progress(message: str) -> None:
    click.echo(message, err=True)  # progress on stderr, like every long command
