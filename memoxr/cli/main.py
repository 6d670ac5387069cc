"""The ``memoxr`` command. It parses arguments and calls the library; no logic lives here.

Bad input exits with status 2 and a one-line message naming the argument or key.
One name per concept across commands, the seed's: ``--input`` and ``--output``
for paths (the older positional form still works), ``--class``/``--analyze-class``
for a class, ``--top-k`` for a number of top-ranked samples.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._version import __version__
from ..compute import collector
from ..compute.lean_imports import forget_lean_import, import_dask_array_lean
from ..compute.malloc import keep_freed_buffers
from ..io.chunks import DEFAULT_CHUNK_MB
from .options import (
    allow_pickle_option,
    dry_run_option,
    handle_errors,
    overwrite_flag,
    overwrite_option,
    positional_paths,
    quiet_option,
    refuse_existing_local_outputs,
    remote_options,
    skipna_option,
    with_path_options,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions


class LazyGroup(click.Group):
    """A click group whose commands from other modules are imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, tuple[str, str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module, attribute, _ = self.lazy_commands[cmd_name]
            command = getattr(importlib.import_module(module, __package__), attribute)
            if cmd_name in PATH_OPTIONS:
                command = with_path_options(command, PATH_OPTIONS[cmd_name])
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:  # a lazy command's summary from the table, whether or not it is imported yet
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][2]))
            else:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memoxr")
def main() -> None:
    """memoxr: memorization and influence analytics on labelled Zarr stores, lazily."""
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in COLLECTOR_PAUSED:  # no garbage collection over imports (compute/collector.py)
        ctx.with_resource(collector.paused_until_work())
    keep_freed_buffers()  # chunk-sized buffers reused, not page-faulted anew (memoxr/compute/malloc.py)
    if import_dask_array_lean():  # no scipy, jinja2 or copied docstrings: 0.25 s less start-up (compute/lean_imports.py)
        ctx.call_on_close(forget_lean_import)  # a command that ends before dask.array leaves nothing arranged


#: Commands whose work all goes through memoxr.compute.progress.compute, which ends the pause
#: (their --dry-run computes nothing: its pause lasts until the command ends, at little cost).
COLLECTOR_PAUSED = frozenset({"convert", "calculate", "update-csv", "demo"})


def run(args: list[str] | None = None) -> None:
    """The ``memoxr`` command's process (console script and ``python -m memoxr``): :func:`main`, then exit.

    ``args`` default to the command line. What is alive at exit is frozen first,
    so the exit does not scan it (compute/collector.py); tests call :func:`main`
    in-process instead.

    Examples
    --------
    >>> try:
    ...     run(["--version"])
    ... except SystemExit as done:
    ...     print("exit status", done.code)
    memoxr, version ...
    exit status 0
    """
    collector.freeze_at_exit()
    main(args=args, prog_name="memoxr")


