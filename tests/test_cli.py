"""The memoxr command end to end: outputs, the seed's npz layout, exit codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.legacy import SEED_KEYS, read_seed_npz

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
    from memoxr.storage import open_dataset

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
    assert result.exit_code == 2 and "already exists" in result.stderr
    result = run("update-csv", "--influence-file", ragged_store, "--csv-file", csv, "--overwrite", "-q")
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
        (["calculate", "--input", "{store}", "--output", "{store}"], "already exists"),
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
