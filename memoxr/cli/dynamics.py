"""Click commands of the dynamics subpackage (registered on ``memoxr.cli.main``). No logic here.

Outside :mod:`memoxr.dynamics`, whose import loads scikit-learn and scipy.stats, so that
``memoxr evaluate --help`` starts at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import MemoxrInputError
from ..io.chunks import DEFAULT_CHUNK_MB
from .options import (
    AliasedOption,
    HiddenArguments,
    dry_run_option,
    handle_errors,
    name_value_pairs,
    overwrite_flag,
    overwrite_option,
    positional_paths,
    quiet_option,
    remote_options,
    skipna_option,
)

if TYPE_CHECKING:
    from ..io.location import StorageOptions


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    return name_value_pairs(values, option, example="loss=losses/loss_epoch_{epoch}.npy")


@click.command("ingest")
@click.argument("paths", nargs=-1, cls=HiddenArguments, type=click.Path())
@click.option("--input", "pattern", metavar="PATTERN", default=None, help="Pattern of the per-epoch files (see above); or give --var.")
@click.option("--output", metavar="OUTPUT.zarr", type=click.Path(), default=None, help="The dynamics store to write.  [required]")
@click.option("--var", "var_patterns", multiple=True, metavar="NAME=PATTERN", help="A recorded variable and its file pattern (repeatable), instead of --input.")
@click.option("--name", default="loss", show_default=True, help="Variable name for --input's files when PATTERN has no {variable} field.")
@click.option("--sample-order", default="unknown", show_default=True, help="Name of the order the samples follow (tfds, torchvision...).")
@click.option("--sample-ids", type=click.Path(), default=None, help="File (.npy/.npz/.txt) with each sample's identity.  [default: its position]")
@click.option("--truth", multiple=True, metavar="NAME=FILE_OR_PATTERN", help="Ground truth over samples, e.g. is_mislabeled=masks/noise_{noise}.npy (repeatable).")
@click.option("--chunk-mb", type=float, default=DEFAULT_CHUNK_MB, show_default=True, help="Target Zarr chunk size in MB (whole epochs per chunk).")
@click.option("--npz-key", default=None, help="Array to read from each .npz file of PATTERN / --var.  [default: the file's only array]")
@overwrite_option
@quiet_option
@dry_run_option
@handle_errors
@remote_options
def ingest_command(
    paths: tuple[str, ...], pattern: str | None, output: str | None, var_patterns: tuple[str, ...], name: str,
    sample_order: str, sample_ids: str | None, truth: tuple[str, ...], chunk_mb: float, npz_key: str | None,
    overwrite: bool, quiet: bool, dry_run: bool, storage_options: StorageOptions,
) -> None:
    """Ingest per-epoch .npy/.npz files into a dynamics store.

    PATTERN names fields that become dims, e.g.
    'losses/loss_{dataset}_run{run}_epoch_{epoch}_noise_{noise}.npy'; {epoch} is
    required, {variable} names the variable. Every file is checked before
    anything is written; OUTPUT.zarr appears only once complete.
    """
    from ..dynamics.ingest import ingest
    from ..io.chunks import validate_option_mb

    chunk_mb = validate_option_mb("--chunk-mb", chunk_mb)
    # The older form, [PATTERN] OUTPUT.zarr as arguments, fills what the options left out.
    slots = [("--output", "output")] if var_patterns else [("--input", "pattern"), ("--output", "output")]
    given = {"pattern": pattern, "output": output}
    free = [flag_name for flag_name in slots if given[flag_name[1]] is None]
    if len(paths) > len(free):
        raise MemoxrInputError(f"arguments: {list(paths)} beyond the paths expected ({' '.join(f for f, _ in slots)})")
    for (_, slot), value in zip(free, paths, strict=False):
        given[slot] = value
    if var_patterns and given["pattern"] is not None:
        raise MemoxrInputError("--input and --var: expected one of them (PATTERN for one variable, --var for several)")
    if given["output"] is None or (not var_patterns and given["pattern"] is None):
        raise MemoxrInputError(
            "arguments: expected PATTERN OUTPUT.zarr, as --input PATTERN --output OUTPUT.zarr "
            "(or --var NAME=PATTERN --output OUTPUT.zarr)"
        )
    variables: str | dict[str, str] = _pairs(var_patterns, "--var") if var_patterns else str(given["pattern"])
    output = given["output"]
    if dry_run:
        from ..dynamics.plan import plan_ingest

        click.echo(str(plan_ingest(
            variables, name=name, sample_order=sample_order, sample_ids=sample_ids, truth=_pairs(truth, "--truth"),
            chunk_mb=chunk_mb, npz_key=npz_key, storage_options=storage_options,
        )))
        return
    path = ingest(
        variables, output, name=name, sample_order=sample_order, sample_ids=sample_ids,
        truth=_pairs(truth, "--truth"), chunk_mb=chunk_mb, overwrite=overwrite,
        storage_options=storage_options, npz_key=npz_key,
    )
    click.echo(f"wrote {path}")


@click.command("evaluate")
@positional_paths([("--input", "store", True)])
@click.option("--input", "store", metavar="DYNAMICS.zarr", type=click.Path(), default=None, help="The dynamics store (or its proxies) to evaluate.  [required]")
@click.option("--proxy", "proxies", multiple=True, help="Proxy to evaluate (repeatable).  [default: all the store allows]")
@click.option("--mask", default=None, help="Boolean ground-truth variable of the store, e.g. is_mislabeled.")
@click.option("--influence", type=click.Path(), default=None, help="Influence store (or FZ .npz) whose tr_mem to correlate with.")
@click.option("--mapping", type=click.Path(), default=None, help="Permutation file from the dynamics' sample order to the other's.")
@click.option("--top-k", type=click.IntRange(min=1), default=5000, show_default=True, help="Most-memorized samples for the top-k correlations.")
@click.option("--precision-at", "k", cls=AliasedOption, aliases=["--k"], type=click.IntRange(min=1), default=None, help="Cut-off of precision at k.  [default: number of positives]")
@click.option("--across", default=None, help="Run dim to compare proxies across (e.g. architecture).")
@click.option("--compare", "compare", type=click.Path(), default=None, help="Second dynamics store to compare proxies with.")
@click.option("--table", "metric", default=None, help="Print a pivot of this metric (rows proxies), e.g. auroc.")
@click.option("--columns", default=None, help="Column dim of --table.  [default: the first run dim]")
@skipna_option
@click.option("--output", "csv_path", cls=AliasedOption, aliases=["--csv"], type=click.Path(dir_okay=False), default=None, help="Also write the tidy result to this CSV.")
@overwrite_flag("Replace the --output file if it exists.")
@quiet_option
@handle_errors
@remote_options
def evaluate_command(
    store: str, proxies: tuple[str, ...], mask: str | None, influence: str | None, mapping: str | None, top_k: int,
    k: int | None, across: str | None, compare: str | None, metric: str | None, columns: str | None,
    skipna: bool | None, csv_path: str | None, overwrite: bool, quiet: bool, storage_options: StorageOptions,
) -> None:
    """Evaluate memorization proxies: mislabel/duplicate detection, agreement with FZ memorization, across runs."""
    from ..dynamics.evaluate import table
    from ..dynamics.report import evaluate_store
    from ..io.location import Location, locate

    result = evaluate_store(  # each path its own Location, resolved once with --storage-options
        Location.of(store, storage_options), proxies=list(proxies) or None, mask=mask,
        influence=locate(influence, storage_options), mapping=locate(mapping, storage_options), top_k=top_k, k=k, across=across,
        compare=locate(compare, storage_options), skipna=skipna, output=locate(csv_path, storage_options),
        overwrite=overwrite,
    )
    if metric is not None:
        click.echo(table(result, metric=metric, columns=columns).to_string(float_format=lambda v: f"{v:.4f}"))
    else:
        click.echo(result.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if csv_path is not None:
        click.echo(f"wrote {csv_path}")


@click.command("dynamics-demo")
@click.option("--output", type=click.Path(), default=None, help="Keep the recorded store here (resumed if it exists).")
@click.option("--sample", "use_sample", is_flag=True, help="Evaluate the recording that ships with memoxr; no training.")
@overwrite_option
@quiet_option
@handle_errors
def dynamics_demo_command(output: str | None, use_sample: bool, overwrite: bool, quiet: bool) -> None:
    """Train an MLP on digits with 1-10% label noise, record its dynamics, print the AUROC table."""
    from ..dynamics.demo import EPOCHS, run

    result = run(output=output, use_sample=use_sample, overwrite=overwrite, show_progress=not quiet)
    click.echo(f"Mislabel detection AUROC (%) on digits, MLP, {EPOCHS} epochs")
    click.echo(result.to_string(float_format=lambda v: f"{v:.1f}"))