@main.command("convert", short_help="A Feldman–Zhang influence npz into a labelled Zarr store.")
@positional_paths([("--input", "input_npz", True), ("--output", "output", True)])
@click.option("--input", "input_npz", metavar="INPUT.npz", type=click.Path(dir_okay=False), help="The FZ influence npz.  [required]")
@click.option("--output", metavar="OUTPUT.zarr", type=click.Path(), help="The store to write.  [required]")
@overwrite_option
@allow_pickle_option
@click.option(
    "--chunk-mb",
    type=float,
    default=DEFAULT_CHUNK_MB,
    show_default=True,
    help="Target size of one influence chunk in MB (uncompressed): whole classes are grouped "
    "while they fit; a larger class is split along train_sample.",
)
@click.option(
    "--sample-order",
    default=None,
    help="Name of the order the npz's samples follow, recorded in the store.  "
    "[default: the npz's sample_order key, else tfds (the FZ release's order)]",
)
@click.option(
    "--shard-mb",
    type=float,
    default=None,
    help="Group chunks into Zarr shards of about this size (few, large objects).  [default: none locally, "
    "256 for s3:// outputs]",
)
@quiet_option
@handle_errors
@remote_options
def convert_cmd(
    input_npz: str, output: str, overwrite: bool, allow_pickle: bool, chunk_mb: float, sample_order: str | None,
    shard_mb: float | None, quiet: bool, storage_options: StorageOptions,
) -> None:
    """Convert a Feldman–Zhang influence npz into a labelled Zarr store.

    INPUT.npz holds tr_mem, tr_labels, tt_labels and, per class k,
    infl_matrix_class{k}, tr_classidx_{k}, tt_classidx_{k}. It is validated
    completely before anything is written; OUTPUT.zarr appears only once complete.
    """
    from ..io.checksum import BackgroundChecksum
    from ..io.chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    shard_mb = None if shard_mb is None else validate_option_mb("--shard-mb", shard_mb)
    refuse_existing_local_outputs((output,), overwrite=overwrite, inputs=(input_npz,), stores=(output,))
    # A local source's sha256 starts before the imports below, which hold one core for about
    # half a second: the other core hashes meanwhile (the npz is validated before any write).
    checksum = BackgroundChecksum(input_npz) if "://" not in input_npz and os.path.isfile(input_npz) else None
    try:
        from ..convert import convert_npz

        path = convert_npz(
            input_npz, output, overwrite=overwrite, allow_pickle=allow_pickle, chunk_mb=chunk_mb,
            sample_order=sample_order, shard_mb=shard_mb, storage_options=storage_options, source_checksum=checksum,
        )
    finally:
        if checksum is not None:
            checksum.cancel()  # a no-op once computed
    click.echo(f"wrote {path}")


@main.command("calculate", short_help="The four scores, the per-class table and the analysis.")
@click.option("--input", "input_path", required=True, type=click.Path(), help="Influence data: an FZ .npz or a memoxr .zarr store.")
@click.option(
    "--output",
    "output_path",
    type=click.Path(),
    default=None,
    help="Where to save the scores: a .zarr store, or an .npz in the seed's layout (per-class dicts; pickled).",
)
@click.option("--analyze-class", "--class", "analyze_class", type=int, default=None, help="Class to analyse in detail.  [default: the first class]")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Samples shown per method in the analysis.")
@click.option("--alpha", type=float, default=0.7, show_default=True, help="Weight of memorization in weighted_combination.")
@click.option("--beta", type=float, default=0.3, show_default=True, help="Weight of normalized influence in weighted_combination.")
@click.option("--stats-csv", type=click.Path(dir_okay=False), default=None, help="Also write the per-class statistics table to this CSV.")
@skipna_option
@overwrite_option
@allow_pickle_option
@quiet_option
@dry_run_option
@handle_errors
@remote_options
def calculate_cmd(
    input_path: str, output_path: str | None, analyze_class: int | None, top_k: int, alpha: float, beta: float,
    stats_csv: str | None, skipna: bool | None, overwrite: bool, allow_pickle: bool, quiet: bool, dry_run: bool,
    storage_options: StorageOptions,
) -> None:
    """Compute the four influence-aware memorization scores, the per-class table and the analysis."""
    if dry_run:
        from ..influence.plan import plan_calculate

        click.echo(str(plan_calculate(input_path, allow_pickle=allow_pickle, storage_options=storage_options)))
        return
    store = None if output_path is None or output_path.endswith(".npz") else output_path
    refuse_existing_local_outputs((output_path, stats_csv), overwrite=overwrite, stores=(store,), inputs=(input_path,))
    from .. import workflows

    result = workflows.calculate(
        input_path, output=output_path, alpha=alpha, beta=beta, stats_csv=stats_csv, overwrite=overwrite,
        allow_pickle=allow_pickle, class_label=analyze_class, k=top_k, skipna=skipna,
        storage_options=storage_options,
    )
    click.echo(str(result.analysis))
    for path in result.written:
        click.echo(f"wrote {path}")


