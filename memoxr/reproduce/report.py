"""Figures (PNG, matplotlib imported only here) and ``report.md``: measured numbers beside the paper's."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from ..io.storage import atomic_output
from .settings import Settings
from .tables import Tables, memorization, oriented, summarize, top_k

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The paper's numbers (Ravikumar et al., ICML 2025), as the issue and the seed quote them.
PAPER: dict[str, Any] = {
    "cosine_all": 0.87, "pearson_all": 0.79, "cosine_top": 0.93,  # CIFAR-100, ResNet, top 5k of 50k
    "mislabel_auroc": (0.985, 0.99),  # 1-10% symmetric noise
    "duplicates_auroc": (0.982, 0.989),
}
FIGURES = ("csl_vs_memorization.png", "mislabel_roc.png", "duplicates_roc.png", "cross_architecture.png", "cost.png")
# mean_loss is CSL / T (the same ranking, the same curve), so it is left out of the figures.
_SHOWN = ("csl", "threshold_learning_time", "learning_time", "forgetting_events", "confidence", "in_confidence")


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def write_figures(stages: dict[str, xr.Dataset], tables: Tables, settings: Settings, folder: Path) -> list[Path]:
    """The five figures of :data:`FIGURES` (needs matplotlib: ``pip install "memoxr[plot]"``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..plot import binned_against_memorization, roc_curves

    folder.mkdir(exist_ok=True)
    fz, dyn, mis, dup = (stages[k] for k in ("fz", "dynamics", "mislabel", "duplicates"))
    archs, seed = list(settings.architectures), settings.seed_values[0]
    written = []

    fig, axes = plt.subplots(1, len(archs), figsize=(5.5 * len(archs), 4.4), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        csl = dyn["csl"].sel(arch=arch, seed=seed).values
        binned_against_memorization(csl, memorization(fz, arch).values, bins=10, label=f"CSL ({arch}, seed {seed})",
                                    ax=ax)
    written.append(_save(fig, folder / FIGURES[0]))

    noise = max(settings.noise_levels)
    fig, ax = plt.subplots(figsize=(6, 5.6))
    scores = oriented(mis.sel(seed=seed, noise=noise))
    roc_curves({k: scores[k].values for k in _SHOWN if k in scores},
               mis["is_mislabeled"].sel(seed=seed, noise=noise).values, mask_name=f"mislabeled ({noise:.0%} noise)",
               ax=ax)
    written.append(_save(fig, folder / FIGURES[1]))

    sources, kinds = dup["source"].values, dup["kind"].values
    fig, axes = plt.subplots(len(sources), len(kinds), figsize=(6.2 * len(kinds), 6 * len(sources)), squeeze=False)
    for ax, (source, kind) in zip(axes.ravel(), [(s, k) for s in sources for k in kinds], strict=True):
        scores = oriented(dup.sel(arch=archs[-1], source=source, kind=kind, seed=seed))
        roc_curves({f"-{k}": -scores[k].values for k in _SHOWN if k in scores},
                   dup["is_duplicate"].sel(source=source).values, mask_name=f"{kind} copies, {source} sources",
                   ax=ax)
    fig.suptitle(f"Planted duplicates, {archs[-1]}: a LOW score flags a duplicate (proxies negated)")
    written.append(_save(fig, folder / FIGURES[2]))

    table = tables.table4[(tables.table4["proxy"] == "csl") & (tables.table4["metric"] == "pearson")]
    grid = table.pivot_table(index="arch_proxy", columns="arch_fz", values="value", aggfunc="mean").loc[archs, archs]
    fig, ax = plt.subplots(figsize=(1.6 * len(archs) + 2.5, 1.3 * len(archs) + 1.5))
    image = ax.imshow(grid.values, cmap="viridis", vmin=min(0.0, float(np.nanmin(grid.values))), vmax=1.0)
    for (i, j), value in np.ndenumerate(grid.values):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w" if value < 0.6 else "k")
    ax.set_xticks(range(len(archs)), archs)
    ax.set_yticks(range(len(archs)), archs)
    ax.set_xlabel("FZ memorization of architecture B")
    ax.set_ylabel("CSL of architecture A")
    ax.set_title("Pearson(CSL_A, FZ_B), mean over seeds")
    fig.colorbar(image, ax=ax)
    written.append(_save(fig, folder / FIGURES[3]))

    fig, ax = plt.subplots(figsize=(1.8 * len(archs) + 3, 4))
    x = np.arange(len(tables.cost))
    ax.bar(x - 0.2, tables.cost["fz_seconds"], 0.4, label="FZ estimate (all models + estimator)")
    ax.bar(x + 0.2, tables.cost["csl_seconds"], 0.4, label="CSL (one recorded run)")
    ax.set_yscale("log")
    ax.set_xticks(x, tables.cost["arch"])
    ax.set_ylabel("wall time (s, log scale)")
    ax.set_title("Cost of memorization scores on digits")
    ax.legend(fontsize="small")
    written.append(_save(fig, folder / FIGURES[4]))
    return written


# --------------------------------------------------------------------------- report.md


def _pm(row: pd.Series) -> str:
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _wide(summary: pd.DataFrame, index: list[str], columns: list[str]) -> pd.DataFrame:
    summary = summary.assign(text=summary.apply(_pm, axis=1))
    wide = summary.pivot(index=index, columns=columns, values="text")
    rows = list(dict.fromkeys(map(tuple, summary[index].values))) if len(index) > 1 else list(
        dict.fromkeys(summary[index[0]]))
    cols = list(dict.fromkeys(map(tuple, summary[columns].values))) if len(columns) > 1 else list(
        dict.fromkeys(summary[columns[0]]))
    if len(index) > 1:  # grouped by the first level (architecture), in order of appearance
        firsts = list(dict.fromkeys(r[0] for r in rows))
        rows = sorted(rows, key=lambda r: firsts.index(r[0]))
    wide = wide.loc[rows, cols]  # the order of the tidy table, not alphabetical
    wide.columns = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in wide.columns]
    return wide.reset_index()


def _chance_cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Expected cosine of ``x`` with ``y`` shuffled: ``n mean(x) mean(y) / (|x| |y|)``."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    return float(x.size * x.mean() * y.mean() / np.sqrt((x @ x) * (y @ y)))


def _compare(measured: float, paper: tuple[float, float], what: str = "The measured mean") -> str:
    """One sentence placing a measured mean AUROC against the paper's range."""
    low, high = paper
    if measured > high:
        return f"{what} ({measured:.3f}) is above the paper's range."
    if measured >= low - 0.02:
        return f"{what} ({measured:.3f}) is within 0.02 of the paper's range or inside it."
    return f"{what} ({measured:.3f}) is {low - measured:.3f} below the paper's range."


def _noise_sentence(gaps: list[float]) -> str:
    """Whether the FZ estimate's own noise could explain the measured Pearson correlations."""
    if min(gaps) > 0.2:
        return (f"Here that ceiling is at least {min(gaps):.2f} above every measured Pearson: the noise of the "
                "estimate explains little of the gap, which comes from the proxy, the data and the models.")
    return ("Here the ceiling is within 0.2 of a measured Pearson: with more models the FZ estimate, and so the "
            "agreement, would improve.")


def render(stages: dict[str, xr.Dataset], tables: Tables, settings: Settings, seconds: float) -> str:
    """The text of ``report.md``."""
    fz, dyn = stages["fz"], stages["dynamics"]
    n, k = fz.sizes["sample"], top_k(settings, fz.sizes["sample"])
    archs = list(settings.architectures)
    t1 = summarize(tables.table1, ["arch", "proxy", "target", "metric"])
    # Any: pandas-stubs do not take a tuple of labels as a MultiIndex row key of .loc.
    csl1: Any = t1[t1["proxy"] == "csl"].set_index(["arch", "target", "metric"])
    head_rows, noise_gap = [], []
    for arch in archs:
        mem = memorization(fz, arch).values
        csl = dyn["csl"].sel(arch=arch).mean("seed").values
        reliability = float(fz["reliability"].sel(arch=arch))
        se = fz["memorization_se"].sel(arch=arch).values
        noise_gap.append(np.sqrt(max(reliability, 0)) - float(csl1.loc[(arch, "memorization", "pearson"), "mean"]))
        head_rows.append({
            "arch": arch,
            "cosine (all)": f"{_pm(csl1.loc[(arch, 'memorization', 'cosine')])} (paper {PAPER['cosine_all']})",
            "Pearson (all)": f"{_pm(csl1.loc[(arch, 'memorization', 'pearson')])} (paper {PAPER['pearson_all']})",
            f"cosine (top {k})": f"{_pm(csl1.loc[(arch, f'top{k}', 'cosine')])} (paper {PAPER['cosine_top']})",
            "chance cosine": f"{_chance_cosine(csl, mem):.3f}",
            "memorization > 0.1": f"{np.mean(mem[np.isfinite(mem)] > 0.1):.1%} of samples",
            "FZ standard error (mean; where > 0.1)": f"{np.nanmean(se):.3f}; {np.nanmean(se[mem > 0.1]):.3f}",
            "FZ reliability (ceiling of Pearson)": f"{reliability:.3f} ({np.sqrt(max(reliability, 0)):.3f})",
        })
    t2 = summarize(tables.table2[tables.table2["metric"] == "auroc"], ["proxy", "noise"])
    t2["noise"] = t2["noise"].map(lambda r: f"{r:.0%}")
    t3 = summarize(tables.table3[tables.table3["metric"] == "auroc"], ["arch", "proxy", "source", "kind", "among"])
    t4 = summarize(tables.table4[(tables.table4["proxy"] == "csl") & (tables.table4["metric"] == "pearson")],
                   ["arch_proxy", "arch_fz"])
    fz_cross = tables.table4_fz[tables.table4_fz["metric"] == "pearson"].pivot(
        index="arch_a", columns="arch_b", values="value").loc[archs, archs].round(3).reset_index()
    cost = tables.cost.round({"fz_seconds": 1, "csl_seconds": 2, "seconds_ratio": 0})
    mis_csl = t2[t2["proxy"] == "csl"]
    dup_csl = t3[t3["proxy"] == "csl"]
    dup_all = float(dup_csl.loc[(dup_csl["source"] == "random") & (dup_csl["among"] == "all"), "mean"].mean())
    lines = [
        "# Reproduction of \"Towards Memorization Estimation: Fast, Formal and Free\" on digits",
        "",
        f"Run: {'--quick' if settings.quick else 'full'}; {settings.trials} FZ models per architecture on random "
        f"70% subsets, {settings.seeds} seeds, {settings.epochs} epochs, architectures {', '.join(archs)} "
        f"(MLPs; `logreg` has no hidden layer); {n} train samples of scikit-learn's digits. Wall time of this "
        f"invocation: {seconds:.1f} s (stages reused from an earlier invocation cost nothing here; their own time "
        "is in the cost table). Every number is recomputed by `memoxr reproduce` from the stores in this folder; "
        "± is the std over seeds.",
        "",
        "Stage times (when each stage ran): " + ", ".join(
            f"{name} {ds.attrs.get('stage_seconds', float('nan')):.1f} s" for name, ds in stages.items()) + ".",
        "",
        "## Claim 1: CSL tracks FZ memorization (Table 1)",
        "",
        _markdown(pd.DataFrame(head_rows)),
        "",
        f"Every proxy (`tables/{'table1_fz_agreement.csv'}`), same architecture for the proxy and FZ:",
        "",
        _markdown(_wide(t1, ["arch", "proxy"], ["target", "metric"])),
        "",
        "Why the numbers differ from the paper's: digits has " f"{n} train samples of 8x8 pixels and small models "
        "fit it almost perfectly, so most samples have memorization near 0 and a few carry it all (the share "
        "above 0.1 is in the table), while on CIFAR-100 it is spread over many samples. The FZ estimate is "
        "itself an estimate: its split-half reliability (Spearman-Brown, from two halves of the "
        f"{settings.trials} models) bounds the Pearson correlation any proxy can reach at about its square "
        f"root. {_noise_sentence(noise_gap)} "
        "Cosine similarity of two non-negative scores is high by construction: the chance column is the expected "
        "cosine against a shuffled memorization. Each sample's FZ estimate has a binomial standard error "
        "(`tables/fz_memorization.csv`, the estimator's error bar; its mean over all samples and over the "
        "samples with memorization above 0.1 are in the table).",
        "",
        "## Claim 2: CSL detects mislabeled samples (Table 2, AUROC)",
        "",
        _markdown(_wide(t2, ["proxy"], ["noise"])),
        "",
        f"Paper: AUROC about {PAPER['mislabel_auroc'][0]}–{PAPER['mislabel_auroc'][1]} at 1–10% noise; measured "
        f"for CSL: {', '.join(f'{r.noise}: {r.mean:.3f}' for r in mis_csl.itertuples())}. The run is the dynamics "
        "demo's (`memoxr dynamics-demo`): an MLP of 256 units on all 1797 digits, "
        f"{settings.mislabel_epochs} epochs. {_compare(mis_csl['mean'].mean(), PAPER['mislabel_auroc'])} A "
        "flipped digit stays far from its new class, so a small network fits it late, if at all, and its loss "
        "stays high; digits is cleaner and simpler than CIFAR, which leaves the clean samples' loss lower. At 1% "
        f"noise only {round(0.01 * 1797)} samples are flipped, so each one weighs 1/{round(0.01 * 1797)} of the "
        "AUROC.",
        "",
        "## Claim 3: CSL detects duplicates (Table 3, AUROC; low score flags a duplicate)",
        "",
        _markdown(_wide(t3, ["arch", "proxy"], ["source", "kind", "among"])),
        "",
        f"Paper: {PAPER['duplicates_auroc'][0]} / {PAPER['duplicates_auroc'][1]}; measured for CSL (mean over "
        "architectures): "
        + ", ".join(f"{key[0]} sources, {key[1]}, among {key[2]}: {value:.3f}"
                    for key, value in cast("Iterable[tuple[tuple[str, str, str], float]]",
                                           dup_csl.groupby(["source", "kind", "among"], sort=False)["mean"].mean().items()))
        + f". {settings.duplicate_fraction:.0%} of the train samples get a copy appended (`exact`: the same pixels; "
        f"`near`: Gaussian pixel noise of std {settings.near_std}); both the source and its copy count as "
        "duplicates. `random` sources are drawn from the whole split; `atypical` ones from the "
        f"{2 * settings.duplicate_fraction:.0%} of samples with the highest FZ memorization (mean over "
        "architectures), and `among pool` compares them only with the rest of that pool. As in the paper a "
        "duplicate is flagged by LOW memorization (the score is the negated proxy; `auroc_high` in the CSV is "
        f"the other direction). {_compare(dup_all, PAPER['duplicates_auroc'], 'The mean for random sources among all samples')} On digits most samples are learned "
        "within the first epochs, so a duplicated typical sample is hard to tell from the many other easy "
        "samples whose loss is already near zero; among atypical samples, where a second copy has something to "
        "change, the pool column shows how much duplication lowers the proxy.",
        "",
        "## Claim 4: it holds across architectures (Table 4, Pearson of CSL_A against FZ_B)",
        "",
        _markdown(_wide(t4, ["arch_proxy"], ["arch_fz"])),
        "",
        "FZ memorization of A against B (Pearson), how much the target itself changes with the architecture:",
        "",
        _markdown(fz_cross),
        "",
        "Proxies of A against B (same seed) are in `tables/table4_proxies_across_architectures.csv`. The paper "
        "states the agreement qualitatively; here the off-diagonal cells show how much of it survives a change "
        "of model, bounded by how much FZ memorization itself agrees across models.",
        "",
        "## Cost",
        "",
        _markdown(cost),
        "",
        "CSL costs one training run whose loss is read each epoch (the time includes the recording); the FZ "
        "estimate costs every model on a subset plus the estimator. The paper reports CSL as four orders of "
        f"magnitude cheaper with thousands of FZ models; here the run ratio is {settings.trials} (the number of "
        "FZ models) and the time ratio is measured above.",
        "",
        "## Figures",
        "",
        *[f"![{name}](figures/{name})" for name in FIGURES],
        "",
    ]
    return "\n".join(lines)


def write_report(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` (complete or absent, replacing an older report).

    Examples
    --------
    >>> import tempfile
    >>> path = write_report("# Report", Path(tempfile.mkdtemp()) / "report.md")
    >>> path.name, path.read_text()
    ('report.md', '# Report')
    """
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path
