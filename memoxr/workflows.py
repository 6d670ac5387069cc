"""What the CLI commands do, as plain functions: open, compute once, write, report."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .compute.progress import compute, deprecated_show_progress
from .errors import MemoxrInputError, OutputExistsError
from .influence.analysis import Analysis, stats_and_analysis
from .influence.scores import influence_scores
from .influence.seed_npz import SEED_KEYS, read_seed_npz, write_seed_npz
from .influence.sources import open_influence, sample_path
from .influence.stats import class_stats, merge_stats_csv
from .io.location import (
    Location,
    PathLike,
    StorageOptions,
    check_store_name,
    overlap,
    refuse_overlapping,
)
from .io.npz import read_npz_headers
from .io.schema import (
    CLASS,
    COMPLETE_ATTR,
    INFLUENCE_SCHEMA,
    SCORES_COORDS,
    SCORES_SCHEMA,
    check_influence_dataset,
    check_scores_dataset,
    label_variables,
    promote_coords,
    store_kind,
)
from .io.storage import atomic_output, check_writable, open_dataset, remove_output, write_dataset


@dataclass
class Result:
    """Scores in memory, the per-class table, the analysis and the files written.

    Examples
    --------
    >>> import memoxr
    >>> result = calculate(memoxr.sample_path())
    >>> sorted(result.scores.sizes.items()), result.stats.shape
    ([('class', 10), ('train_sample', 137)], (10, 27))
    """

    scores: xr.Dataset
    stats: pd.DataFrame
    analysis: Analysis
    written: list[str] = field(default_factory=list)


def _check_class(ds: xr.Dataset, class_label: int | None) -> None:
    if class_label is None:
        return
    labels = ds[CLASS].values.tolist()
    if class_label not in labels:
        raise MemoxrInputError(f"--analyze-class must be one of the classes {_label_span(labels)}; received {class_label}")


def _label_span(labels: list[int]) -> str:
    """Class labels for a message: a range when they run without gaps, else the labels themselves.

    >>> _label_span([0, 1, 2]), _label_span([0, 2]), _label_span(list(range(0, 40, 2)))
    ('0..2 (3 classes)', '[0, 2] (2 classes)', '[0, 2, 4, 6, 8, ..., 38] (20 classes)')
    """
    if labels and labels == list(range(labels[0], labels[0] + len(labels))):
        return f"{labels[0]}..{labels[-1]} ({len(labels)} classes)"
    shown = ", ".join(map(str, labels)) if len(labels) <= 10 else ", ".join(map(str, labels[:5])) + f", ..., {labels[-1]}"
    return f"[{shown}] ({len(labels)} classes)"


def save_scores(
    scores: xr.Dataset, path: PathLike | Location, *, overwrite: bool = False, storage_options: StorageOptions = None
) -> str:
    """Save scores as a Zarr store, or as the seed's npz layout when ``path`` ends in ``.npz``.

    In the store, ``training_indices`` and ``train_count`` stay data variables,
    as in every scores store memoxr has written (:func:`load_scores` makes them
    coordinates again).

    Examples
    --------
    >>> import tempfile, memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> path = save_scores(scores, f"{tempfile.mkdtemp()}/scores.zarr")
    >>> sorted(xr.open_zarr(path).coords)
    ['class']
    >>> sorted(load_scores(path).coords)
    ['class', 'train_count', 'training_indices']
    """
    location = Location.of(path, storage_options)
    if location.path.endswith(".npz"):
        return str(write_seed_npz(scores, location, overwrite=overwrite))
    stored = scores.reset_coords([name for name in SCORES_COORDS if name in scores.coords])
    # Never carry a loaded store's completion marker into a write: it is set last, by the writer.
    stored.attrs = {k: v for k, v in stored.attrs.items() if k != COMPLETE_ATTR}
    return write_dataset(stored, location, overwrite=overwrite)


def load_scores(
    path: PathLike | Location, *, allow_pickle: bool = False, storage_options: StorageOptions = None,
    skipna: bool | None = None,
) -> xr.Dataset:
    """Scores from a scores store, a seed-layout npz, or computed from an influence store or FZ npz.

    ``training_indices`` and ``train_count`` are coordinates in the result,
    whichever form the store holds. ``skipna`` goes to :func:`memoxr.influence_scores`
    when the scores are computed here.

    Examples
    --------
    >>> import memoxr
    >>> load_scores(memoxr.sample_path())["critical_sample_score"].dims
    ('class', 'train_sample')
    """
    location = Location.of(path, storage_options)
    source = location.path
    if source.endswith(".npz"):
        keys = set(read_npz_headers(location))
        if set(SEED_KEYS) <= keys:
            return read_seed_npz(location, allow_pickle=allow_pickle)
        return influence_scores(open_influence(location, allow_pickle=allow_pickle), skipna=skipna)
    ds = open_dataset(location)
    schema = ds.attrs.get("schema")
    if schema == SCORES_SCHEMA:
        return label_variables(promote_coords(check_scores_dataset(ds, source=source), SCORES_COORDS))
    if schema == INFLUENCE_SCHEMA:
        return influence_scores(check_influence_dataset(ds, source=source), skipna=skipna)
    raise MemoxrInputError(
        f"{source!r}: attribute 'schema' is {schema!r}{store_kind(schema)}; expected {SCORES_SCHEMA!r} or "
        f"{INFLUENCE_SCHEMA!r}"
    )


def calculate(
    source: PathLike | Location,
    *,
    output: PathLike | Location | None = None,
    stats_csv: PathLike | Location | None = None,
    alpha: float = 0.7,
    beta: float = 0.3,
    class_label: int | None = None,
    k: int = 10,
    overwrite: bool = False,
    allow_pickle: bool = False,
    skipna: bool | None = None,
    storage_options: StorageOptions = None,
    show_progress: bool | None = None,
) -> Result:
    """Scores, table and analysis of an influence store or FZ npz; one pass over the influence.

    ``skipna`` goes to the scores, the table and every analysis (the rule:
    :mod:`memoxr.compute.manners`); ``memoxr calculate --skipna/--no-skipna`` sets it.

    Examples
    --------
    >>> import memoxr
    >>> result = calculate(memoxr.sample_path(), class_label=2, k=3)
    >>> result.stats.shape, result.analysis.class_label, result.written
    ((10, 27), 2, [])
    """
    with deprecated_show_progress(show_progress, "calculate"):
        if output is not None and stats_csv is not None and str(output) == str(stats_csv):
            raise MemoxrInputError(f"--output and --stats-csv are the same path {str(output)!r}; expected two outputs")
        # Replacing an output that is, holds or lies in the input or the other output destroys it.
        refuse_overlapping({"--input": source}, {"--output": output, "--stats-csv": stats_csv})
        if output is not None and not str(output).endswith(".npz"):
            check_store_name(output, also=", or .npz for the seed's layout; the per-class table goes to --stats-csv")
        # Each path its own Location, resolved here once.
        scores_out = None if output is None else Location.of(output, storage_options)
        stats_out = None if stats_csv is None else Location.of(stats_csv, storage_options)
        outputs = [(scores_out, "file" if str(output).endswith(".npz") else "folder"), (stats_out, "file")]
        existing = []
        for target, kind in outputs:  # every output usable before any work; every existing one named at once
            if target is not None:
                try:
                    check_writable(target, overwrite=overwrite, kind=kind)
                except OutputExistsError as exc:
                    existing.append(exc.path)
        if existing:
            raise OutputExistsError(*existing)
        ds = open_influence(Location.of(source, storage_options), allow_pickle=allow_pickle)
        _check_class(ds, class_label)
        (scores,) = compute(influence_scores(ds, alpha=alpha, beta=beta, skipna=skipna))
        stats, analysis = stats_and_analysis(scores, class_label=class_label, k=k, skipna=skipna)
        result = Result(scores, stats, analysis)
        # All or none: the CSV waits in its partial until the scores are written; if it
        # then fails to land, the scores this run wrote are removed again.
        wrote_scores = False
        try:
            with contextlib.ExitStack() as stack:
                if stats_out is not None:
                    tmp = stack.enter_context(atomic_output(stats_out, overwrite=overwrite))
                    stats.to_csv(tmp, index=False)
                if scores_out is not None:
                    result.written.append(save_scores(scores, scores_out, overwrite=overwrite))
                    wrote_scores = True
        except BaseException:
            if wrote_scores and scores_out is not None:
                remove_output(scores_out)
            raise
        if stats_csv is not None:
            result.written.append(str(stats_csv))
        return result


def update_csv(
    influence_file: PathLike | Location,
    csv_file: PathLike | Location,
    *,
    output: PathLike | Location | None = None,
    overwrite: bool = False,
    allow_pickle: bool = False,
    storage_options: StorageOptions = None,
    skipna: bool | None = None,
    show_progress: bool | None = None,
) -> str:
    """Merge the score statistics of ``influence_file`` into ``csv_file`` (see :func:`merge_stats_csv`).

    Without ``output`` (or with ``output`` naming ``csv_file`` itself) ``csv_file``
    is updated in place, as the command is named: no ``overwrite`` needed. The
    new table is written beside it and renamed over it, so an interrupted run
    leaves the old file as it was. Any other existing ``output`` needs ``overwrite``.
    ``skipna`` goes to the scores (when computed here) and the table (``--skipna/--no-skipna``).

    Examples
    --------
    >>> import tempfile, memoxr
    >>> csv = f"{tempfile.mkdtemp()}/stats.csv"
    >>> pd.DataFrame({"class_label": range(10)}).to_csv(csv, index=False)
    >>> update_csv(memoxr.sample_path(), csv) == csv, pd.read_csv(csv).shape
    (True, (10, 21))
    """
    csv_in = Location.of(csv_file, storage_options)
    csv_out = csv_in if output is None else Location.of(output, storage_options)
    in_place = output is None or overlap(csv_out, csv_in) == "same"
    overwrite = overwrite or in_place
    check_writable(csv_out, overwrite=overwrite)
    with deprecated_show_progress(show_progress, "update_csv"):
        scores = load_scores(Location.of(influence_file, storage_options), allow_pickle=allow_pickle, skipna=skipna)
        table = class_stats(scores, skipna=skipna)
        return merge_stats_csv(table, csv_in, csv_out, overwrite=overwrite)


def demo(output_dir: str | os.PathLike[str], *, overwrite: bool = False, show_progress: bool | None = None) -> Result:
    """The whole pipeline on the shipped sample, written to ``output_dir``.

    Writes ``influence.zarr`` (the converted store), ``scores.zarr``,
    ``influence_aware_memo.npz`` (seed layout), ``per_class_memorization_stats.csv``
    and ``analysis.txt``. The folder appears only when everything is written.

    Examples
    --------
    >>> import tempfile
    >>> result = demo(f"{tempfile.mkdtemp()}/demo")
    >>> [Path(p).name for p in result.written] == list(DEMO_FILES)
    True
    """
    target = Path(output_dir)
    with deprecated_show_progress(show_progress, "demo"), atomic_output(target, overwrite=overwrite) as tmp:
        from .convert import convert_npz  # here: zarr's encoder is not needed to compute

        tmp.mkdir()
        store = convert_npz(sample_path(), tmp / "influence.zarr")
        result = calculate(
            store, output=tmp / "scores.zarr", stats_csv=tmp / "per_class_memorization_stats.csv",
        )
        save_scores(result.scores, tmp / "influence_aware_memo.npz")
        (tmp / "analysis.txt").write_text(str(result.analysis) + "\n")
    result.written = [str(target / name) for name in DEMO_FILES]
    return result


#: What each file ``demo`` writes holds, in the order of :func:`demo_report`.
DEMO_FILES = {
    "influence.zarr": "the converted influence store",
    "scores.zarr": "the four scores, memorization and influence per training sample",
    "influence_aware_memo.npz": "the same scores in the seed's npz layout",
    "per_class_memorization_stats.csv": "per-class statistics",
    "analysis.txt": "the full analysis: top samples, top classes, agreement",
}


def demo_facts(result: Result) -> list[str]:
    """Three findings computed from ``result``: zero-inflation of memorization, classes whose most
    influential memorized sample is not the most memorized, and the two methods that disagree most.

    Examples
    --------
    >>> import memoxr
    >>> facts = demo_facts(calculate(memoxr.sample_path()))
    >>> len(facts), facts[0].endswith("have 0.5 or more.")
    (3, True)
    """
    scores = result.scores
    memo = scores["original_memo"].values
    present = ~np.isnan(memo)  # ragged classes are padded with NaN
    n = int(present.sum())
    if n == 0:  # every memorization value NaN: none of the three findings is defined
        return ["No training sample has a memorization value: there is nothing to report."]
    zeros = int((memo[present] == 0).sum())
    high = present & (memo >= 0.5)
    facts = [
        f"{zeros} of {n} training samples ({zeros / n:.0%}) have memorization exactly 0; "
        f"{int(high.sum())} have 0.5 or more."
    ]
    # The seed's point: high memorization is not high influence. Per class, is the top sample by
    # influence-weighted memorization among the most memorized?
    weighted = np.where(present, scores["influence_weighted_memo"].values, -np.inf)
    top = weighted.argmax(axis=1)
    rows = np.arange(memo.shape[0])
    top_memo = memo[rows, top]
    class_max = np.nanmax(memo, axis=1)
    differ = np.flatnonzero(top_memo < class_max)
    fact = (
        f"In {differ.size} of {memo.shape[0]} classes the top sample by influence_weighted_memo is not the "
        "most memorized one"
    )
    if differ.size:  # the widest gap as the example
        c = differ[np.argmax(class_max[differ] - top_memo[differ])]
        index = int(scores["training_indices"].values[c, top[c]])
        fact += (
            f"; e.g. class {scores[CLASS].values[c]}: training sample {index}, memorization "
            f"{top_memo[c]:.3g} against the class's highest {class_max[c]:.3g}"
        )
    facts.append(fact + ".")
    summary = result.analysis.agreement_summary()
    overall = summary["overall"].to_numpy(dtype=float)
    if np.isnan(overall).all():  # no pair of methods has a correlation (every score NaN, say)
        facts.append("The methods' rank agreement is undefined here: no pair of methods has two comparable scores.")
        return facts
    worst = summary.iloc[int(np.nanargmin(overall))]
    fact = (
        f"The methods disagree most between {worst['method_a']} and {worst['method_b']}: Spearman "
        f"{worst['overall']:.2f} overall, {worst['median_per_class']:.2f} median per class."
    )
    # A low rank correlation can be ties, not disagreement: one method scores most samples alike
    # (every memorization-0 sample gets 0) where the other tells them apart.
    ties = {name: _most_common_share(scores[name].values[present]) for name in (worst["method_a"], worst["method_b"])}
    (tied, (share, value)), (other, (other_share, _)) = sorted(ties.items(), key=lambda item: -item[1][0])
    if share >= 0.5 and not np.isnan(other_share) and other_share < share / 2:
        fact += (
            f" Most of that is ties: {tied} gives {share:.0%} of samples the same score ({value:.3g}), which "
            f"{other} tells apart."
        )
    facts.append(fact)
    return facts


def _most_common_share(values: np.ndarray) -> tuple[float, float]:
    """The share of ``values`` (NaN left out) that equal its most common value, and that value; NaN and
    NaN when every value is NaN (a method that tells nothing apart)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    unique, counts = np.unique(values, return_counts=True)
    return float(counts.max() / values.size), float(unique[counts.argmax()])


