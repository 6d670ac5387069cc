"""Mislabel detection on scikit-learn's digits: CSL against the baselines.

Trains a small MLP (scikit-learn's ``MLPClassifier``, one ``partial_fit`` pass
per epoch, fixed seeds) on the 1797 digits with 1, 2, 5 and 10% symmetric label
noise (a flipped label is drawn uniformly among the other classes). After every
epoch the per-sample loss, correctness and true-class probability of the
(noisy) training labels, and the norm of the loss gradient with respect to the
logits (``||softmax - onehot||``), are recorded with :class:`DynamicsWriter`.
It then prints the mislabel-detection AUROC of every proxy, rows methods and
columns noise levels, in the form of Table 2 of Ravikumar et al. (ICML 2025).

Run ``python -m memoxr.dynamics.demo`` (or ``memoxr dynamics-demo``);
``--sample`` evaluates the recording that ships with memoxr instead of training.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..io.schema import SCHEMA_VERSION
from ..io.storage import write_dataset
from .evaluate import evaluate, table
from .schema import DYNAMICS_SCHEMA, EPOCH, SAMPLE, label_variables, open_dynamics
from .writer import DynamicsWriter

NOISE_LEVELS = (0.01, 0.02, 0.05, 0.10)
EPOCHS = 40
SEED = 0
SAMPLE_NAME = "dynamics_digits.npz"
RECORDED = {"loss": "float32", "correct": "bool", "true_prob": "float32", "grad_norm": "float32"}


def flip_labels(y: np.ndarray, rate: float, *, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric noise: ``round(rate * n)`` labels, chosen at random, moved to another class uniformly.

    Examples
    --------
    >>> y = np.arange(10) % 3
    >>> noisy, mask = flip_labels(y, 0.2, n_classes=3, seed=0)
    >>> int(mask.sum()), bool((noisy[mask] != y[mask]).all()), bool((noisy[~mask] == y[~mask]).all())
    (2, True, True)
    """
    rng = np.random.default_rng(seed)
    flipped = rng.choice(y.size, size=round(rate * y.size), replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, size=flipped.size)) % n_classes
    mask = np.zeros(y.size, dtype=bool)
    mask[flipped] = True
    return noisy, mask


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float64), y.astype(np.int64)


def record(
    path: str | Path, *, noise_levels: tuple[float, ...] | None = None, epochs: int | None = None,
    seed: int = SEED, overwrite: bool = False, show_progress: bool = False,
) -> Path:
    """Train one model per noise level and record its dynamics into the store at ``path``.

    Resumable: rerunning on an existing store retrains only the noise levels
    with epochs still pending (a model's state is not saved, so such a run is
    retrained from its first epoch and its epochs rewritten). ``show_progress``
    draws a bar of epochs per noise level on stderr. Defaults: :data:`NOISE_LEVELS`, :data:`EPOCHS`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> store = record(pathlib.Path(tempfile.mkdtemp()) / "d.zarr", noise_levels=(0.1,), epochs=2)
    >>> dict(open_dynamics(store)["loss"].sizes)
    {'noise': 1, 'epoch': 2, 'train_id': 1797}
    """
    import click
    from sklearn.neural_network import MLPClassifier

    noise_levels = NOISE_LEVELS if noise_levels is None else noise_levels
    epochs = EPOCHS if epochs is None else epochs
    x, y = _digits()
    classes = np.unique(y)
    noisy = {}
    masks = []
    for k, rate in enumerate(noise_levels):
        noisy[rate], mask = flip_labels(y, rate, n_classes=classes.size, seed=seed + k)
        masks.append(mask)
    writer = DynamicsWriter(
        path, samples=y.size, epochs=epochs, variables=RECORDED, runs={"noise": list(noise_levels)},
        truth={"is_mislabeled": np.stack(masks)}, sample_order="sklearn-digits", overwrite=overwrite,
    )
    rows = np.arange(y.size)
    for rate in noise_levels:
        run = {"noise": rate}
        if not writer.pending_epochs(run=run):
            if show_progress:
                click.echo(f"noise {rate:.0%}: already recorded", err=True)
            continue
        labels = noisy[rate]
        onehot = np.eye(classes.size)[labels]
        model = MLPClassifier(
            hidden_layer_sizes=(256,), learning_rate_init=1e-2, alpha=0.0, batch_size=64, random_state=seed
        )
        bar = click.progressbar(
            range(epochs), label=f"noise {rate:.0%}", show_pos=True, file=sys.stderr,
            hidden=not show_progress,
        )
        with bar:
            for epoch in bar:
                _train_epoch(model, writer, epoch, run, x, labels, classes, onehot, rows)
        if show_progress and not sys.stderr.isatty():  # no live bar there: one line per noise level
            click.echo(f"noise {rate:.0%}: {epochs} epochs recorded", err=True)
    return Path(path)