@main.command("update-csv", short_help="Merge the four scores' per-class statistics into a CSV.")
@click.option("--influence-file", required=True, type=click.Path(), help="Scores: a .zarr written by calculate, or a seed-layout .npz (needs --allow-pickle).")
@click.option("--csv-file", required=True, type=click.Path(dir_okay=False), help="Per-class CSV to update; created with the full table if it does not exist.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Where to write the updated CSV.  [default: --csv-file, updated in place]")
@overwrite_flag("Replace an existing --output (not needed to update --csv-file in place).")
@allow_pickle_option
@skipna_option
@quiet_option
@handle_errors
@remote_options
def update_csv_cmd(
    influence_file: str, csv_file: str, output: str | None, overwrite: bool, allow_pickle: bool,
    skipna: bool | None, quiet: bool, storage_options: StorageOptions,
) -> None:
    """Merge the per-class statistics of the four scores into a CSV, on class_label.

    Other columns of an existing CSV are kept; its classes must equal the scores'.
    --csv-file is updated in place: the new table is written beside it and
    renamed over it, so an interrupted run leaves it as it was. An existing
    --output other than --csv-file needs --overwrite.
    """
    from .. import workflows

    path = workflows.update_csv(
        influence_file, csv_file, output=output, overwrite=overwrite, allow_pickle=allow_pickle,
        storage_options=storage_options, skipna=skipna,
    )
    click.echo(f"wrote {path}")


@main.command("demo", short_help="The whole pipeline on the sample that ships with memoxr.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default="memoxr-demo", show_default=True, help="Folder for the demo's outputs.")
@overwrite_option
@quiet_option
@handle_errors
def demo_cmd(output_dir: str, overwrite: bool, quiet: bool) -> None:
    """Run the whole pipeline on the sample that ships with memoxr: convert, score, stats, analysis.

    Prints a short report: what was computed, the files written, three facts
    found in the results and the commands to try next.
    """
    from .. import workflows

    result = workflows.demo(Path(output_dir), overwrite=overwrite)
    click.echo(workflows.demo_report(result, output_dir))


# Commands defined in other modules, imported only when they run (or show their own help),
# so `memoxr --help` starts at once: name -> (module, attribute, one-line help for the listing).
main.lazy_commands.update(
    {
        "estimate": (".estimate", "estimate_command", "Feldman-Zhang memorization and influence from trial records."),
        "trials-from-runs": (
            ".heldout", "trials_from_runs_command", "The released held-out runs as trial records."
        ),
        "ingest": (".dynamics", "ingest_command", "Per-epoch training records into a dynamics store."),
        "evaluate": (".dynamics", "evaluate_command", "CSL and baselines: detection metrics, agreement with FZ."),
        "dynamics-demo": (".dynamics", "dynamics_demo_command", "Train on digits with label noise; AUROC table."),
        "plot": (".plot", "plot_command", "Figures (PNG/SVG/PDF) of a scores store, influence store or FZ npz."),
        "convergence": (".estimate", "convergence_command", "How FZ estimates move as trials are added."),
        "pairs": (".pairs", "pairs_command", "High-influence train/test pairs (FZ high_infl_pairs), chunk by chunk."),
        "align-order": (".align_order", "align_order_command", "Permutation between two orders of one data set, from sample content."),
        "import-scores": (".importers", "import_scores_command", "Other tools' per-sample scores into a scores store."),
        "compare": (".compare", "compare_command", "Every score of every store: detection and agreement with FZ."),
        "reproduce": (".reproduce", "reproduce_command", "The CSL paper's experiments on digits, end to end."),
    }
)

# Lazy commands whose paths are positional arguments in their own module: here they become
# --input/--output like everywhere else (the arguments still work). name -> [(flag, help), ...]
PATH_OPTIONS: dict[str, list[tuple[str, str]]] = {
    "estimate": [("--input", "Trial records: an .npz or a Zarr store."), ("--output", "An FZ .npz, or else a Zarr influence store.")],
    "trials-from-runs": [("--input", "The experiment folder of the held-out runs."), ("--output", "Trial records to write: .npz, or else a Zarr store.")],
    "plot": [("--input", "Influence or scores data to draw."), ("--output", "Where to write the figures.")],
    "pairs": [("--input", "An influence store or FZ npz."), ("--output", "The pairs: .csv, or .npz in the FZ keys.")],
    "convergence": [("--input", "Trial records: an .npz or a Zarr store."), ("--output", "The table to write (.csv).")],
    "align-order": [("--from", "Samples in the first order (A above)."), ("--to", "The same samples in the other order (B above)."),
                    ("--output", "The permutation to write (.npy, .txt or .csv).")],
    "reproduce": [("--output", "The folder of stores, tables, figures and report.md (OUT_DIR).")],
}
