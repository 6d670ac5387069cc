"""The memoxr command end to end: outputs, the seed's npz layout, exit codes."""

from __future__ import annotations

import re
import sys

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.influence.seed_npz import SEED_KEYS, read_seed_npz

from reference import all_scores


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_help_explains_every_flag():
    for command, flags in {
        "convert": ["--overwrite", "--allow-pickle", "--chunk-mb"],
        "calculate": ["--input", "--output", "--analyze-class", "--top-k", "--alpha", "--beta"],
        "update-csv": ["--influence-file", "--csv-file", "--output"],
        "demo": ["--output"],
    }.items():
        text = run(command, "--help").output
        for flag in flags:
            assert flag in text, f"{command} --help lacks {flag}"


def test_command_list_shows_every_summary_whole():
    """The list ``memoxr --help`` prints, at click's default 80 columns: no summary cut with '...',
    the same before and after every command is imported (lazy ones are, on first use)."""
    import click

    first = run("--help").output
    for name in main.list_commands(click.Context(main)):
        main.get_command(click.Context(main), name)
    text = run("--help").output
    assert text == first
    commands = text[text.index("Commands:"):]
    assert "..." not in commands, commands


def test_convert_then_calculate_to_seed_npz(tmp_path, ragged_npz, ragged_arrays):
    result = run("convert", ragged_npz, tmp_path / "s.zarr", "--chunk-mb", "1", "-q")
    assert result.exit_code == 0, result.output
    result = run("calculate", "--input", tmp_path / "s.zarr", "--output", tmp_path / "out.npz",
                 "--analyze-class", 3, "--top-k", 2, "-q")
    assert result.exit_code == 0, result.output
    assert "Top samples of class 3 by original_memo" in result.output
    expected = all_scores(ragged_arrays)
    with np.load(tmp_path / "out.npz", allow_pickle=True) as npz:
        assert sorted(npz.files) == sorted(SEED_KEYS)
        for key in SEED_KEYS:
            per_class = npz[key].item()
            assert isinstance(per_class, dict) and sorted(per_class) == sorted(expected)
            for k, values in per_class.items():
                np.testing.assert_allclose(values, expected[k][key], rtol=1e-6)
    with pytest.raises(memoxr.MemoxrInputError, match="--allow-pickle"):
        read_seed_npz(tmp_path / "out.npz")


def test_calculate_from_npz_to_zarr_and_csv(tmp_path, ragged_npz):
    result = run("calculate", "--input", ragged_npz, "--output", tmp_path / "scores.zarr",
                 "--stats-csv", tmp_path / "stats.csv", "--alpha", 0.5, "--beta", 0.5, "-q")
    assert result.exit_code == 0, result.output
    from memoxr.io.storage import open_dataset

    scores = open_dataset(tmp_path / "scores.zarr")
    assert scores.attrs["alpha"] == 0.5
    expected = memoxr.influence_scores(memoxr.open_influence(ragged_npz), alpha=0.5, beta=0.5).compute()
    np.testing.assert_allclose(scores["weighted_combination"].values, expected["weighted_combination"].values)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "stats.csv"), memoxr.class_stats(expected), check_dtype=False)


def test_update_csv_from_each_kind_of_file(tmp_path, ragged_npz, ragged_store):
    run("calculate", "--input", ragged_store, "--output", tmp_path / "seed.npz", "-q")
    run("calculate", "--input", ragged_store, "--output", tmp_path / "scores.zarr", "-q")
    base = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    outputs = {}
    for name, args in {
        "seed": [tmp_path / "seed.npz", "--allow-pickle"],
        "scores": [tmp_path / "scores.zarr"],
        "influence": [ragged_store],
        "fz": [ragged_npz],
    }.items():
        result = run("update-csv", "--influence-file", args[0], "--csv-file", tmp_path / f"{name}.csv", *args[1:], "-q")
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(tmp_path / f"{name}.csv")
        pd.testing.assert_frame_equal(outputs[name], base, check_dtype=False, rtol=1e-6)


