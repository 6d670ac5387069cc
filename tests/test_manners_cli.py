"""``--skipna/--no-skipna``: one shared option on calculate, evaluate, update-csv and compare.

Neither flag is the library's ``skipna=None``; ``--skipna`` is ``True`` (as before) and
``--no-skipna`` is ``False``. Each command's output is checked against the library call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
import memoxr.dynamics as dyn
from memoxr.cli import main
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.importers.compare import compare_scores
from memoxr.io.storage import write_dataset

from conftest import RAGGED_TEST, RAGGED_TRAIN, write_npz

COMMANDS = ["calculate", "evaluate", "update-csv", "compare"]
FLAGS = {None: [], True: ["--skipna"], False: ["--no-skipna"]}


@pytest.fixture(scope="module")
def nan_npz(tmp_path_factory):
    arrays = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11)
    arrays["infl_matrix_class0"][1, 2] = np.nan  # one NaN inside a real row
    arrays["infl_matrix_class3"][4, :] = np.nan  # a row without any value
    return write_npz(tmp_path_factory.mktemp("cli") / "nan.npz", arrays)


@pytest.fixture(scope="module")
def nan_dynamics(tmp_path_factory):
    rng = np.random.default_rng(4)
    loss = rng.gamma(2.0, 1.0, (2, 6, 20))  # (noise, epoch, train_id)
    loss[0, 2, 3] = np.nan  # a missing epoch
    loss[1, :, 7] = np.nan  # a sample never recorded in one run
    mislabeled = np.zeros(20, dtype=bool)
    mislabeled[[1, 4, 9, 15]] = True
    ds = xr.Dataset(
        {"loss": (("noise", "epoch", "train_id"), loss), "is_mislabeled": ("train_id", mislabeled)},
        coords={"noise": [0.1, 0.2], "epoch": np.arange(6), "train_id": np.arange(20)},
        attrs={"schema": dyn.DYNAMICS_SCHEMA, "schema_version": 1, "sample_order": "tfds"},
    )
    path = tmp_path_factory.mktemp("cli") / "dyn.zarr"
    write_dataset(ds.chunk({"epoch": 4, "train_id": 8}), path)
    return str(path), ds


def _invoke(args):
    result = CliRunner().invoke(main, [*args, "-q"])
    assert result.exit_code == 0, result.output
    return result


def _same(got: pd.DataFrame, expected: pd.DataFrame):
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False,
                                  rtol=1e-12)


@pytest.mark.parametrize("command", COMMANDS)
def test_one_shared_option_in_every_help(command):
    text = " ".join(_invoke([command, "--help"]).output.split())
    assert "--skipna / --no-skipna" in text
    assert "samples with a NaN score are left out of rankings and metrics" in text


@pytest.mark.parametrize("skipna", list(FLAGS))
def test_calculate(tmp_path, nan_npz, skipna):
    csv = tmp_path / "stats.csv"
    output = _invoke(["calculate", "--input", nan_npz, "--stats-csv", str(csv), *FLAGS[skipna]]).output
    scores = memoxr.influence_scores(memoxr.open_influence(nan_npz), skipna=skipna).compute()
    table = memoxr.class_stats(scores, skipna=skipna)
    _same(pd.read_csv(csv), table)
    assert str(memoxr.analyze(scores, table, skipna=skipna)) in output
    assert np.isnan(table.loc[0, "mean_infl_weighted_memo"]) == (skipna is not True)


@pytest.mark.parametrize("skipna", list(FLAGS))
def test_update_csv(tmp_path, nan_npz, skipna):
    csv = tmp_path / "stats.csv"
    _invoke(["update-csv", "--influence-file", nan_npz, "--csv-file", str(csv), *FLAGS[skipna]])
    scores = memoxr.influence_scores(memoxr.open_influence(nan_npz), skipna=skipna)
    expected = memoxr.class_stats(scores, skipna=skipna)
    _same(pd.read_csv(csv), expected)
    assert np.isnan(expected.loc[0, "mean_infl_weighted_memo"]) == (skipna is not True)


@pytest.mark.parametrize("skipna", list(FLAGS))
def test_evaluate(tmp_path, nan_dynamics, skipna):
    path, ds = nan_dynamics
    csv = tmp_path / "eval.csv"
    _invoke(["evaluate", "--input", path, "--proxy", "csl", "--output", str(csv), *FLAGS[skipna]])
    expected = dyn.evaluate(ds, proxies=["csl"], skipna=skipna)
    _same(pd.read_csv(csv), expected)
    auroc = expected[(expected["metric"] == "auroc") & (expected["noise"] == 0.2)]
    assert auroc["n"].item() == (20 if skipna is False else 19)
    assert np.isnan(auroc["value"].item()) == (skipna is False)


@pytest.mark.parametrize("skipna", list(FLAGS))
def test_compare(tmp_path, nan_dynamics, skipna):
    path, ds = nan_dynamics
    csv = tmp_path / "compare.csv"
    _invoke(["compare", path, "--mask", "is_mislabeled", "--proxy", "csl", "--csv", str(csv), *FLAGS[skipna]])
    expected = compare_scores([path], mask="is_mislabeled", proxies=["csl"], skipna=skipna)
    _same(pd.read_csv(csv), expected.astype({"n_mask": int}))
    first = expected[expected["noise"] == 0.1]  # its NaN is one missing epoch: skipped with --skipna only
    assert first["n_mask"].item() == (20 if skipna is not None else 19)
    assert np.isnan(first["auroc"].item()) == (skipna is False)
