"""The four stages of the reproduction, each ending in one Zarr store in OUT_DIR, complete or absent.

===============  ======================================================================
stage store      what it holds
===============  ======================================================================
``fz.zarr``      FZ memorization ``(arch, sample)`` of every train sample, its standard
                 error, split-half reliability and the cost (from ``fz/<arch>.zarr``,
                 the estimator's influence stores, and ``fz/<arch>_trials.zarr``)
``dynamics.zarr``  every proxy ``(arch, seed, sample)`` of full-data runs (recording:
                 ``recordings/dynamics.zarr``) and each run's wall time
``mislabel.zarr``  every proxy ``(seed, noise, sample)`` and ``is_mislabeled``, from the
                 dynamics demo's recipe (:func:`memoxr.dynamics.demo.record`)
``duplicates.zarr``  every proxy ``(arch, source, kind, seed, sample)`` of runs on the train
                 split plus planted exact / near copies of random / atypical samples,
                 ``is_duplicate`` and ``in_pool`` ``(source, sample)``
===============  ======================================================================

A stage whose store opens is reused as is. Inside a stage the work is resumable
too: an architecture's FZ trials and estimate are kept once done, and the
recordings (:class:`memoxr.DynamicsWriter`) keep every finished epoch, so a
rerun only retrains runs that were interrupted.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..errors import IncompleteStoreError, MemoxrInputError
from ..io.storage import atomic_output, open_dataset, write_dataset
from . import training
from .settings import Settings

if TYPE_CHECKING:
    from ..dynamics import DynamicsWriter

Echo = Callable[[str], None]
STAGES = ("fz", "dynamics", "mislabel", "duplicates")
DUPLICATE_KINDS = ("exact", "near")
DUPLICATE_SOURCES = ("random", "atypical")


@contextmanager
def _quiet_zarr() -> Iterator[None]:
    # Run dims with string labels (architecture names) use zarr's fixed-length UTF-32 dtype,
    # which has no Zarr v3 specification yet; memoxr reads it back fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*[Cc]onsolidated.*")
        yield


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _json_unit(path: Path, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` unless its record ``path`` exists; the record is written last, so it means done."""
    if path.is_file():
        return _read_json(path)
    result = work()
    _write_json(path, result)
    return result


def open_stage(out: Path, name: str) -> xr.Dataset | None:
    """The stage's store if it is complete, else None.

    Examples
    --------
    >>> import tempfile
    >>> open_stage(Path(tempfile.mkdtemp()), "fz") is None  # never written
    True
    """
    path = out / f"{name}.zarr"
    if not path.exists():
        return None
    try:
        with _quiet_zarr():
            from ..compute.progress import compute

            return compute(open_dataset(path))[0]
    except (IncompleteStoreError, MemoxrInputError):
        return None


def run_stage(out: Path, name: str, build: Callable[[], xr.Dataset], echo: Echo) -> xr.Dataset:
    """Reuse a complete stage store, or build and write it (complete or absent).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> ds = run_stage(out, "demo", lambda: xr.Dataset({"x": ("i", [1.0, 2.0])}), print)  # doctest: +ELLIPSIS
    [demo] running
    [demo] done in ... s
    >>> ds = run_stage(out, "demo", lambda: 1 / 0, print)  # doctest: +ELLIPSIS
    [demo] complete in .../demo.zarr: reused
    >>> ds["x"].values.tolist(), ds.attrs["stage"]
    ([1.0, 2.0], 'demo')
    """
    done = open_stage(out, name)
    if done is not None:
        echo(f"[{name}] complete in {out / (name + '.zarr')}: reused")
        return done
    start = time.perf_counter()
    echo(f"[{name}] running")
    ds = build()
    ds.attrs.update(stage=name, stage_seconds=time.perf_counter() - start)
    with _quiet_zarr():
        write_dataset(ds, out / f"{name}.zarr", overwrite=True)
    echo(f"[{name}] done in {time.perf_counter() - start:.1f} s")
    return open_stage(out, name)  # type: ignore[return-value]


# --------------------------------------------------------------------------- FZ


