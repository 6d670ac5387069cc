"""Ingestion from per-epoch files, its documented errors, and the ingest / evaluate / demo CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from memoxr.cli import main
from memoxr.dynamics import ingest, open_dynamics
from memoxr.errors import MemoxrInputError, OutputExistsError
from memoxr.io.storage import write_dataset

N = 5
RUNS, EPOCHS, NOISES = (1, 2), (0, 1, 2), (0.01, 0.1)


def _loss(run: int, epoch: int, noise: float) -> np.ndarray:
    return (np.arange(N) + 10 * epoch + 100 * run + noise).astype(np.float32)


def _write_tree(root: Path, *, skip: tuple | None = None) -> Path:
    d = root / "losses"
    d.mkdir()
    for run in RUNS:
        for epoch in EPOCHS:
            for noise in NOISES:
                if (run, epoch, noise) == skip:
                    continue
                np.save(d / f"loss_cifar100_run{run}_epoch_{epoch}_noise_{noise}.npy", _loss(run, epoch, noise))
                np.savez_compressed(
                    d / f"correct_cifar100_run{run}_epoch_{epoch}_noise_{noise}.npz",
                    data=_loss(run, epoch, noise) % 2 == 0,
                )
    for noise in NOISES:
        np.save(d / f"mislabeled_noise_{noise}.npy", np.arange(N) < round(noise * 30))
    return d


PATTERN = "loss_{dataset}_run{run}_epoch_{epoch}_noise_{noise}.npy"


def test_ingest_two_variables_with_truth(tmp_path: Path) -> None:
    d = _write_tree(tmp_path)
    out = ingest(
        {"loss": str(d / PATTERN), "correct": str(d / PATTERN.replace("loss_", "correct_").replace(".npy", ".npz"))},
        tmp_path / "o.zarr", sample_order="tfds", sample_ids=np.arange(N) * 2,
        truth={"is_mislabeled": str(d / "mislabeled_noise_{noise}.npy")}, chunk_mb=1e-5,
    )
    ds = open_dynamics(out)
    assert ds["loss"].dims == ("run", "noise", "epoch", "train_id")  # the one sample-identity name
    assert ds["dataset"].item() == "cifar100"  # a single-valued field is a scalar coordinate
    assert ds["run"].values.tolist() == [1, 2] and ds["noise"].values.tolist() == [0.01, 0.1]
    assert ds["train_id"].values.tolist() == [0, 2, 4, 6, 8]
    assert ds.attrs["sample_order"] == "tfds"
    assert ds["loss"].dtype == np.float32 and ds["correct"].dtype == bool
    assert len(ds["loss"].chunks[2]) > 1  # several epoch chunks
    for i, run in enumerate(RUNS):
        for j, noise in enumerate(NOISES):
            for k, epoch in enumerate(EPOCHS):
                np.testing.assert_array_equal(ds["loss"].values[i, j, k], _loss(run, epoch, noise))
    assert ds["is_mislabeled"].dims == ("noise", "train_id")
    np.testing.assert_array_equal(ds["is_mislabeled"].values.sum(axis=1), [0, 3])


def test_ingest_variable_field_and_numeric_padding(tmp_path: Path) -> None:
    for var in ("loss", "true_prob"):
        for epoch in (8, 9, 10):
            np.save(tmp_path / f"{var}-e{epoch:03d}.npy", np.full(3, epoch, dtype=np.float64))
    ds = open_dynamics(ingest(str(tmp_path / "{variable}-e{epoch}.npy"), tmp_path / "o.zarr"))
    assert sorted(ds.data_vars) == ["loss", "true_prob"]
    assert ds["epoch"].values.tolist() == [8, 9, 10]  # zero-padded names parsed as numbers
    assert ds.attrs["sample_order"] == "unknown"


def _err_tree(tmp_path: Path, case: str) -> tuple[object, dict]:
    d = tmp_path / "f"
    d.mkdir()
    kwargs: dict = {}
    for epoch in range(3):
        np.save(d / f"loss_epoch_{epoch}.npy", np.zeros(4, np.float32))
    pattern: object = str(d / "loss_epoch_{epoch}.npy")
    if case == "missing":
        np.save(d / "loss_epoch_5.npy", np.zeros(4, np.float32))
    elif case == "missing_run":
        for epoch in (0, 2):
            np.save(d / f"loss_run2_epoch_{epoch}.npy", np.zeros(4, np.float32))
            np.save(d / f"loss_run1_epoch_{epoch}.npy", np.zeros(4, np.float32))
        np.save(d / "loss_run1_epoch_1.npy", np.zeros(4, np.float32))
        pattern = str(d / "loss_run{run}_epoch_{epoch}.npy")
    elif case == "expected":
        kwargs["epochs"] = range(4)
    elif case == "ragged":
        np.save(d / "loss_epoch_1.npy", np.zeros(5, np.float32))
    elif case == "dtype":
        np.save(d / "loss_epoch_2.npy", np.zeros(4, np.float64))
    elif case == "duplicate":
        np.save(d / "loss_epoch_01.npy", np.zeros(4, np.float32))
    elif case == "nomatch":
        pattern = str(d / "grad_epoch_{epoch}.npy")
    elif case == "npz_two":
        np.savez(d / "loss_epoch_1.npy", a=np.zeros(4), b=np.zeros(4))
        (d / "loss_epoch_1.npy").unlink()
        np.savez(d / "z_epoch_0.npz", a=np.zeros(4), b=np.zeros(4))
        pattern = str(d / "z_epoch_{epoch}.npz")
    elif case == "2d":
        np.save(d / "loss_epoch_1.npy", np.zeros((4, 2), np.float32))
    elif case == "object":
        np.save(d / "loss_epoch_1.npy", np.array([None] * 4, dtype=object), allow_pickle=True)
    elif case == "noepoch":
        pattern = str(d / "loss_epoch_{e}.npy")
    elif case == "nofield":
        pattern = str(d / "loss_epoch_1.npy")
    elif case == "fields_differ":
        np.save(d / "acc_run1_epoch_0.npy", np.zeros(4, np.float32))
        pattern = {"loss": str(d / "loss_epoch_{epoch}.npy"), "acc": str(d / "acc_run{run}_epoch_{epoch}.npy")}
    elif case == "ids":
        kwargs["sample_ids"] = np.arange(3)
    elif case == "ids_repeated":
        kwargs["sample_ids"] = np.zeros(4, dtype=int)
    elif case == "truth":
        kwargs["truth"] = {"is_mislabeled": np.zeros(3, bool)}
    elif case == "truth_field":
        kwargs["truth"] = {"is_mislabeled": str(d / "m_{noise}.npy")}
    elif case == "chunk":
        kwargs["chunk_mb"] = 0
    return pattern, kwargs


ERRORS = {
    "missing": r"missing epochs: expected evenly spaced epochs 0..5 \(step 1\); no file for epochs \[3, 4\]",
    "missing_run": r"variable 'loss': missing epochs: 1 of 6 files absent; .*missing: run=2, epoch=1",
    "expected": r"missing epochs: expected epochs \[0, 1, 2, 3\]; no file for epochs \[3\]",
    "ragged": r"ragged lengths: file .*loss_epoch_1.npy' has 5 samples; expected 4",
    "dtype": r"mismatched dtypes for variable 'loss': file .*loss_epoch_2.npy' has float64; expected float32",
    "duplicate": r"duplicate matches for variable 'loss' at \{'epoch': 1\}",
    "nomatch": r"no file matches; expected files like .*grad_epoch_\*.npy",
    "npz_two": r"expected an .npz with exactly one array; received 2",
    "2d": r"shape \(4, 2\); expected a 1-D array",
    "object": "expected numeric or bool values, received dtype object",
    "noepoch": r"no \{epoch\} field",
    "nofield": r"no \{field\}",
    "fields_differ": r"variable 'acc': pattern fields \['run'\]; expected the same run fields as 'loss': \[\]",
    "ids": r"sample_ids: shape \(3,\); expected \(4,\)",
    "ids_repeated": "sample_ids: repeated identities",
    "truth": r"truth 'is_mislabeled': shape \(3,\); expected \(4,\)",
    "truth_field": r"fields \['noise'\]; expected only run fields \[\]",
    "chunk": "chunk_mb must be a positive number",
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_ingest_errors_leave_nothing(tmp_path: Path, case: str) -> None:
    pattern, kwargs = _err_tree(tmp_path, case)
    with pytest.raises(MemoxrInputError, match=ERRORS[case]):
        ingest(pattern, tmp_path / "o.zarr", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_ingest_refuses_existing_output(tmp_path: Path) -> None:
    d = _write_tree(tmp_path)
    ingest(str(d / PATTERN), tmp_path / "o.zarr")
    with pytest.raises(OutputExistsError, match="already exists"):
        ingest(str(d / PATTERN), tmp_path / "o.zarr")
    ingest(str(d / PATTERN), tmp_path / "o.zarr", overwrite=True)


def test_open_dynamics_refuses_other_stores(tmp_path: Path) -> None:
    write_dataset(xr.Dataset({"x": ("sample", np.ones(2))}, attrs={"schema": "memoxr.scores"}), tmp_path / "s.zarr")
    with pytest.raises(MemoxrInputError, match=r"attribute 'schema' is 'memoxr.scores' \(a scores store, as memoxr calculate --output writes\); "
                       r"expected 'memoxr.dynamics' \(a dynamics store, as memoxr ingest writes\)"):
        open_dynamics(tmp_path / "s.zarr")


# ----------------------------------------------------------------------------- CLI


def test_cli_ingest_then_evaluate(tmp_path: Path) -> None:
    d = _write_tree(tmp_path)
    runner = CliRunner()
    out = tmp_path / "o.zarr"
    res = runner.invoke(main, [
        "ingest", "--var", f"loss={d / PATTERN}",
        "--var", f"correct={d / PATTERN.replace('loss_', 'correct_').replace('.npy', '.npz')}",
        "--truth", f"is_mislabeled={d / 'mislabeled_noise_{noise}.npy'}", "--sample-order", "tfds", "-q", str(out),
    ])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output
    # noise 0.01 has no mislabeled sample: evaluate one noise level through a store of its own.
    ds = open_dynamics(out).sel(noise=0.1, drop=True)
    write_dataset(ds, tmp_path / "n.zarr")
    res = runner.invoke(main, ["evaluate", str(tmp_path / "n.zarr"), "--mask", "is_mislabeled", "--table", "auroc"])
    assert res.exit_code == 0, res.output
    assert "csl" in res.output and "forgetting_events" in res.output
    res = runner.invoke(main, ["evaluate", str(tmp_path / "n.zarr"), "--across", "run", "--csv", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    assert "run_a" in res.output and (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["ingest", "PATTERN_ONLY"], "expected PATTERN OUTPUT.zarr"),
        (["ingest", "{here}/x_{epoch}.npy", "OUT.zarr"], "no file matches"),
        (["ingest", "--var", "loss", "OUT.zarr"], "expected NAME=VALUE"),
        (["evaluate", "MISSING.zarr"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_2_and_leaves_nothing(tmp_path: Path, monkeypatch, args: list[str], match: str) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{here}", str(tmp_path)) for a in args]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert match in res.output
    assert list(tmp_path.iterdir()) == []


def test_cli_dynamics_demo_on_shipped_sample() -> None:
    res = CliRunner().invoke(main, ["dynamics-demo", "--sample"])
    assert res.exit_code == 0, res.output
    assert "csl" in res.output and "10%" in res.output


def test_cli_evaluate_refuses_other_sample_order(tmp_path: Path) -> None:
    import memoxr
    from memoxr.dynamics.demo import write_sample

    store = write_sample(tmp_path / "digits.zarr")  # sample_order "sklearn-digits"
    res = CliRunner().invoke(main, ["evaluate", str(store), "--influence", memoxr.sample_path(), "--csv", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert "sample orders differ: dynamics follows 'sklearn-digits', influence follows 'sklearn load_digits, train_test_split" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_truth_pattern_files_are_checked_before_loading(tmp_path):
    """A mis-shaped or pickled truth file behind a pattern is a clear error, and nothing is written."""
    for run in (0, 1):
        for epoch in range(3):
            np.save(tmp_path / f"loss_run{run}_e{epoch}.npy", np.random.default_rng(epoch).random(10))
    np.save(tmp_path / "mask_run0.npy", np.zeros(10, dtype=bool))
    np.save(tmp_path / "mask_run1.npy", np.zeros((2, 5), dtype=bool))
    pattern = str(tmp_path / "loss_run{run}_e{epoch}.npy")
    truth = {"is_mislabeled": str(tmp_path / "mask_run{run}.npy")}
    with pytest.raises(MemoxrInputError, match=r"truth 'is_mislabeled': file .*mask_run1.npy' holds bool of shape \(2, 5\); expected a numeric array of shape \(10,\)"):
        ingest(pattern, tmp_path / "out.zarr", truth=truth)
    np.save(tmp_path / "mask_run1.npy", np.array([None] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(MemoxrInputError, match="received dtype object"):
        ingest(pattern, tmp_path / "out.zarr", truth=truth)
    for run in (0, 1):
        np.savez(tmp_path / f"mask_run{run}.npz", a=np.zeros(10, bool), b=np.ones(10, bool))
    truth_npz = {"is_mislabeled": str(tmp_path / "mask_run{run}.npz")}  # --npz-key is the records' option, not the truth's
    with pytest.raises(MemoxrInputError, match=r"exactly one array; received 2 \(\['a', 'b'\]\)$"):
        ingest(pattern, tmp_path / "out.zarr", truth=truth_npz)
    assert not (tmp_path / "out.zarr").exists()