def _train_epoch(model: Any, writer: DynamicsWriter, epoch: int, run: dict[str, float], x: np.ndarray,
                 labels: np.ndarray, classes: np.ndarray, onehot: np.ndarray, rows: np.ndarray) -> None:
    """One pass of ``partial_fit``, then the per-sample records of the epoch."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.partial_fit(x, labels, classes=classes)
    prob = model.predict_proba(x)
    p_true = prob[rows, labels]
    writer.write_epoch(
        epoch, run=run,
        loss=-np.log(np.clip(p_true, 1e-12, None)),
        correct=prob.argmax(axis=1) == labels,
        true_prob=p_true,
        grad_norm=np.linalg.norm(prob - onehot, axis=1),
    )


def export_sample(store: str | Path, output: str | Path) -> Path:
    """Save a recorded store's arrays as a compressed npz (how the shipped sample is made).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> npz = export_sample(write_sample(folder / "d.zarr"), folder / "d.npz")
    >>> sorted(np.load(npz).files)  # the identities keep the file's older key, sample
    ['correct', 'epoch', 'grad_norm', 'is_mislabeled', 'loss', 'noise', 'sample', 'true_prob']
    """
    from ..compute.progress import compute

    (ds,) = compute(open_dynamics(store))
    # loss stays float32 (the CSL sums it); the other floats are stored as float16 to keep
    # the shipped file small, and read back as float32.
    arrays = {name: ds[name].values for name in (*RECORDED, "is_mislabeled")}
    for name in ("true_prob", "grad_norm"):
        arrays[name] = arrays[name].astype(np.float16)
    arrays.update(noise=ds["noise"].values, epoch=ds[EPOCH].values, sample=ds[SAMPLE].values)
    np.savez_compressed(output, **arrays)
    return Path(output)


def sample_dataset() -> xr.Dataset:
    """The digits recording that ships with memoxr, as an in-memory dynamics dataset.

    Dims ``(noise, epoch, train_id)`` = ``(4, 40, 1797)``; variables ``loss``,
    ``correct``, ``true_prob``, ``grad_norm`` and ``is_mislabeled(noise, train_id)``.

    Examples
    --------
    >>> dict(sample_dataset()["loss"].sizes)
    {'noise': 4, 'epoch': 40, 'train_id': 1797}
    """
    with resources.files("memoxr.data").joinpath(SAMPLE_NAME).open("rb") as f, np.load(f) as z:
        arrays = {k: z[k].astype(np.float32) if z[k].dtype == np.float16 else z[k] for k in z.files}
    run3 = ("noise", EPOCH, SAMPLE)
    return label_variables(xr.Dataset(
        {**{k: (run3, arrays[k]) for k in RECORDED}, "is_mislabeled": (("noise", SAMPLE), arrays["is_mislabeled"])},
        coords={"noise": arrays["noise"], EPOCH: arrays["epoch"], SAMPLE: arrays["sample"]},  # the file's key is older
        attrs={"schema": DYNAMICS_SCHEMA, "schema_version": SCHEMA_VERSION, "sample_order": "sklearn-digits"},
    ))


def write_sample(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the shipped digits recording as a dynamics store at ``path``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> store = write_sample(pathlib.Path(tempfile.mkdtemp()) / "digits.zarr")
    >>> open_dynamics(store)["is_mislabeled"].sum("train_id").values.tolist()
    [18, 36, 90, 180]
    """
    return Path(write_dataset(sample_dataset(), path, overwrite=overwrite))


def auroc_table(ds: xr.Dataset) -> pd.DataFrame:
    """Mislabel-detection AUROC (in %) of every proxy, rows methods, columns noise levels.

    Examples
    --------
    >>> auroc_table(sample_dataset().isel(epoch=slice(0, 5))).shape
    (10, 4)
    """
    out = table(evaluate(ds, mask="is_mislabeled"), metric="auroc", columns="noise") * 100
    out.columns = [f"{c:.0%}" for c in out.columns]
    out.columns.name = "noise"
    return out


def run(
    *, output: str | Path | None = None, use_sample: bool = False, overwrite: bool = False, show_progress: bool = False,
) -> pd.DataFrame:
    """Record (or load the shipped recording) and return the AUROC table.

    Examples
    --------
    >>> run(use_sample=True).loc[["csl", "confidence"]].round(1)
    noise         1%    2%    5%   10%
    proxy
    csl         99.6  99.9  99.7  99.7
    confidence  99.3  99.7  99.5  99.4
    """
    if use_sample:
        return auroc_table(sample_dataset())
    if output is not None:
        store = record(Path(output), overwrite=overwrite, show_progress=show_progress)
        return auroc_table(open_dynamics(store))
    with tempfile.TemporaryDirectory() as tmp:
        store = record(Path(tmp) / "digits_dynamics.zarr", show_progress=show_progress)
        from ..compute.progress import compute

        return auroc_table(compute(open_dynamics(store))[0])


def main(argv: list[str] | None = None) -> None:
    """``python -m memoxr.dynamics.demo``: train (or ``--sample``) and print the AUROC table.

    Examples
    --------
    >>> main(["--sample", "-q"])  # doctest: +ELLIPSIS
    Mislabel detection AUROC (%) on digits, MLP, 40 epochs
    noise                      1%    2%    5%   10%
    proxy
    csl                      99.6  99.9  99.7  99.7
    ...
    """
    parser = argparse.ArgumentParser(prog="python -m memoxr.dynamics.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="keep the recorded store here (resumed if it exists)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output instead of resuming it")
    parser.add_argument("--sample", action="store_true", help="evaluate the shipped recording, no training")
    parser.add_argument("--export-sample", metavar="NPZ", help="also save the recording as an npz (with --output)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")
    args = parser.parse_args(argv)
    result = run(output=args.output, use_sample=args.sample, overwrite=args.overwrite, show_progress=not args.quiet)
    if args.export_sample and args.output:
        export_sample(args.output, args.export_sample)
    print("Mislabel detection AUROC (%) on digits, MLP, 40 epochs")
    print(result.to_string(float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