def test_update_csv_merges_into_existing(tmp_path, ragged_store):
    csv = tmp_path / "stats.csv"
    pd.DataFrame({"class_label": range(6), "sample_count": 0, "comment": list("abcdef")}).to_csv(csv, index=False)
    result = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "-q")
    assert result.exit_code == 0, result.output
    merged = pd.read_csv(csv)
    assert merged["comment"].tolist() == list("abcdef")
    assert "mean_critical_sample" in merged.columns and "mean_memo_score" not in merged.columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convert", "{missing}", "{tmp}/x.zarr"], "does not exist or is not a file"),
        (["convert", "{npz}", "{store}"], "already exists; pass --overwrite to replace it"),
        (["calculate", "--input", "{store}", "--analyze-class", "42"], "--analyze-class must be one of the classes 0..5"),
        (["calculate", "--input", "{tmp}/nope.zarr"], "does not exist"),
        (["calculate", "--input", "{store}", "--output", "{store}"], "is the same path as --input"),
        (["calculate", "--input", "{store}", "--alpha", "nan"], "alpha must be a finite number"),
        (["update-csv", "--influence-file", "{npz}", "--csv-file", "{tmp}/c.csv", "--output", "{tmp}/no/o.csv"], "parent folder"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, ragged_npz, ragged_store, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    fields = {"missing": tmp_path / "missing.npz", "tmp": tmp_path, "npz": ragged_npz, "store": ragged_store}
    result = run(*[a.format(**fields) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_click_usage_errors_exit_2():
    assert run("calculate").exit_code == 2  # missing --input
    assert run("calculate", "--input", "x", "--top-k", "0").exit_code == 2


# ----------------------------------------------------------------------------- one name per concept

def _commands():
    from memoxr.cli import main

    return main.list_commands(None)


@pytest.mark.parametrize("command", _commands())
def test_every_command_names_its_paths_with_options(command):
    from memoxr.cli import main

    cmd = main.get_command(None, command)
    if isinstance(cmd, click.Group) or any(isinstance(p, click.Argument) and p.nargs == -1 and p.required for p in cmd.params):
        pytest.skip(f"{command} takes subcommands or a list of inputs")
    text = run(command, "--help").output
    usage = text.splitlines()[0]
    assert usage.endswith(f" {command} [OPTIONS]"), usage  # no positional paths advertised
    inputs = {"--input", "--influence-file", "--from"} & set(re.findall(r"--[a-z-]+", text))
    assert inputs or command in ("demo", "dynamics-demo", "reproduce"), f"{command}: no input option"  # built-in data
    assert "--output" in text


def _store_values(path):
    from memoxr.io.storage import open_dataset

    return open_dataset(path).compute()


def test_convert_positional_paths_still_work(tmp_path, ragged_npz):
    old = run("convert", ragged_npz, tmp_path / "old.zarr", "--chunk-mb", "1", "-q")
    new = run("convert", "--input", ragged_npz, "--output", tmp_path / "new.zarr", "--chunk-mb", "1", "-q")
    mixed = run("convert", "--input", ragged_npz, tmp_path / "mixed.zarr", "--chunk-mb", "1", "-q")
    assert old.exit_code == new.exit_code == mixed.exit_code == 0, (old.output, new.output, mixed.output)
    expected = _store_values(tmp_path / "new.zarr")
    for name in ("old", "mixed"):
        got = _store_values(tmp_path / f"{name}.zarr")
        np.testing.assert_array_equal(got["influence"].values, expected["influence"].values)
        np.testing.assert_array_equal(got["tr_mem"].values, expected["tr_mem"].values)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convert", "--input", "{npz}", "{npz}", "{tmp}/a.zarr"], "beyond the paths expected (--input --output)"),
        (["convert", "{npz}"], "Missing option '--output'"),
        (["convert"], "Missing option '--input'"),
        (["evaluate"], "Missing option '--input'"),
        (["ingest", "--var", "loss=x_{{epoch}}.npy", "--input", "y_{{epoch}}.npy", "{tmp}/o.zarr"], "expected one of them"),
    ],
)
def test_paths_given_twice_or_missing_are_usage_errors(tmp_path, ragged_npz, args, message):
    result = run(*[a.format(npz=ragged_npz, tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not any(tmp_path.glob("*.zarr"))


def test_calculate_class_is_analyze_class(tmp_path, ragged_store):
    seed = run("calculate", "--input", ragged_store, "--analyze-class", 3, "--top-k", 2, "-q")
    short = run("calculate", "--input", ragged_store, "--class", 3, "--top-k", 2, "-q")
    assert seed.exit_code == short.exit_code == 0
    assert "Top samples of class 3" in seed.output and short.output == seed.output


def _trials_npz(path):
    """Random trial records over 3 ragged classes (what `memoxr estimate` reads)."""
    rng = np.random.default_rng(0)
    tr_labels, tt_labels = rng.integers(0, 3, 40), rng.integers(0, 3, 15)
    np.savez(
        path, mask=rng.random((40, 40)) < 0.5, train_correct=rng.random((40, 40)) < 0.8,
        test_correct=rng.random((40, 15)) < 0.7, tr_labels=tr_labels, tt_labels=tt_labels,
    )
    return path


def test_estimate_takes_input_output_and_positional_paths(tmp_path):
    trials = _trials_npz(tmp_path / "trials.npz")
    new = run("estimate", "--input", trials, "--output", tmp_path / "new.zarr", "-q")
    old = run("estimate", trials, tmp_path / "old.zarr", "-q")
    assert new.exit_code == old.exit_code == 0, (new.output, old.output)
    a, b = memoxr.open_influence(tmp_path / "new.zarr"), memoxr.open_influence(tmp_path / "old.zarr")
    np.testing.assert_array_equal(a["tr_mem"].values, b["tr_mem"].values)
    np.testing.assert_array_equal(a["influence"].values, b["influence"].values)


def _dynamics_store(tmp_path):
    from memoxr.dynamics.demo import sample_dataset
    from memoxr.io.storage import write_dataset

    # The shipped recording, 10% noise only, a few epochs: a small store with a mask.
    ds = sample_dataset().sel(noise=[0.1]).isel(epoch=slice(0, 6))
    return write_dataset(ds.chunk({"train_id": 500}), tmp_path / "dyn.zarr")


def test_evaluate_new_names_and_hidden_old_ones_agree(tmp_path):
    store = _dynamics_store(tmp_path)
    help_text = run("evaluate", "--help").output
    assert "--precision-at" in help_text and "--k " not in help_text and "--csv " not in help_text
    new = run("evaluate", "--input", store, "--precision-at", 7, "--output", tmp_path / "new.csv", "-q")
    old = run("evaluate", store, "--k", 7, "--csv", tmp_path / "old.csv")
    assert new.exit_code == old.exit_code == 0, (new.output, old.output)
    new_table, old_table = pd.read_csv(tmp_path / "new.csv"), pd.read_csv(tmp_path / "old.csv")
    pd.testing.assert_frame_equal(new_table, old_table)
    # --precision-at reached the metric: precision at 7 of csl, recomputed here.
    from memoxr.dynamics.demo import sample_dataset

    ds = sample_dataset().sel(noise=0.1).isel(epoch=slice(0, 6))
    mask = ds["is_mislabeled"].values
    csl = ds["loss"].sum("epoch").values
    expected = mask[np.argsort(-csl, kind="stable")[:7]].mean()
    row = new_table[(new_table["proxy"] == "csl") & (new_table["metric"] == "precision_at_k")]
    assert row["value"].item() == pytest.approx(expected)


def test_evaluate_shows_progress_unless_quiet(tmp_path, monkeypatch):
    import memoxr.compute.progress

    store = _dynamics_store(tmp_path)
    shown = []
    real = memoxr.compute.progress.progress

    def spy(show=True, **kwargs):
        shown.append(show)
        return real(show, **kwargs)

    monkeypatch.setattr(memoxr.compute.progress, "progress", spy)
    assert run("evaluate", "--input", store).exit_code == 0
    assert shown[0] is True  # the command's own bar, around all the work
    shown.clear()
    assert run("evaluate", "--input", store, "-q").exit_code == 0
    assert shown and not any(shown)


def test_ingest_takes_input_output_and_positional_paths(tmp_path):
    rng = np.random.default_rng(1)
    for epoch in range(3):
        np.save(tmp_path / f"loss_{epoch}.npy", rng.random(20).astype(np.float32))
    pattern = str(tmp_path / "loss_{epoch}.npy")
    new = run("ingest", "--input", pattern, "--output", tmp_path / "new.zarr", "-q")
    old = run("ingest", pattern, tmp_path / "old.zarr", "-q")
    var = run("ingest", "--var", f"loss={pattern}", tmp_path / "var.zarr", "-q")
    assert new.exit_code == old.exit_code == var.exit_code == 0, (new.output, old.output, var.output)
    expected = np.stack([np.load(tmp_path / f"loss_{e}.npy") for e in range(3)])
    for name in ("new", "old", "var"):
        np.testing.assert_array_equal(memoxr.open_dynamics(tmp_path / f"{name}.zarr")["loss"].values, expected)


# ----------------------------------------------------------------------------- messages say flags

def test_error_messages_name_flags_not_python_keywords(tmp_path, ragged_store, ragged_npz):
    run("calculate", "--input", ragged_store, "--output", tmp_path / "seed.npz", "-q")
    pickled = run("update-csv", "--influence-file", tmp_path / "seed.npz", "--csv-file", tmp_path / "c.csv")
    assert pickled.exit_code == 2
    assert "pass --allow-pickle if you trust this file" in pickled.stderr and "allow_pickle" not in pickled.stderr
    exists = run("convert", "--input", ragged_npz, "--output", ragged_store)
    assert exists.exit_code == 2
    assert "pass --overwrite to replace it" in exists.stderr and "overwrite=" not in exists.stderr
    trials = _trials_npz(tmp_path / "trials.npz")
    full = run("estimate", "--input", trials, "--output", tmp_path / "e.npz", "--full", "-q")
    assert full.exit_code == 2 and "received --full with" in full.stderr and "full=True" not in full.stderr


# ----------------------------------------------------------------------------- update-csv in place

def test_update_csv_updates_its_csv_file_in_place_without_overwrite(tmp_path, ragged_store):
    csv = tmp_path / "stats.csv"
    pd.DataFrame({"class_label": range(6), "comment": list("abcdef")}).to_csv(csv, index=False)
    result = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "-q")
    assert result.exit_code == 0, result.stderr
    merged = pd.read_csv(csv)
    expected = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    assert merged["comment"].tolist() == list("abcdef")
    np.testing.assert_allclose(merged["mean_critical_sample"], expected["mean_critical_sample"], rtol=1e-6)
    # --output naming the same file (another spelling of it) is in place too.
    again = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "--output", tmp_path / "." / "stats.csv", "-q")
    assert again.exit_code == 0, again.stderr
    assert pd.read_csv(csv).equals(merged)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("stats")] == ["stats.csv"]  # no partial left


def test_update_csv_other_output_still_needs_overwrite(tmp_path, ragged_store):
    csv, other = tmp_path / "stats.csv", tmp_path / "other.csv"
    other.write_text("keep me\n")
    result = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "--output", other, "-q")
    assert result.exit_code == 2 and "pass --overwrite to replace it" in result.stderr
    assert other.read_text() == "keep me\n" and not csv.exists()
    result = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "--output", other, "--overwrite", "-q")
    assert result.exit_code == 0 and "mean_critical_sample" in other.read_text()


