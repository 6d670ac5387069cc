"""Checks written once and used everywhere: the NAME=VALUE parser of the commands, the refusal of
pickled arrays, the class-label check, and compare's report (table and CSV from one function)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from memoxr.cli.main import main
from memoxr.errors import MemoxrInputError, OutputExistsError

PICKLED = "received dtype object (pickled Python objects), which memoxr does not load"


def _error(args: list[str]) -> str:
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2, done.output
    return " ".join(done.output.split())


# --------------------------------------------------------------------------- NAME=VALUE options

COMMANDS = {
    "ingest --var": (["ingest", "--output", "{out}/d.zarr"], "--var", "NAME=VALUE"),
    "ingest --truth": (["ingest", "--input", "{out}/l_{{epoch}}.npy", "--output", "{out}/d.zarr"], "--truth", "NAME=VALUE"),
    "compare --sel": (["compare", "{out}/a.zarr", "--mask", "m"], "--sel", "DIM=VALUE"),
    "compare --mapping": (["compare", "{out}/a.zarr", "{out}/b.zarr", "--mask", "m"], "--mapping", "ORDER=FILE"),
    "import-scores --truth": (["import-scores", "plain", "{out}/s.npy", "{out}/s.zarr", "--sample-order", "x"],
                              "--truth", "NAME=FILE"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_name_value_option_refuses_the_same_way(command, tmp_path):
    args, option, form = COMMANDS[command]
    args = [a.format(out=tmp_path) for a in args]
    np.save(tmp_path / "l_0.npy", np.zeros(3))
    np.save(tmp_path / "s.npy", np.zeros(3))
    # No '=', an empty name, an empty value: each named with the option, the form and the item.
    for item in ("noise", "=x", "noise="):
        assert f"{option} {item!r}: expected" in _error([*args, option, item])
        assert form in _error([*args, option, item])
    # A name given twice is ambiguous (which value wins?), never silently the last.
    message = _error([*args, option, "noise=a.npy", option, "noise=b.npy"])
    assert f"{option}: 'noise' given twice; expected each name once" in message
    assert not any(p.suffix == ".zarr" for p in tmp_path.iterdir())


def test_values_keep_their_equals_signs():
    from memoxr.cli.options import name_value_pairs

    parsed = name_value_pairs(["loss=runs/noise=0.1/loss_{epoch}.npy", "acc=a.npy"], "--var", example="loss=a.npy")
    assert parsed == {"loss": "runs/noise=0.1/loss_{epoch}.npy", "acc": "a.npy"}


# --------------------------------------------------------------------------- pickled arrays


def _pickled_npz(path, **good):
    np.savez(path, **good, bad=np.array([object(), 1], dtype=object))
    return str(path)


def test_every_reader_refuses_pickled_arrays_with_one_text(tmp_path):
    from memoxr.dynamics import ingest
    from memoxr.dynamics.files import load_array
    from memoxr.io.npz import load_npz_arrays, open_npz

    path = _pickled_npz(tmp_path / "p.npz")

    def member():
        with open_npz(path) as npz:
            return npz["bad"]

    np.save(tmp_path / "loss_0.npy", np.array([object(), 1], dtype=object), allow_pickle=True)
    calls = {
        "load_npz_arrays": lambda: load_npz_arrays(path, ["bad"], what="input", expected="numbers"),
        "open_npz": member,
        "load_array": lambda: load_array(path, argument="sample_ids"),
        "ingest": lambda: ingest(str(tmp_path / "loss_{epoch}.npy"), tmp_path / "d.zarr"),
    }
    for name, call in calls.items():
        with pytest.raises(MemoxrInputError) as caught:
            call()
        assert str(caught.value).endswith(PICKLED), (name, str(caught.value))
    assert not (tmp_path / "d.zarr").exists()


def test_trial_records_and_held_out_labels_refuse_pickles_alike(tmp_path):
    from memoxr.convert.heldout_files import read_labels
    from memoxr.datasets.examples import tiny_trials
    from memoxr.estimate.trials import read_records

    records = tiny_trials()
    np.savez(tmp_path / "t.npz", **{**records, "tr_labels": np.array([0, 0], dtype=object)})
    np.savez(tmp_path / "labels.npz", tr_labels=np.array([0, 0], dtype=object), tt_labels=np.array([0]))
    with pytest.raises(MemoxrInputError, match=re.escape(f"key 'tr_labels': expected a numeric or bool array, {PICKLED}")):
        read_records(str(tmp_path / "t.npz"), chunk_mb=1.0)
    with pytest.raises(MemoxrInputError, match=re.escape(f"key 'tr_labels': expected integer class labels, {PICKLED}")):
        read_labels(str(tmp_path / "labels.npz"))
    # In memory (never unpickled, yet not numbers): the same words.
    with pytest.raises(MemoxrInputError, match=re.escape(f"labels '<memory>': key 'tr_labels': expected integer class labels, {PICKLED}")):
        read_labels({"tr_labels": np.array([0, None], dtype=object), "tt_labels": [0]})


# --------------------------------------------------------------------------- class labels

BAD_LABELS = {
    "fraction": (np.array([0.0, 1.5, 2.0]), "expected whole-number class labels >= 0, received 1.5 at position 1"),
    "negative": (np.array([0, 3, -2]), "expected whole-number class labels >= 0, received -2 at position 2"),
    "nan": (np.array([np.nan, 1.0]), "expected whole-number class labels >= 0, received nan at position 0"),
    "text": (np.array(["a", "b"]), "expected integer class labels, received dtype <U1"),
    "2-D": (np.zeros((2, 2), int), "expected a non-empty 1-D array, received shape (2, 2)"),
    "empty": (np.zeros(0, int), "expected a non-empty 1-D array, received shape (0,)"),
}


def _reference_labels(labels):
    """Independent check: whole numbers >= 0 in a 1-D array, else None."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iuf":
        return None
    out = []
    for value in labels.tolist():
        if not (value == value and float(value).is_integer() and value >= 0):
            return None
        out.append(int(value))
    return out