def _split_half(records: xr.Dataset) -> float:
    """Pearson correlation of the memorization estimated from the first and the second half of the trials."""
    from ..estimate import estimate

    half = records.sizes["trial"] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a sample missing from a half's subsets: NaN, left out below
        a = estimate(records.isel(trial=slice(0, half)))["tr_mem"].values
        b = estimate(records.isel(trial=slice(half, 2 * half)))["tr_mem"].values
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def build_fz(out: Path, settings: Settings, split: training.Split, echo: Echo) -> xr.Dataset:
    from ..estimate import estimate_to_zarr, open_trials, write_trials
    from ..influence.sources import open_influence

    folder = out / "fz"
    folder.mkdir(exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    for arch in settings.architectures:
        trials_path, store_path = folder / f"{arch}_trials.zarr", folder / f"{arch}.zarr"

        def train_trials(arch: str = arch, trials_path: Path = trials_path) -> dict[str, Any]:
            echo(f"[fz] {arch}: training {settings.trials} models on random 70% subsets")
            records, seconds = training.fz_trials(
                split, arch, n_trials=settings.trials, epochs=settings.epochs, seed=settings.seed,
                progress=lambda msg: echo(f"[fz] {arch}: {msg}"),
            )
            write_trials(records, trials_path, overwrite=True)
            return {"train_seconds": seconds, "models": settings.trials}

        def run_estimate(trials_path: Path = trials_path, store_path: Path = store_path) -> dict[str, Any]:
            start = time.perf_counter()
            estimate_to_zarr(trials_path, store_path, overwrite=True, sample_order=split.sample_order)
            return {"estimate_seconds": time.perf_counter() - start}

        rows[arch] = {**_json_unit(folder / f"{arch}_trials.json", train_trials),
                      **_json_unit(folder / f"{arch}_estimate.json", run_estimate)}
        echo(f"[fz] {arch}: {rows[arch]['models']} models in {rows[arch]['train_seconds']:.1f} s, "
             f"estimate {rows[arch]['estimate_seconds']:.1f} s")

    archs = list(settings.architectures)
    mem, se, n_in, half, accuracy = [], [], [], [], []
    for arch in archs:
        influence = open_influence(folder / f"{arch}.zarr")
        from ..compute.progress import compute

        (records,) = compute(open_trials(folder / f"{arch}_trials.zarr"))
        mem.append(influence["tr_mem"].values.astype(np.float64))
        se.append(influence["tr_mem_se"].values.astype(np.float64))  # the estimator's error bar
        n_in.append(influence["n_in"].values)
        half.append(_split_half(records))
        accuracy.append(float(records["test_correct"].values.mean()))
    half_arr = np.array(half)
    two = ("arch", "sample")
    return xr.Dataset(
        {
            "memorization": (two, np.stack(mem)),
            "memorization_se": (two, np.stack(se)),
            "n_in": (two, np.stack(n_in)),
            "label": ("sample", split.y_train),
            "split_half_pearson": ("arch", half_arr),
            # Spearman-Brown: the reliability of the whole estimate from that of its halves.
            "reliability": ("arch", 2 * half_arr / (1 + half_arr)),
            "trial_test_accuracy": ("arch", np.array(accuracy)),
            "train_seconds": ("arch", np.array([rows[a]["train_seconds"] for a in archs])),
            "estimate_seconds": ("arch", np.array([rows[a]["estimate_seconds"] for a in archs])),
            "models": ("arch", np.array([rows[a]["models"] for a in archs])),
        },
        coords={"arch": archs, "sample": np.arange(split.y_train.size)},
        attrs={"sample_order": split.sample_order, "epochs": settings.epochs},
    )


# --------------------------------------------------------------------------- dynamics


def _recorded_proxies(path: Path) -> xr.Dataset:
    from ..dynamics import compute_proxies, open_dynamics

    with _quiet_zarr():
        # The reproduction's tables name a training sample "sample" (its CSV column).
        from ..compute.progress import compute

        return compute(compute_proxies(open_dynamics(path)))[0].rename(train_id="sample")


def _record(path: Path, runs: dict[str, list], samples: int, epochs: int, truth: dict, order: str,
            train_run: Callable[[Any, dict], float], echo: Echo, stage: str) -> dict[str, float]:
    """Record every run of ``runs`` into one resumable store; seconds per run (``"a|b|c"`` keys)."""
    import itertools

    from ..dynamics import DynamicsWriter
    from ..dynamics.demo import RECORDED

    seconds_path = path.with_suffix(".seconds.json")
    seconds = _read_json(seconds_path)
    with _quiet_zarr():
        writer = DynamicsWriter(path, samples=samples, epochs=epochs, variables=RECORDED, runs=runs,
                                truth=truth, sample_order=order)
        for values in itertools.product(*runs.values()):
            run = dict(zip(runs, values, strict=True))
            key = "|".join(map(str, values))
            if not writer.pending_epochs(run=run) and key in seconds:
                continue
            seconds[key] = train_run(writer, run)
            echo(f"[{stage}] {key}: {epochs} epochs in {seconds[key]:.2f} s")
            _write_json(seconds_path, seconds)
    return seconds


def build_dynamics(out: Path, settings: Settings, split: training.Split, echo: Echo) -> xr.Dataset:
    path = out / "recordings" / "dynamics.zarr"
    path.parent.mkdir(exist_ok=True)
    runs: dict[str, list[Any]] = {"arch": list(settings.architectures), "seed": list(settings.seed_values)}

    def train_run(writer: DynamicsWriter, run: dict) -> float:
        return training.record_run(writer, run, run["arch"], split.x_train, split.y_train, epochs=settings.epochs,
                                   seed=run["seed"], n_classes=split.n_classes)

    seconds = _record(path, runs, split.y_train.size, settings.epochs, {}, split.sample_order, train_run, echo,
                      "dynamics")
    ds = _recorded_proxies(path)
    ds["run_seconds"] = (("arch", "seed"), np.array(
        [[seconds.get(f"{a}|{s}", np.nan) for s in runs["seed"]] for a in runs["arch"]]))
    ds["label"] = ("sample", split.y_train)
    ds.attrs.update(sample_order=split.sample_order, epochs=settings.epochs)
    return ds


# --------------------------------------------------------------------------- mislabel


def build_mislabel(out: Path, settings: Settings, echo: Echo) -> xr.Dataset:
    """The dynamics demo's recording (MLP 256 on all 1797 digits), once per seed."""
    from threadpoolctl import threadpool_limits

    from ..dynamics.demo import record

    parts = []
    for seed in settings.seed_values:
        path = out / "recordings" / f"mislabel_seed{seed}.zarr"
        path.parent.mkdir(exist_ok=True)
        start = time.perf_counter()
        with _quiet_zarr(), threadpool_limits(1):  # small models: one BLAS thread is faster
            record(path, noise_levels=settings.noise_levels, epochs=settings.mislabel_epochs, seed=seed)
        echo(f"[mislabel] seed {seed}: noise {', '.join(f'{r:.0%}' for r in settings.noise_levels)} "
             f"recorded in {time.perf_counter() - start:.1f} s")
        parts.append(_recorded_proxies(path))
    ds = xr.concat(parts, dim=xr.DataArray(list(settings.seed_values), dims="seed", name="seed"))
    ds.attrs.update(sample_order=parts[0].attrs.get("sample_order", ""), epochs=settings.mislabel_epochs)
    return ds


# --------------------------------------------------------------------------- duplicates


def build_duplicates(out: Path, settings: Settings, split: training.Split, fz: xr.Dataset, echo: Echo) -> xr.Dataset:
    """Runs on the train split plus planted copies of ``random`` samples, or of ``atypical`` ones.

    ``atypical`` sources are drawn among the ``2 * count`` samples with the highest
    FZ memorization (mean over architectures): that pool (``in_pool``) lets Table 3
    ask whether duplication lowers memorization among samples that had some.
    """
    n = split.y_train.size
    count = max(1, round(settings.duplicate_fraction * n))
    mean_mem = np.nan_to_num(fz["memorization"].mean("arch").values, nan=-np.inf)
    top = np.argsort(-mean_mem, kind="stable")[: 2 * count]
    pools = {"random": np.arange(n), "atypical": np.sort(top)}
    planted = {
        source: training.plant_duplicates(split, count=count, candidates=pool, near_std=settings.near_std,
                                          seed=settings.seed)
        for source, pool in pools.items()
    }
    runs: dict[str, list[Any]] = {"arch": list(settings.architectures), "source": list(DUPLICATE_SOURCES), "kind": list(DUPLICATE_KINDS),
            "seed": list(settings.seed_values)}
    masks = np.stack([planted[source][2] for source in DUPLICATE_SOURCES])  # (source, sample)
    shape = tuple(len(v) for v in runs.values())
    truth = {"is_duplicate": np.broadcast_to(masks[None, :, None, None, :], (*shape, n + count)).copy()}
    path = out / "recordings" / "duplicates.zarr"
    path.parent.mkdir(exist_ok=True)
    order = f"{split.sample_order} + {count} planted copies"

    def train_run(writer: DynamicsWriter, run: dict) -> float:
        sources, inputs, _ = planted[run["source"]]
        labels = np.concatenate([split.y_train, split.y_train[sources]])
        return training.record_run(writer, run, run["arch"], inputs[run["kind"]], labels, epochs=settings.epochs,
                                   seed=run["seed"], n_classes=split.n_classes)

    _record(path, runs, n + count, settings.epochs, truth, order, train_run, echo, "duplicates")
    ds = _recorded_proxies(path)
    ds["is_duplicate"] = (("source", "sample"), masks)  # the same for every arch, kind and seed
    duplicate_of = np.full((len(DUPLICATE_SOURCES), n + count), -1, dtype=np.int64)
    in_pool = np.zeros((len(DUPLICATE_SOURCES), n + count), dtype=bool)
    for i, source in enumerate(DUPLICATE_SOURCES):
        duplicate_of[i, n:] = planted[source][0]
        in_pool[i, pools[source]] = True
        in_pool[i, n:] = True
    ds["duplicate_of"] = (("source", "sample"), duplicate_of)
    ds["in_pool"] = (("source", "sample"), in_pool)
    ds.attrs.update(sample_order=order, epochs=settings.epochs, near_std=settings.near_std)
    return ds