def demo_report(result: Result, output_dir: str | os.PathLike[str]) -> str:
    """What ``memoxr demo`` prints: what was computed, where it went, three facts, what to try next.

    Examples
    --------
    >>> import memoxr
    >>> demo_report(calculate(memoxr.sample_path()), "out").splitlines()[1]
    'Wrote out/:'
    """
    scores, stats = result.scores, result.stats
    n_classes = scores.sizes[CLASS]
    n_train = int(np.sum(~np.isnan(scores["original_memo"].values)))
    folder = Path(output_dir)
    lines = [
        f"Scored the shipped digits sample ({n_train} training samples, {n_classes} classes): the four "
        f"influence-aware scores (alpha={scores.attrs.get('alpha')}, beta={scores.attrs.get('beta')}), "
        f"their per-class statistics ({stats.shape[1]} columns) and the analysis of class {result.analysis.class_label}.",
        f"Wrote {folder}/:",
    ]
    width = max(map(len, DEMO_FILES))
    lines += [f"  {name:<{width}}  {what}" for name, what in DEMO_FILES.items()]
    lines += ["Three facts:"] + [f"  {i}. {fact}" for i, fact in enumerate(demo_facts(result), 1)]
    lines += [
        "Next:",
        f"  memoxr plot --input {folder / 'influence.zarr'} --output {folder / 'figures'}",
        f"  memoxr calculate --input {folder / 'influence.zarr'} --analyze-class 3 --top-k 5",
        f"  python -c \"import memoxr; print(memoxr.load_scores('{folder / 'scores.zarr'}'))\"",
    ]
    return "\n".join(lines)