def test_update_csv_interrupted_leaves_the_old_file(tmp_path, ragged_store, monkeypatch):
    csv = tmp_path / "stats.csv"
    pd.DataFrame({"class_label": range(6), "comment": list("abcdef")}).to_csv(csv, index=False)
    before = csv.read_bytes()

    def dies_half_way(self, path, **kwargs):
        with open(path, "w") as fp:
            fp.write("class_label,mean_")  # half a header, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "-q")
    assert csv.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("stats")] == ["stats.csv"]


# ----------------------------------------------------------------------------- progress

def test_dynamics_demo_shows_progress_per_noise_level_unless_quiet(monkeypatch):
    import memoxr.dynamics.demo as demo

    monkeypatch.setattr(demo, "NOISE_LEVELS", (0.05, 0.10))
    monkeypatch.setattr(demo, "EPOCHS", 2)
    loud = run("dynamics-demo")
    assert loud.exit_code == 0, loud.output
    assert "noise 5%" in loud.stderr and "noise 10%: 2 epochs recorded" in loud.stderr
    assert "csl" in loud.stdout and "10%" in loud.stdout
    quiet = run("dynamics-demo", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout


# ----------------------------------------------------------------------------- demo report

def test_demo_prints_a_short_report_with_facts_from_the_results(tmp_path):
    result = run("demo", "--output", tmp_path / "d", "-q")
    assert result.exit_code == 0, result.stderr
    lines = result.output.splitlines()
    assert len(lines) <= 25
    for name in ["influence.zarr", "scores.zarr", "influence_aware_memo.npz", "per_class_memorization_stats.csv", "analysis.txt"]:
        assert (tmp_path / "d" / name).exists() and any(name in line for line in lines)
    # Fact 1 from the shipped npz, with numpy alone: training samples with memorization exactly 0.
    with np.load(memoxr.sample_path()) as npz:
        classes = sorted(int(k.rsplit("_", 1)[1]) for k in npz.files if k.startswith("tr_classidx_"))
        train = np.concatenate([npz[f"tr_classidx_{k}"] for k in classes])
        memo = npz["tr_mem"][train]
    zeros, high = int((memo == 0).sum()), int((memo >= 0.5).sum())
    assert f"{zeros} of {train.size} training samples ({zeros / train.size:.0%}) have memorization exactly 0; {high} have 0.5 or more." in result.output
    # Fact 3: the pair of methods with the lowest overall Spearman, by scipy.
    from scipy.stats import spearmanr

    scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path())).compute()
    methods = ["original_memo", "influence_weighted_memo", "representativeness_score", "weighted_combination", "critical_sample_score"]
    flat = {m: scores[m].values[~np.isnan(scores[m].values)] for m in methods}
    rho = {(a, b): spearmanr(flat[a], flat[b]).statistic for i, a in enumerate(methods) for b in methods[i + 1:]}
    a, b = min(rho, key=rho.get)
    assert f"disagree most between {a} and {b}: Spearman {rho[a, b]:.2f} overall" in result.output
    # ... and whether ties explain it: the share of samples at each method's most common score.
    share = {}
    for m in (a, b):
        values, counts = np.unique(flat[m], return_counts=True)
        share[m] = (counts.max() / flat[m].size, values[counts.argmax()])
    tied, other = sorted((a, b), key=lambda m: -share[m][0])
    assert share[tied][0] >= 0.5 > 2 * share[other][0]  # the shipped sample: 86% of memorization is 0
    assert (f"Most of that is ties: {tied} gives {share[tied][0]:.0%} of samples the same score "
            f"({share[tied][1]:.3g}), which {other} tells apart.") in result.output
    # The next commands it suggests run.
    suggested = [line.strip() for line in lines if line.strip().startswith("memoxr calculate")]
    assert suggested and run(*suggested[0].split()[1:], "-q").exit_code == 0


