"""`memoxr reproduce --quick` end to end: every table recomputed from the stores it wrote, resume, refusals.

One quick run (module fixture) serves every test; resumes work on copies of it.
Reference values are recomputed here with numpy, scipy and scikit-learn
from the stage stores and recordings, never taken from memoxr's evaluation.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

import memoxr
from memoxr.cli import main
from memoxr.errors import MemoxrInputError
from memoxr.estimate import open_trials
from memoxr.io.storage import open_dataset
from memoxr.reproduce import QUICK, load, pipeline, reproduce, training

STAGES = ("fz", "dynamics", "mislabel", "duplicates")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    path = tmp_path_factory.mktemp("repro") / "out"
    result = run("reproduce", path, "--quick")
    assert result.exit_code == 0, result.output
    for stage in STAGES:
        assert f"[{stage}] done in" in result.output
    return path


def stage(out, name) -> xr.Dataset:
    return open_dataset(out / f"{name}.zarr").load()


def csv(out, name) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / name)


def cosine(x, y):
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def test_every_output_is_written(out):
    for name in STAGES:
        assert (out / f"{name}.zarr" / "zarr.json").is_file()
    assert sorted(p.name for p in (out / "tables").glob("*.csv")) == sorted(
        ["table1_fz_agreement.csv", "table2_mislabel.csv", "table3_duplicates.csv", "table4_cross_architecture.csv",
         "table4_proxies_across_architectures.csv", "table4_fz_across_architectures.csv", "cost.csv",
         "fz_memorization.csv"])
    for png in ("csl_vs_memorization", "mislabel_roc", "duplicates_roc", "cross_architecture", "cost"):
        assert (out / "figures" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    t1 = csv(out, "table1_fz_agreement.csv")
    mean = t1.query("arch == 'mlp32' and proxy == 'csl' and target == 'memorization' and metric == 'cosine'")
    assert f"{mean['value'].mean():.3f} ± {mean['value'].std(ddof=0):.3f} (paper 0.87)" in report
    for claim in ("Claim 1", "Claim 2", "Claim 3", "Claim 4", "## Cost"):
        assert claim in report


def test_fz_memorization_from_the_trial_records(out):
    fz = stage(out, "fz")
    assert fz.sizes == {"arch": len(QUICK["architectures"]), "sample": 1347}
    for arch in QUICK["architectures"]:
        records = open_trials(out / "fz" / f"{arch}_trials.zarr").load()
        mask, right = records["mask"].values, records["train_correct"].values
        assert mask.shape == (QUICK["trials"], 1347) and np.all(mask.sum(axis=1) == round(0.7 * 1347))
        expected = np.array([right[mask[:, i], i].mean() - right[~mask[:, i], i].mean() for i in range(1347)])
        np.testing.assert_allclose(fz["memorization"].sel(arch=arch), expected, atol=1e-6)
        np.testing.assert_allclose(memoxr.open_influence(out / "fz" / f"{arch}.zarr")["tr_mem"], expected, atol=1e-6)
        p_in = np.array([right[mask[:, i], i].mean() for i in range(1347)])
        p_out = np.array([right[~mask[:, i], i].mean() for i in range(1347)])
        se = np.sqrt(p_in * (1 - p_in) / mask.sum(0) + p_out * (1 - p_out) / (~mask).sum(0))
        np.testing.assert_allclose(fz["memorization_se"].sel(arch=arch), se, atol=1e-9)
    assert np.all(fz["models"].values == QUICK["trials"])
    samples = csv(out, "fz_memorization.csv").set_index(["arch", "sample"])
    np.testing.assert_allclose(samples.loc["mlp32", "memorization_se"], fz["memorization_se"].sel(arch="mlp32"))
    np.testing.assert_array_equal(samples.loc["logreg", "label"], training.digits_split().y_train)


def test_table1_recomputed_from_the_stores(out):
    fz, dyn = stage(out, "fz"), stage(out, "dynamics")
    recording = memoxr.open_dynamics(out / "recordings" / "dynamics.zarr").load()
    assert recording.sizes["epoch"] == QUICK["epochs"] and recording.sizes["seed"] == QUICK["seeds"]
    t1 = csv(out, "table1_fz_agreement.csv")
    k = round(0.1 * 1347)
    for arch in QUICK["architectures"]:
        mem = fz["memorization"].sel(arch=arch).values
        top = np.argsort(-mem, kind="stable")[:k]
        for seed in dyn["seed"].values:
            csl = recording["loss"].sel(arch=arch, seed=seed).values.astype(np.float64).sum(axis=0)
            np.testing.assert_allclose(dyn["csl"].sel(arch=arch, seed=seed), csl, rtol=1e-6)
            rows = t1.query(f"arch == '{arch}' and seed == {seed} and proxy == 'csl'").set_index(["target", "metric"])
            for target, idx in (("memorization", np.arange(1347)), (f"top{k}", top)):
                x, y = csl[idx], mem[idx]
                assert rows.loc[(target, "cosine"), "value"] == pytest.approx(cosine(x, y), abs=1e-9)
                assert rows.loc[(target, "pearson"), "value"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
                assert rows.loc[(target, "spearman"), "value"] == pytest.approx(spearmanr(x, y)[0], abs=1e-9)
                assert rows.loc[(target, "cosine"), "n"] == idx.size
            # confidence is oriented (negated) before any metric: low confidence means memorized
            conf = t1.query(f"arch == '{arch}' and seed == {seed} and proxy == 'confidence' and "
                            "target == 'memorization' and metric == 'pearson'")["value"].item()
            assert conf == pytest.approx(np.corrcoef(-dyn["confidence"].sel(arch=arch, seed=seed), mem)[0, 1])


def test_table2_auroc_recomputed_with_sklearn(out):
    mis = stage(out, "mislabel")
    t2 = csv(out, "table2_mislabel.csv").query("metric == 'auroc'")
    assert sorted(t2["noise"].unique()) == [0.01, 0.02, 0.05, 0.1]
    for seed in mis["seed"].values:
        for noise in mis["noise"].values:
            mask = mis["is_mislabeled"].sel(seed=seed, noise=noise).values
            assert mask.sum() == round(noise * 1797)
            for proxy, sign in (("csl", 1), ("confidence", -1), ("forgetting_events", 1)):
                score = sign * mis[proxy].sel(seed=seed, noise=noise).values
                row = t2.query(f"seed == {seed} and noise == {noise} and proxy == '{proxy}'")
                assert row["value"].item() == pytest.approx(roc_auc_score(mask, score), abs=1e-12)


def test_table3_duplicates_recomputed_with_sklearn(out):
    dup = stage(out, "duplicates")
    x = training.digits_split().x_train
    count = round(0.05 * 1347)
    recording = memoxr.open_dynamics(out / "recordings" / "duplicates.zarr")
    assert recording.sizes["train_id"] == 1347 + count
    t3 = csv(out, "table3_duplicates.csv").query("metric == 'auroc'")
    fz = stage(out, "fz")
    atypical = np.argsort(-fz["memorization"].mean("arch").values, kind="stable")[: 2 * count]
    for source in ("random", "atypical"):
        mask = dup["is_duplicate"].sel(source=source).values
        sources = dup["duplicate_of"].sel(source=source).values[1347:]
        assert mask.sum() == 2 * count and mask[sources].all() and mask[1347:].all()
        if source == "atypical":
            assert np.isin(sources, atypical).all()
        np.testing.assert_array_equal(x[sources].shape, (count, 64))
        pool = dup["in_pool"].sel(source=source).values
        for arch in QUICK["architectures"]:
            for kind in ("exact", "near"):
                for seed in dup["seed"].values:
                    csl = dup["csl"].sel(arch=arch, source=source, kind=kind, seed=seed).values
                    rows = t3.query(f"arch == '{arch}' and source == '{source}' and kind == '{kind}' and "
                                    f"seed == {seed} and proxy == 'csl'").set_index("among")["value"]
                    # the paper's direction: a low CSL flags a duplicate
                    assert rows["all"] == pytest.approx(roc_auc_score(mask, -csl), abs=1e-12)
                    if source == "atypical":
                        assert rows["pool"] == pytest.approx(roc_auc_score(mask[pool], -csl[pool]), abs=1e-12)
                    else:
                        assert "pool" not in rows


def test_table4_and_cost_recomputed(out):
    fz, dyn = stage(out, "fz"), stage(out, "dynamics")
    t4 = csv(out, "table4_cross_architecture.csv").query("proxy == 'csl' and metric == 'pearson'")
    archs = QUICK["architectures"]
    assert len(t4) == len(archs) ** 2 * QUICK["seeds"]
    for row in t4.itertuples():
        csl = dyn["csl"].sel(arch=row.arch_proxy, seed=row.seed).values
        mem = fz["memorization"].sel(arch=row.arch_fz).values
        assert row.value == pytest.approx(np.corrcoef(csl, mem)[0, 1], abs=1e-9)
    across = csv(out, "table4_proxies_across_architectures.csv").query("proxy == 'csl' and metric == 'spearman'")
    for row in across.itertuples():
        a, b = (dyn["csl"].sel(arch=arch, seed=row.seed).values for arch in (row.arch_a, row.arch_b))
        assert row.value == pytest.approx(spearmanr(a, b)[0], abs=1e-9)
    cost = csv(out, "cost.csv").set_index("arch")
    for arch in archs:
        fz_seconds = float(fz["train_seconds"].sel(arch=arch) + fz["estimate_seconds"].sel(arch=arch))
        csl_seconds = float(dyn["run_seconds"].sel(arch=arch).mean())
        assert cost.loc[arch, "fz_models"] == QUICK["trials"] and cost.loc[arch, "csl_runs"] == 1
        assert cost.loc[arch, "seconds_ratio"] == pytest.approx(fz_seconds / csl_seconds)
        assert 0 < csl_seconds < fz_seconds


def test_complete_stages_are_reused(out, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {name: (copy / f"{name}.zarr" / "zarr.json").stat().st_mtime_ns for name in STAGES}
    result = run("reproduce", copy, "--quick", "--no-figures", "-q")
    assert result.exit_code == 0 and result.output == f"wrote {copy / 'report.md'}\n"  # -q: no progress
    for name in STAGES:
        assert (copy / f"{name}.zarr" / "zarr.json").stat().st_mtime_ns == before[name]
    for name in ("table1_fz_agreement.csv", "table3_duplicates.csv"):
        pd.testing.assert_frame_equal(csv(copy, name), csv(out, name))


def test_interrupted_run_resumes(out, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # A run killed half way: the last stage's store was never written, and one of its
    # runs has its last epochs unfinished (the writer sets each epoch's flag last).
    shutil.rmtree(copy / "duplicates.zarr")
    shutil.rmtree(copy / "mislabel.zarr")
    group = zarr.open_group(copy / "recordings" / "duplicates.zarr", mode="r+")
    group["epoch_complete"][0, 1, 1, 2, QUICK["epochs"] // 2:] = 0  # logreg, atypical, near, seed 2
    from sklearn.neural_network import MLPClassifier

    fits: list[int] = []
    real_fit = MLPClassifier.partial_fit
    monkeypatch.setattr(MLPClassifier, "partial_fit",
                        lambda self, *a, **kw: fits.append(len(self.hidden_layer_sizes)) or real_fit(self, *a, **kw))
    lines: list[str] = []
    reproduce(copy, quick=True, figures=False, echo=lines.append)
    # Only the interrupted run is trained again (logreg: no hidden layer), from its first epoch;
    # the mislabel recordings were complete, so that stage is rebuilt from them without training.
    assert fits == [0] * QUICK["epochs"]
    for name in ("fz", "dynamics"):
        assert any(line.startswith(f"[{name}] complete") and line.endswith("reused") for line in lines)
    assert [line for line in lines if "epochs in" in line] == [line for line in lines if "logreg|atypical|near|2" in line]
    for name in ("duplicates", "mislabel"):  # training is deterministic: the same numbers again
        again, first = stage(copy, name), stage(out, name)
        np.testing.assert_allclose(again["csl"], first["csl"], rtol=1e-6)


def test_load_recomputes_the_tables(out):
    result = load(out)
    pd.testing.assert_frame_equal(result.tables.table2, csv(out, "table2_mislabel.csv"), check_dtype=False)
    assert result.settings.quick and result.settings.trials == QUICK["trials"]
    assert callable(memoxr.reproduce)
    with pytest.raises(MemoxrInputError, match="no settings.json"):
        load(out / "tables")


def test_foreign_or_mismatched_out_dir_is_refused(out, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = run("reproduce", foreign, "--quick")
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    result = run("reproduce", out, "--quick", "--trials", "8")
    assert result.exit_code == 2 and "trials 64 -> 8" in result.output and "--overwrite" in result.output
    result = run("reproduce", foreign / "notes.txt", "--quick")
    assert result.exit_code == 2 and "is a file" in result.output
    for args, message in ((["--trials", "1"], "trials: expected a whole number in [4, 99999], received 1"),
                          (["--seeds", "0"], "seeds: expected a whole number in [1, 100], received 0")):
        result = run("reproduce", tmp_path / "new", "--quick", *args)
        assert result.exit_code == 2 and message in result.output
        assert not (tmp_path / "new").exists()


def test_overwrite_replaces_only_what_reproduce_writes(tmp_path):
    target = tmp_path / "out"
    pipeline._check_out_dir(target, pipeline.make_settings(quick=True), overwrite=False)
    for name in ("fz", "recordings", "tables"):
        (target / name).mkdir()
        (target / name / "x").write_text("old")
    (target / "report.md").write_text("old")
    (target / "notes.txt").write_text("mine")
    settings = pipeline.make_settings(quick=True, trials=8)
    with pytest.raises(MemoxrInputError, match="trials 64 -> 8"):
        pipeline._check_out_dir(target, settings, overwrite=False)
    pipeline._check_out_dir(target, settings, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt", "settings.json"]
    assert pipeline.Settings.from_json(pipeline.st._read_json(target / "settings.json")) == settings


def test_help_names_every_option():
    text = run("reproduce", "--help").output
    for flag in ("--quick", "--trials", "--seeds", "--epochs", "--no-figures", "--overwrite", "--quiet", "-q"):
        assert flag in text
    assert "reproduce" in run("--help").output