@pytest.mark.parametrize("case", BAD_LABELS)
def test_one_label_check_for_trials_and_held_out_runs(case):
    from memoxr.convert.heldout_files import read_labels
    from memoxr.estimate.trials import validate_labels

    labels, message = BAD_LABELS[case]
    assert _reference_labels(labels) is None
    with pytest.raises(MemoxrInputError, match="^" + re.escape(f"trials 'x': key 'tr_labels': {message}")):
        validate_labels("tr_labels", labels, "x")
    with pytest.raises(MemoxrInputError) as caught:
        read_labels({"tr_labels": labels, "tt_labels": [0]})
    assert str(caught.value) == f"labels '<memory>': key 'tr_labels': {message}"


def test_good_labels_pass_as_int64():
    from memoxr.estimate.trials import validate_labels

    for labels in ([0.0, 3.0, 1.0], np.array([2, 0], np.uint8), np.arange(5)):
        out = validate_labels("tr_labels", labels, "x")
        assert out.dtype == np.int64 and out.tolist() == _reference_labels(labels)


# --------------------------------------------------------------------------- compare's report


def test_compare_report_table_is_the_command_output_and_the_csv(tmp_path):
    from memoxr.importers import import_plain
    from memoxr.importers.compare import compare_scores
    from memoxr.importers.report import compare_report

    rng = np.random.default_rng(3)
    mask = rng.random(40) < 0.3
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "s.npy", mask + rng.random(40))
    store = import_plain(str(tmp_path / "s.npy"), str(tmp_path / "s.zarr"), sample_order="x",
                         truth={"is_mislabeled": str(tmp_path / "mask.npy")})
    expected = compare_scores([store], mask="is_mislabeled")
    csv = tmp_path / "t.csv"
    table = compare_report([store], mask="is_mislabeled", output=csv)
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(pd.read_csv(csv), expected, check_dtype=False)
    # An existing CSV is refused before any work; with --overwrite the command replaces it.
    with pytest.raises(OutputExistsError):
        compare_report([tmp_path / "missing.zarr"], mask="is_mislabeled", output=csv)
    done = CliRunner().invoke(main, ["compare", str(store), "--mask", "is_mislabeled", "--csv", str(csv),
                                     "--overwrite", "-q"])
    assert done.exit_code == 0 and f"wrote {csv}" in done.output, done.output
    pd.testing.assert_frame_equal(pd.read_csv(csv), expected, check_dtype=False)
    # A failing comparison leaves no CSV behind.
    with pytest.raises(MemoxrInputError):
        compare_report([store], mask="absent", output=tmp_path / "none.csv")
    assert not (tmp_path / "none.csv").exists()


def test_one_source_is_not_a_sequence_of_characters(tmp_path):
    # compare_scores("a.zarr") once read each character as a store ("store 'a' does not exist").
    from memoxr.importers import scores_dataset, write_scores
    from memoxr.importers.compare import compare_scores
    from memoxr.importers.report import compare_report

    ds = scores_dataset({"s": [0.9, 0.1, 0.8, 0.3]}, sample_order="tfds", source="x", directions={"s": 1},
                        truth={"is_mislabeled": [1, 0, 0, 1]})
    path = str(write_scores(ds, tmp_path / "s.zarr"))
    expected = compare_scores([path], mask="is_mislabeled")
    for table in (compare_scores(path, mask="is_mislabeled"), compare_report(path, mask="is_mislabeled")):
        assert table.equals(expected)
    assert compare_scores(ds, mask="is_mislabeled")["auroc"].tolist() == expected["auroc"].tolist()
