"""The paper's tables, computed from the stage stores with memoxr's evaluation functions.

Every table is a tidy DataFrame (one row per run, proxy and metric) saved as a
CSV in ``OUT_DIR/tables``; :func:`summarize` gives the mean and std over seeds.
Scores are oriented as :func:`memoxr.evaluate` orients them: larger means more
memorized (confidence is negated).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..io.storage import atomic_output
from .settings import Settings

TABLE_FILES = {
    "table1": "table1_fz_agreement.csv",
    "table2": "table2_mislabel.csv",
    "table3": "table3_duplicates.csv",
    "table4": "table4_cross_architecture.csv",
    "table4_proxies": "table4_proxies_across_architectures.csv",
    "table4_fz": "table4_fz_across_architectures.csv",
    "cost": "cost.csv",
    "fz_samples": "fz_memorization.csv",
}


@dataclass
class Tables:
    """The tidy tables of a reproduction (see :data:`TABLE_FILES` for their CSV names)."""

    table1: pd.DataFrame
    table2: pd.DataFrame
    table3: pd.DataFrame
    table4: pd.DataFrame
    table4_proxies: pd.DataFrame
    table4_fz: pd.DataFrame
    cost: pd.DataFrame
    fz_samples: pd.DataFrame

    def save(self, folder: Path) -> list[Path]:
        folder.mkdir(exist_ok=True)
        written = []
        for name, file in TABLE_FILES.items():
            with atomic_output(folder / file, overwrite=True) as tmp:
                getattr(self, name).to_csv(tmp, index=False)
            written.append(folder / file)
        return written


def top_k(settings: Settings, n: int) -> int:
    """Size of the most-memorized subset: the paper's 5k of CIFAR's 50k is 10%.

    Examples
    --------
    >>> from memoxr.reproduce.settings import make_settings
    >>> top_k(make_settings(), 1347)
    135
    """
    return max(2, round(settings.top_fraction * n))


def memorization(fz: xr.Dataset, arch: str) -> xr.DataArray:
    """FZ memorization of one architecture, over ``sample`` with its sample order (for alignment).

    Examples
    --------
    >>> fz = xr.Dataset({"memorization": (("arch", "sample"), [[0.1, 0.5, 0.9], [0.2, 0.4, 0.8]])},
    ...                 coords={"arch": ["logreg", "mlp32"]}, attrs={"sample_order": "demo order"})
    >>> mem = memorization(fz, "mlp32")
    >>> mem.dims, mem.values.tolist(), mem.attrs["sample_order"]
    (('sample',), [0.2, 0.4, 0.8], 'demo order')
    """
    return fz["memorization"].sel(arch=arch, drop=True).assign_attrs(sample_order=fz.attrs["sample_order"])


def oriented(scores: xr.Dataset) -> dict[str, xr.DataArray]:
    """Every proxy of a proxies dataset times its direction (larger = more memorized).

    Examples
    --------
    >>> proxies = xr.Dataset({"csl": ("sample", [1.0, 2.0]), "confidence": ("sample", [0.9, 0.2])})
    >>> proxies["csl"].attrs["direction"], proxies["confidence"].attrs["direction"] = 1, -1
    >>> {name: value.values.tolist() for name, value in oriented(proxies).items()}
    {'csl': [1.0, 2.0], 'confidence': [-0.9, -0.2]}
    """
    return {str(k): v * v.attrs["direction"] for k, v in scores.data_vars.items() if "direction" in v.attrs}


def fz_agreement(fz: xr.Dataset, dynamics: xr.Dataset, settings: Settings) -> pd.DataFrame:
    """Table 1: cosine, Pearson, Spearman of each proxy against FZ memorization of the same architecture."""
    from ..dynamics import evaluate

    k = top_k(settings, fz.sizes["sample"])
    parts = []
    for arch in settings.architectures:
        result = evaluate(dynamics.sel(arch=arch, drop=True), influence=memorization(fz, arch), top_k=k)
        parts.append(result.assign(arch=arch))
    out = pd.concat(parts, ignore_index=True)
    out["target"] = out["target"].str.replace(f"memorization_top{k}", f"top{k}")
    return out[["arch", "seed", "proxy", "target", "metric", "value", "n"]]


def mislabel_detection(mislabel: xr.Dataset) -> pd.DataFrame:
    """Table 2: detection metrics of every proxy at each noise level and seed (the dynamics demo's table)."""
    from ..dynamics import evaluate

    return evaluate(mislabel, mask="is_mislabeled")


def duplicate_detection(duplicates: xr.Dataset) -> pd.DataFrame:
    """Table 3: detection of planted duplicates, flagged by LOW memorization (the paper's direction).

    The score handed to the metrics is the negated oriented proxy, so ``auroc``
    is ``roc_auc_score(is_duplicate, -proxy * direction)``; ``auroc_high``
    (``1 - auroc``) is the other direction, for reference. ``among``: ``all``
    samples, or (for atypical sources) only the ``pool`` they were drawn from
    plus the copies.
    """
    from ..dynamics import detection_metrics

    rows = []
    for name, score in oriented(duplicates).items():
        score = score.transpose("arch", "source", "kind", "seed", "sample")
        for source in score["source"].values:
            mask = duplicates["is_duplicate"].sel(source=source).values.astype(bool)
            pool = duplicates["in_pool"].sel(source=source).values.astype(bool)
            subsets = {"all": np.ones_like(pool)} if pool.all() else {"all": np.ones_like(pool), "pool": pool}
            for arch, kind, seed in itertools.product(*(score[d].values for d in ("arch", "kind", "seed"))):
                values = score.sel(arch=arch, source=source, kind=kind, seed=seed).values
                for among, subset in subsets.items():
                    ok = np.isfinite(values) & subset
                    metrics = detection_metrics(-values[ok], mask[ok])
                    metrics["auroc_high"] = 1.0 - metrics["auroc"]
                    for metric, value in metrics.items():
                        rows.append({"arch": str(arch), "source": str(source), "kind": str(kind), "among": among,
                                     "seed": int(seed), "proxy": name, "direction": "low flags duplicate",
                                     "metric": metric, "value": value, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def cross_architecture(fz: xr.Dataset, dynamics: xr.Dataset, settings: Settings) -> pd.DataFrame:
    """Table 4: each proxy of architecture A (per seed) against FZ memorization of architecture B."""
    from ..dynamics import align_samples, correlation_metrics

    rows = []
    for arch_b in settings.architectures:
        mem = memorization(fz, arch_b)
        for name, score in oriented(dynamics).items():
            score = score.assign_attrs(sample_order=dynamics.attrs["sample_order"])
            aligned, mem_a = align_samples(score, mem, a_name="dynamics", b_name="FZ memorization")
            m = mem_a.values
            for arch_a in settings.architectures:
                for seed in aligned["seed"].values:
                    x = aligned.sel(arch=arch_a, seed=seed).values
                    ok = np.isfinite(x) & np.isfinite(m)
                    for metric, value in correlation_metrics(x[ok], m[ok]).items():
                        rows.append({"proxy": name, "arch_proxy": arch_a, "arch_fz": arch_b, "seed": int(seed),
                                     "metric": metric, "value": value, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def proxies_across_architectures(dynamics: xr.Dataset) -> pd.DataFrame:
    """Each proxy of architecture A against the same proxy of B (same seed): ``memoxr.dynamics.cross_run``."""
    from ..dynamics import cross_run

    scores = dynamics[[k for k, v in dynamics.data_vars.items() if "direction" in v.attrs]]
    return cross_run(scores, dim="arch") if scores.sizes["arch"] > 1 else pd.DataFrame()


def fz_across_architectures(fz: xr.Dataset) -> pd.DataFrame:
    """FZ memorization of architecture A against that of B (how much the target itself moves).

    Examples
    --------
    >>> fz = xr.Dataset({"memorization": (("arch", "sample"), [[0.1, 0.5, 0.9], [0.2, 0.4, 0.8]])},
    ...                 coords={"arch": ["logreg", "mlp32"]})
    >>> table = fz_across_architectures(fz)
    >>> table[table["metric"] == "pearson"].round(3)[["arch_a", "arch_b", "value"]].values.tolist()
    [['logreg', 'logreg', 1.0], ['logreg', 'mlp32', 0.982], ['mlp32', 'logreg', 0.982], ['mlp32', 'mlp32', 1.0]]
    """
    from ..dynamics import correlation_metrics

    archs = [str(a) for a in fz["arch"].values]
    rows = []
    for a in archs:
        for b in archs:
            x, y = fz["memorization"].sel(arch=a).values, fz["memorization"].sel(arch=b).values
            ok = np.isfinite(x) & np.isfinite(y)
            for metric, value in correlation_metrics(x[ok], y[ok]).items():
                rows.append({"arch_a": a, "arch_b": b, "metric": metric, "value": value, "n": int(ok.sum())})
    return pd.DataFrame(rows)


def cost(fz: xr.Dataset, dynamics: xr.Dataset) -> pd.DataFrame:
    """Wall time and training runs of the FZ estimate against CSL, per architecture.

    CSL needs one training run (the loss is read each epoch); its time is the
    mean over seeds of a full-data run with the recording.

    Examples
    --------
    >>> fz = xr.Dataset({"train_seconds": ("arch", [10.0, 30.0]), "estimate_seconds": ("arch", [2.0, 2.0]),
    ...                  "models": ("arch", [64, 64])}, coords={"arch": ["logreg", "mlp32"]})
    >>> dynamics = xr.Dataset({"run_seconds": (("arch", "seed"), [[0.5, 0.5], [1.0, 1.0]])},
    ...                       coords={"arch": ["logreg", "mlp32"]})
    >>> cost(fz, dynamics)[["arch", "fz_seconds", "csl_seconds", "seconds_ratio"]].values.tolist()
    [['logreg', 12.0, 0.5, 24.0], ['mlp32', 32.0, 1.0, 32.0]]
    """
    rows = []
    for arch in fz["arch"].values:
        fz_seconds = float(fz["train_seconds"].sel(arch=arch) + fz["estimate_seconds"].sel(arch=arch))
        csl_seconds = float(dynamics["run_seconds"].sel(arch=arch).mean())
        models = int(fz["models"].sel(arch=arch))
        rows.append({"arch": str(arch), "fz_models": models, "fz_seconds": fz_seconds, "csl_runs": 1,
                     "csl_seconds": csl_seconds, "runs_ratio": models / 1, "seconds_ratio": fz_seconds / csl_seconds})
    return pd.DataFrame(rows)


def fz_samples(fz: xr.Dataset) -> pd.DataFrame:
    """Per train sample and architecture: FZ memorization, its standard error (the error bar) and ``n_in``."""
    table = fz[["memorization", "memorization_se", "n_in"]].to_dataframe().reset_index()
    return table.merge(fz["label"].to_dataframe().reset_index(), on="sample")


def compute_tables(stages: dict[str, xr.Dataset], settings: Settings) -> Tables:
    from sklearn import config_context

    fz, dynamics = stages["fz"], stages["dynamics"]
    # Hundreds of small metric calls on finite arrays: scikit-learn's input checks would
    # take most of the time.
    with config_context(assume_finite=True, skip_parameter_validation=True):
        return _compute_tables(stages, fz, dynamics, settings)


def _compute_tables(stages: dict[str, xr.Dataset], fz: xr.Dataset, dynamics: xr.Dataset, settings: Settings) -> Tables:
    return Tables(
        table1=fz_agreement(fz, dynamics, settings),
        table2=mislabel_detection(stages["mislabel"]),
        table3=duplicate_detection(stages["duplicates"]),
        table4=cross_architecture(fz, dynamics, settings),
        table4_proxies=proxies_across_architectures(dynamics),
        table4_fz=fz_across_architectures(fz),
        cost=cost(fz, dynamics),
        fz_samples=fz_samples(fz),
    )


def summarize(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and std (over seeds and any dim not in ``by``) of ``value``, one row per ``by`` group.

    Examples
    --------
    >>> table = pd.DataFrame({"proxy": ["csl", "csl", "loss", "loss"], "seed": [0, 1, 0, 1],
    ...                       "value": [0.8, 0.9, 0.5, 0.7]})
    >>> summarize(table, ["proxy"])
      proxy  mean   std  runs
    0   csl  0.85  0.05     2
    1  loss  0.60  0.10     2
    """
    grouped = table.groupby(by, sort=False)["value"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "runs": grouped.size()}).reset_index()