def test_demo_facts_on_nan_scores_claim_nothing_false():
    from memoxr.influence.analysis import stats_and_analysis
    from memoxr.workflows import Result, calculate, demo_facts

    scores = calculate(memoxr.sample_path()).scores
    one_nan = scores.assign(critical_sample_score=scores["critical_sample_score"] * np.nan)
    fact = demo_facts(Result(one_nan, *stats_and_analysis(one_nan)))[2]
    assert "critical_sample_score" not in fact  # its NaN correlations are not the lowest
    assert "disagree most between" in fact and "nan" not in fact
    methods = ["original_memo", "influence_weighted_memo", "representativeness_score", "weighted_combination",
               "critical_sample_score"]
    all_nan = scores.assign({m: scores[m] * np.nan for m in methods})
    assert demo_facts(Result(all_nan, *stats_and_analysis(all_nan))) == [
        "No training sample has a memorization value: there is nothing to report."]


# ----------------------------------------------------------------------------- missing extras

def test_missing_s3fs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    result = run("calculate", "--input", "s3://bucket/store.zarr", "-q")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: s3:// paths need s3fs, which is not installed (missing 's3fs'): pip install 'memoxr[s3]' "
        "(from a clone of memoxr: pip install '.[s3]')"
    )


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = run("calculate", "--input", memoxr.sample_path(), "--scheduler", "tcp://127.0.0.1:1", "-q")
    assert result.exit_code == 2
    assert "pip install 'memoxr[distributed]'" in result.stderr and len(result.stderr.splitlines()) == 1


def test_require_reports_the_missing_dependency_itself(monkeypatch, tmp_path):
    from memoxr._optional import require
    from memoxr.errors import MissingExtraError

    assert require("json", "plot") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"^figures need matplotlib, .*missing 'matplotlib'.*'memoxr\[plot\]' \(from a clone of memoxr: pip install '\.\[plot\]'\)$"):
        require("matplotlib", "plot")  # an ImportError too, for code that catches those
    # Installed, but one of its own dependencies is missing: that one is named.
    (tmp_path / "feature_with_broken_dependency.py").write_text("import memoxr_not_installed_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError, match="missing 'memoxr_not_installed_dependency'"):
        require("feature_with_broken_dependency", "plot")


def test_unexpected_errors_pass_through_without_the_s3_extra(monkeypatch):
    # Without s3fs (and its aiohttp, botocore) the error handler must still tell
    # object-storage failures from others, not fail on importing them.
    import memoxr.workflows

    for name in ("s3fs", "aiohttp", "botocore", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)

    def fails(*args, **kwargs):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(memoxr.workflows, "calculate", fails)
    with pytest.raises(RuntimeError, match="an unexpected failure"):
        run("calculate", "--input", memoxr.sample_path(), "-q")
