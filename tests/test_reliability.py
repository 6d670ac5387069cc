"""Reliability: a corpus of malformed inputs over every command, and kill tests.

Each corpus case runs ``memoxr`` in this process (click's CliRunner) and must
exit 2 with one ``Error:`` line naming the key or argument, print no
traceback, leave the output folder and the inputs byte-identical, and never
unpickle (a payload whose unpickling would create a file must not create it).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.datasets.synthetic import make_fz_arrays
from memoxr.dynamics.store import ingest
from memoxr.estimate import write_trials

from conftest import RAGGED_TEST, RAGGED_TRAIN, SMALL_CHUNKS

# ------------------------------------------------------------------------------------------------
# Building malformed files


class Payload:
    """Unpickling this creates ``MARKER``: memoxr must never unpickle it."""

    marker = ""

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=True)
    return buf.getvalue()


def npy_header_only(shape, dtype="<f4", body: bytes = b"") -> bytes:
    """A .npy whose header claims ``shape`` followed by only ``body``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


def write_members(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)
    return str(path)


def write_arrays(path: Path, arrays: dict, **raw: bytes) -> str:
    """An npz of ``arrays`` (keys mapped to None are left out) with some members replaced by raw bytes."""
    members = {k: npy(v) for k, v in arrays.items() if v is not None}
    members.update(raw)
    return write_members(path, members)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``, files by content."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder) + "/"] = ""
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def truncated(array) -> bytes:
    """A .npy whose body stops half way through the data its header announces."""
    data = npy(array)
    return data[: len(data) - np.asarray(array).nbytes // 2]


def corrupt_one_chunk(store: Path, variable: str) -> None:
    chunk = sorted(p for p in (store / variable / "c").rglob("*") if p.is_file())[0]
    chunk.write_bytes(bytes(range(97, 97 + 60)))  # not a blosc frame


# ------------------------------------------------------------------------------------------------
# The inputs (built once) and the corpus


@dataclass
class World:
    inp: Path
    out: Path
    marker: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("reliability")
    inp, out, marker = root / "in", root / "out", root / "unpickled-marker"
    inp.mkdir()
    out.mkdir()
    Payload.marker = str(marker)
    fz = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=11)
    write_arrays(inp / "fz.npz", fz)
    convert_npz(inp / "fz.npz", inp / "fz.zarr", chunks=SMALL_CHUNKS)
    bad = {
        "no_tr_mem": write_arrays(inp / "no_tr_mem.npz", {**fz, "tr_mem": None}),
        "no_matrix": write_arrays(inp / "no_matrix.npz", {**fz, "infl_matrix_class2": None}),
        "no_ttidx": write_arrays(inp / "no_ttidx.npz", {**fz, "tt_classidx_3": None}),
        "str_mem": write_arrays(inp / "str_mem.npz", {**fz, "tr_mem": fz["tr_mem"].astype(str)}),
        "labels_2d": write_arrays(inp / "labels_2d.npz", {**fz, "tr_labels": fz["tr_labels"].reshape(-1, 6)}),
        "matrix_shape": write_arrays(inp / "matrix_shape.npz", {**fz, "infl_matrix_class1": fz["infl_matrix_class1"][:, :-1]}),
        "idx_range": write_arrays(inp / "idx_range.npz", {**fz, "tr_classidx_0": fz["tr_classidx_0"] + 1000}),
        "idx_frac": write_arrays(inp / "idx_frac.npz", {**fz, "tr_classidx_0": fz["tr_classidx_0"] + 0.5}),
        "idx_neg": write_arrays(inp / "idx_neg.npz", {**fz, "tt_classidx_2": -fz["tt_classidx_2"] - 1}),
        "label_wrong": write_arrays(inp / "label_wrong.npz", {**fz, "tt_labels": np.roll(fz["tt_labels"], 1)}),
        "order_int": write_arrays(inp / "order_int.npz", {**fz, "sample_order": np.array(3)}),
        "inf_value": write_arrays(inp / "inf_value.npz", {**fz, "infl_matrix_class4": np.full_like(fz["infl_matrix_class4"], np.inf)}),
        "pickled": write_arrays(inp / "pickled.npz", fz, tr_mem=npy(np.array([Payload()], dtype=object))),
        "huge": write_arrays(inp / "huge.npz", fz, infl_matrix_class0=npy_header_only((2**20, 2**20), body=b"\0" * 64)),
        "truncated": write_arrays(inp / "truncated.npz", fz, tr_mem=truncated(fz["tr_mem"])),
    }
    (inp / "text.npz").write_text("tr_mem,tr_labels\n1,2\n")
    (inp / "not_utf8.csv").write_bytes(b"\xff\xfe junk")
    (inp / "carto").mkdir()
    (inp / "carto" / "dynamics_epoch_0.jsonl").write_bytes(b"\xff\xfe\x00junk\n")
    (inp / "rp_bad").mkdir()
    (inp / "rp_bad" / "settings.json").write_text("{bad")
    xr.Dataset({"a": ("x", np.arange(4.0))}).to_zarr(inp / "foreign.zarr", zarr_format=3, consolidated=False)
    shutil.copytree(inp / "fz.zarr", inp / "damaged.zarr")
    corrupt_one_chunk(inp / "damaged.zarr", "influence")
    scores = memoxr.influence_scores(memoxr.open_influence(inp / "fz.zarr"))
    memoxr.class_stats(scores).to_csv(inp / "stats.csv", index=False)
    memoxr.class_stats(scores).iloc[:-1].to_csv(inp / "fewer_classes.csv", index=False)
    pd.DataFrame({"label": [0, 1]}).to_csv(inp / "no_class_col.csv", index=False)
    np.savez(inp / "seed_payload.npz", **{k: np.array(Payload(), dtype=object) for k in (
        "influence_weighted_memo", "representativeness_score", "weighted_combination",
        "critical_sample_score", "training_indices", "original_memo")})

    # estimate: trial records
    rng = np.random.default_rng(2)
    n_trials, n_train, n_test = 12, 30, 10
    trials = {
        "mask": rng.random((n_trials, n_train)) < 0.7,
        "train_correct": rng.random((n_trials, n_train)) < 0.8,
        "test_correct": rng.random((n_trials, n_test)) < 0.6,
        "tr_labels": np.arange(n_train) % 3,
        "tt_labels": np.arange(n_test) % 3,
    }
    write_trials(trials, inp / "trials.npz")
    write_trials(trials, inp / "trials.zarr")
    shutil.copytree(inp / "trials.zarr", inp / "t_damaged.zarr")
    corrupt_one_chunk(inp / "t_damaged.zarr", "mask")
    for name, arrays, raw in (
        ("t_no_mask", {**trials, "mask": None}, {}),
        ("t_mask_3", {**trials, "mask": trials["mask"].astype(np.int64) * 3}, {}),
        ("t_mask_shape", {**trials, "mask": trials["mask"][:, :-1]}, {}),
        ("t_labels_frac", {**trials, "tr_labels": trials["tr_labels"] + 0.5}, {}),
        ("t_labels_str", {**trials, "tt_labels": trials["tt_labels"].astype(str)}, {}),
        ("t_pickled", trials, {"mask": npy(np.array([Payload()], dtype=object))}),
        ("t_huge", trials, {"mask": npy_header_only((2**22, 2**20), "|b1", b"\0" * 8)}),
        ("t_truncated", trials, {"test_correct": truncated(trials["test_correct"])}),
    ):
        bad[name] = write_arrays(inp / f"{name}.npz", arrays, **raw)

    # trials-from-runs: a released folder layout
    def run_arrays(t):
        kept = np.sort(rng.permutation(n_train)[:21])
        removed = np.setdiff1d(np.arange(n_train), kept)
        return {
            "correctness_train": rng.random(21) < 0.9, "correctness_removed": rng.random(9) < 0.5,
            "correctness_test": rng.random(n_test) < 0.6, "index_train": kept, "index_removed": removed,
            "index_test": np.arange(n_test), "subsample_idx": kept,
        }

    for folder, change in (
        ("runs_ok", {}),
        ("runs_nokey", {"index_test": None}),
        ("runs_range", {"index_test": np.arange(n_test) + 50}),
        ("runs_huge", {"index_train": npy_header_only((2**38,), "<i8")}),
        ("runs_pickled", {"correctness_test": npy(np.array([Payload()], dtype=object))}),
    ):
        for t in range(3):
            run = {**run_arrays(t), **{k: v for k, v in change.items() if not isinstance(v, bytes)}}
            raw = {k: v for k, v in change.items() if isinstance(v, bytes)}
            (inp / folder / "exp" / "0.7" / str(t)).mkdir(parents=True)
            write_arrays(inp / folder / "exp" / "0.7" / str(t) / "aux_arrays.npz", run, **raw)
    np.savez(inp / "labels.npz", tr_labels=trials["tr_labels"], tt_labels=trials["tt_labels"])
    write_arrays(inp / "labels_pickled.npz", {"tt_labels": trials["tt_labels"]},
                 tr_labels=npy(np.array([Payload()], dtype=object)))
    (inp / "runs_empty").mkdir()

    # ingest: per-epoch files; evaluate: a dynamics store
    n = 20
    ep = inp / "epochs"
    ep.mkdir()
    for e in range(4):
        np.save(ep / f"loss_epoch_{e}.npy", rng.random(n).astype(np.float32))
    for name, files in {
        "gap": {0: npy(rng.random(n)), 1: npy(rng.random(n)), 3: npy(rng.random(n))},
        "ragged": {0: npy(rng.random(n)), 1: npy(rng.random(n + 1))},
        "huge": {0: npy(rng.random(n)), 1: npy_header_only((2**40,), "<f8")},
        "truncated": {0: npy(rng.random(n)), 1: truncated(rng.random(n))},
        "pickled": {0: npy(rng.random(n)), 1: npy(np.array([Payload()] * n, dtype=object))},
    }.items():
        (inp / f"ep_{name}").mkdir()
        for e, data in files.items():
            (inp / f"ep_{name}" / f"loss_epoch_{e}.npy").write_bytes(data)
    (inp / "ep_npz").mkdir()
    for e in range(2):
        write_members(inp / "ep_npz" / f"loss_epoch_{e}.npz", {"a": npy(rng.random(n)), "b": npy(rng.random(n))})
    (inp / "ids_text.txt").write_text("\n".join(["a", "b"] * (n // 2)))
    np.save(inp / "ids_short.npy", np.arange(n - 1))
    np.save(inp / "truth_short.npy", np.zeros(n - 2, bool))
    is_mislabeled = np.arange(n) % 4 == 0
    ingest(str(ep / "loss_epoch_{epoch}.npy"), inp / "dyn.zarr", chunk_mb=1e-4,
           truth={"is_mislabeled": is_mislabeled, "soft": np.linspace(0, 1, n), "label3": np.arange(n) % 3})
    shutil.copytree(inp / "dyn.zarr", inp / "dyn_damaged.zarr")
    corrupt_one_chunk(inp / "dyn_damaged.zarr", "loss")

    # outputs that exist already
    (out / "taken.zarr").mkdir()
    (out / "taken.zarr" / "keep.txt").write_text("not memoxr's")
    (out / "existing.csv").write_text("class_label,x\n0,1\n")
    (out / "demo").mkdir()
    (out / "demo" / "notes.txt").write_text("mine")
    return World(inp, out, marker)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]  # each must appear in the error line
    usage: bool = False  # a click usage error: usage lines, then the one Error line


def C(id_: str, args: str, *names: str, usage: bool = False) -> Case:
    return Case(id_, tuple(args.split()), names, usage)


CORPUS = [
    # convert: the FZ layout
    C("convert-missing-tr_mem", "convert {in}/no_tr_mem.npz {out}/x.zarr", "tr_mem"),
    C("convert-missing-matrix", "convert {in}/no_matrix.npz {out}/x.zarr", "infl_matrix_class2"),
    C("convert-missing-index", "convert {in}/no_ttidx.npz {out}/x.zarr", "tt_classidx_3"),
    C("convert-string-tr_mem", "convert {in}/str_mem.npz {out}/x.zarr", "tr_mem", "<U"),
    C("convert-2d-labels", "convert {in}/labels_2d.npz {out}/x.zarr", "tr_labels", "1-D"),
    C("convert-matrix-shape", "convert {in}/matrix_shape.npz {out}/x.zarr", "infl_matrix_class1", "shape"),
    C("convert-index-range", "convert {in}/idx_range.npz {out}/x.zarr", "tr_classidx_0", "[0, 42)"),
    C("convert-index-fraction", "convert {in}/idx_frac.npz {out}/x.zarr", "tr_classidx_0", "whole-number"),
    C("convert-index-negative", "convert {in}/idx_neg.npz {out}/x.zarr", "tt_classidx_2"),
    C("convert-label-disagrees", "convert {in}/label_wrong.npz {out}/x.zarr", "tt_labels"),
    C("convert-order-not-string", "convert {in}/order_int.npz {out}/x.zarr", "sample_order"),
    C("convert-infinite-influence", "convert {in}/inf_value.npz {out}/x.zarr", "infl_matrix_class4", "inf"),
    C("convert-pickled", "convert {in}/pickled.npz {out}/x.zarr", "tr_mem", "--allow-pickle"),
    C("convert-huge-header", "convert {in}/huge.npz {out}/x.zarr", "infl_matrix_class0", "4398046511104 bytes"),
    C("convert-truncated-member", "convert {in}/truncated.npz {out}/x.zarr", "tr_mem", "truncated"),
    C("convert-not-zip", "convert {in}/text.npz {out}/x.zarr", "text.npz", "not an npz"),
    C("convert-absent-input", "convert {in}/absent.npz {out}/x.zarr", "absent.npz"),
    C("convert-chunk-tiny", "convert {in}/fz.npz {out}/x.zarr --chunk-mb 1e-9", "--chunk-mb", "between 1 and"),
    C("convert-chunk-huge", "convert {in}/fz.npz {out}/x.zarr --chunk-mb 1e12", "--chunk-mb", "between 1 and"),
    C("convert-chunk-nan", "convert {in}/fz.npz {out}/x.zarr --chunk-mb nan", "--chunk-mb", "positive"),
    C("convert-shard-tiny", "convert {in}/fz.npz {out}/x.zarr --shard-mb 0.01", "--shard-mb", "between 1 and"),
    C("convert-chunk-not-number", "convert {in}/fz.npz {out}/x.zarr --chunk-mb abc", "--chunk-mb", usage=True),
    C("convert-foreign-output", "convert {in}/fz.npz {out}/taken.zarr", "taken.zarr", "exists"),
    # calculate
    C("calculate-absent", "calculate --input {in}/absent.zarr -q", "absent.zarr"),
    C("calculate-foreign-store", "calculate --input {in}/foreign.zarr -q", "foreign.zarr"),
    C("calculate-damaged-store", "calculate --input {in}/damaged.zarr -q", "'influence'", "chunk"),
    C("calculate-huge-header", "calculate --input {in}/huge.npz -q", "infl_matrix_class0"),
    C("calculate-truncated", "calculate --input {in}/truncated.npz -q", "tr_mem", "truncated"),
    C("calculate-pickled", "calculate --input {in}/pickled.npz -q", "tr_mem"),
    C("calculate-unknown-class", "calculate --input {in}/fz.zarr --analyze-class 99 -q", "99"),
    C("calculate-top-k-zero", "calculate --input {in}/fz.zarr --top-k 0 -q", "--top-k", usage=True),
    C("calculate-output-exists", "calculate --input {in}/fz.zarr --output {out}/taken.zarr -q", "taken.zarr"),
    C("calculate-index-range", "calculate --input {in}/idx_range.npz -q", "tr_classidx_0"),
    # update-csv
    C("update-csv-seed-payload", "update-csv --influence-file {in}/seed_payload.npz --csv-file {out}/n.csv -q", "seed_payload.npz", "--allow-pickle"),
    C("update-csv-fewer-classes", "update-csv --influence-file {in}/fz.zarr --csv-file {in}/fewer_classes.csv --output {out}/n.csv -q", "fewer_classes.csv"),
    C("update-csv-no-class-column", "update-csv --influence-file {in}/fz.zarr --csv-file {in}/no_class_col.csv --output {out}/n.csv -q", "class_label"),
    C("update-csv-absent-influence", "update-csv --influence-file {in}/absent.zarr --csv-file {out}/n.csv -q", "absent.zarr"),
    C("update-csv-in-place", "update-csv --influence-file {in}/fz.zarr --csv-file {out}/existing.csv -q", "existing.csv", "classes differ"),
    C("update-csv-damaged", "update-csv --influence-file {in}/damaged.zarr --csv-file {out}/n.csv -q", "'influence'", "chunk"),
    C("update-csv-foreign", "update-csv --influence-file {in}/foreign.zarr --csv-file {out}/n.csv -q", "foreign.zarr"),
    # estimate
    C("estimate-missing-mask", "estimate {in}/t_no_mask.npz {out}/e.zarr -q", "mask"),
    C("estimate-mask-not-binary", "estimate {in}/t_mask_3.npz {out}/e.zarr -q", "mask", "0/1"),
    C("estimate-mask-shape", "estimate {in}/t_mask_shape.npz {out}/e.npz -q", "mask"),
    C("estimate-label-fraction", "estimate {in}/t_labels_frac.npz {out}/e.zarr -q", "tr_labels"),
    C("estimate-label-strings", "estimate {in}/t_labels_str.npz {out}/e.zarr -q", "tt_labels"),
    C("estimate-pickled", "estimate {in}/t_pickled.npz {out}/e.zarr -q", "mask", "pickled"),
    C("estimate-huge-header", "estimate {in}/t_huge.npz {out}/e.zarr -q", "mask", "bytes"),
    C("estimate-truncated", "estimate {in}/t_truncated.npz {out}/e.npz -q", "test_correct", "truncated"),
    C("estimate-foreign-store", "estimate {in}/foreign.zarr {out}/e.zarr -q", "foreign.zarr"),
    C("estimate-damaged-store", "estimate {in}/t_damaged.zarr {out}/e.zarr -q", "'mask'", "chunk"),
    C("estimate-absent", "estimate {in}/absent.npz {out}/e.zarr -q", "absent.npz"),
    C("estimate-chunk-tiny", "estimate {in}/trials.npz {out}/e.zarr --chunk-mb 0.001 -q", "--chunk-mb", "between 1 and"),
    C("estimate-full-npz", "estimate {in}/trials.npz {out}/e.npz --full -q", "full"),
    C("estimate-output-exists", "estimate {in}/trials.zarr {out}/taken.zarr -q", "taken.zarr"),
    # trials-from-runs
    C("runs-missing-key", "trials-from-runs {in}/runs_nokey/exp {out}/t.npz --labels {in}/labels.npz -q", "index_test"),
    C("runs-index-range", "trials-from-runs {in}/runs_range/exp {out}/t.npz --labels {in}/labels.npz -q", "index_test"),
    C("runs-huge-header", "trials-from-runs {in}/runs_huge/exp {out}/t.npz --labels {in}/labels.npz -q", "index_train", "bytes"),
    C("runs-pickled", "trials-from-runs {in}/runs_pickled/exp {out}/t.npz --labels {in}/labels.npz -q", "correctness_test"),
    C("runs-labels-pickled", "trials-from-runs {in}/runs_ok/exp {out}/t.npz --labels {in}/labels_pickled.npz -q", "tr_labels"),
    C("runs-labels-absent", "trials-from-runs {in}/runs_ok/exp {out}/t.npz --labels {in}/absent.npz -q", "absent.npz"),
    C("runs-empty-folder", "trials-from-runs {in}/runs_empty {out}/t.npz --labels {in}/labels.npz -q", "runs_empty"),
    # ingest
    C("ingest-no-epoch-field", "ingest {in}/epochs/loss_epoch_0.npy {out}/d.zarr -q", "{epoch}"),
    C("ingest-epoch-gap", "ingest {in}/ep_gap/loss_epoch_{epoch}.npy {out}/d.zarr -q", "missing epochs"),
    C("ingest-ragged", "ingest {in}/ep_ragged/loss_epoch_{epoch}.npy {out}/d.zarr -q", "loss_epoch_1.npy", "21"),
    C("ingest-huge-header", "ingest {in}/ep_huge/loss_epoch_{epoch}.npy {out}/d.zarr -q", "loss_epoch_1.npy", "bytes"),
    C("ingest-truncated", "ingest {in}/ep_truncated/loss_epoch_{epoch}.npy {out}/d.zarr -q", "loss_epoch_1.npy", "truncated"),
    C("ingest-pickled", "ingest {in}/ep_pickled/loss_epoch_{epoch}.npy {out}/d.zarr -q", "loss_epoch_1.npy", "object"),
    C("ingest-npz-two-arrays", "ingest {in}/ep_npz/loss_epoch_{epoch}.npz {out}/d.zarr -q", "loss_epoch_0.npz", "--npz-key"),
    C("ingest-npz-key-absent", "ingest {in}/ep_npz/loss_epoch_{epoch}.npz {out}/d.zarr --npz-key c -q", "'c'", "--npz-key"),
    C("ingest-sample-ids-text", "ingest {in}/epochs/loss_epoch_{epoch}.npy {out}/d.zarr --sample-ids {in}/ids_text.txt -q", "sample_ids", "ids_text.txt"),
    C("ingest-sample-ids-short", "ingest {in}/epochs/loss_epoch_{epoch}.npy {out}/d.zarr --sample-ids {in}/ids_short.npy -q", "sample_ids", "(20,)"),
    C("ingest-truth-short", "ingest {in}/epochs/loss_epoch_{epoch}.npy {out}/d.zarr --truth t={in}/truth_short.npy -q", "truth 't'"),
    C("ingest-chunk-zero", "ingest {in}/epochs/loss_epoch_{epoch}.npy {out}/d.zarr --chunk-mb 0 -q", "--chunk-mb"),
    C("ingest-bad-var", "ingest --var loss {out}/d.zarr -q", "--var", "NAME=VALUE"),
    C("ingest-output-exists", "ingest {in}/epochs/loss_epoch_{epoch}.npy {out}/taken.zarr -q", "taken.zarr"),
    # evaluate
    C("evaluate-mask-float", "evaluate {in}/dyn.zarr --mask soft", "'soft'", "float64", "('train_id',)"),
    C("evaluate-mask-epoch-dim", "evaluate {in}/dyn.zarr --mask loss", "'loss'", "epoch"),
    C("evaluate-mask-not-binary", "evaluate {in}/dyn.zarr --mask label3", "'label3'", "int64"),
    C("evaluate-mask-absent", "evaluate {in}/dyn.zarr --mask nothing", "'nothing'"),
    C("evaluate-foreign", "evaluate {in}/foreign.zarr", "foreign.zarr"),
    C("evaluate-influence-store-as-dynamics", "evaluate {in}/fz.zarr", "fz.zarr"),
    C("evaluate-damaged", "evaluate {in}/dyn_damaged.zarr --mask is_mislabeled", "'loss'", "chunk"),
    C("evaluate-influence-huge", "evaluate {in}/dyn.zarr --influence {in}/huge.npz", "infl_matrix_class0"),
    C("evaluate-unknown-proxy", "evaluate {in}/dyn.zarr --proxy bogus --mask is_mislabeled", "bogus"),
    C("evaluate-csv-exists", "evaluate {in}/dyn.zarr --mask is_mislabeled --csv {out}/existing.csv", "existing.csv"),
    # plot
    C("plot-absent", "plot {in}/absent.zarr {out}/p -q", "absent.zarr"),
    C("plot-unknown-class", "plot {in}/fz.zarr {out}/p --class 99 -q", "99"),
    C("plot-unknown-score", "plot {in}/fz.zarr {out}/p --score bogus -q", "bogus"),
    C("plot-pickled", "plot {in}/pickled.npz {out}/p -q", "tr_mem"),
    C("plot-damaged", "plot {in}/damaged.zarr {out}/p -q", "'influence'", "chunk"),
    C("plot-output-exists", "plot {in}/fz.zarr {out}/taken.zarr -q", "taken.zarr"),
    # demo
    C("demo-output-exists", "demo --output {out}/demo -q", "demo"),
    # pairs
    C("pairs-absent", "pairs {in}/absent.zarr {out}/p.csv -q", "absent.zarr"),
    C("pairs-pickled", "pairs {in}/pickled.npz {out}/p.csv -q", "tr_mem", "--allow-pickle"),
    C("pairs-huge-header", "pairs {in}/huge.npz {out}/p.csv -q", "infl_matrix_class0"),
    C("pairs-damaged", "pairs {in}/damaged.zarr {out}/p.csv --min-mem 0 -q", "'influence'", "chunk"),
    C("pairs-bad-suffix", "pairs {in}/fz.zarr {out}/p.txt -q", "p.txt", ".csv"),
    C("pairs-no-full", "pairs {in}/fz.zarr {out}/p.csv --full -q", "influence_full"),
    C("pairs-output-exists", "pairs {in}/fz.zarr {out}/existing.csv -q", "existing.csv"),
    C("pairs-dry-run-absent", "pairs {in}/absent.zarr {out}/p.csv --dry-run", "absent.zarr"),
    # align-order
    C("align-order-absent", "align-order {in}/absent.npy {in}/fz.npz {out}/m.npy", "absent.npy"),
    C("align-order-pickled", "align-order {in}/pickled.npz {in}/pickled.npz {out}/m.npy", "pickled.npz"),
    # compare
    C("compare-absent", "compare {in}/absent.zarr --mask is_mislabeled", "absent.zarr"),
    C("compare-foreign", "compare {in}/dyn.zarr {in}/foreign.zarr --mask is_mislabeled", "foreign.zarr"),
    C("compare-mask-absent", "compare {in}/dyn.zarr --mask nothing", "'nothing'"),
    C("compare-csv-exists", "compare {in}/dyn.zarr --mask is_mislabeled --csv {out}/existing.csv", "existing.csv"),
    # convergence
    C("convergence-absent", "convergence {in}/absent.npz {out}/c.csv", "absent.npz"),
    C("convergence-damaged", "convergence {in}/t_damaged.zarr {out}/c.csv", "'mask'", "chunk"),
    C("convergence-fractions", "convergence {in}/trials.npz {out}/c.csv --fractions 0.5,0.2", "fractions", "increasing"),
    C("convergence-figure-not-png", "convergence {in}/trials.npz {out}/c.csv --figure {out}/c.csv", "--figure", ".png"),
    # calculate / estimate / ingest --dry-run
    C("calculate-dry-run-absent", "calculate --input {in}/absent.zarr --dry-run", "absent.zarr"),
    C("calculate-dry-run-pickled", "calculate --input {in}/pickled.npz --dry-run", "tr_mem", "--allow-pickle"),
    C("estimate-dry-run-absent", "estimate {in}/absent.npz {out}/e.zarr --dry-run", "absent.npz"),
    C("ingest-dry-run-missing-epoch", "ingest {in}/ep_gap/loss_epoch_{epoch}.npy {out}/d.zarr --dry-run", "missing epochs"),
    # reproduce
    C("reproduce-foreign-folder", "reproduce {out}/taken.zarr --quick -q", "taken.zarr", "--overwrite"),
    C("reproduce-no-trials", "reproduce {out}/r --trials 0 -q", "trials", "[4, 99999]"),
    C("reproduce-bad-settings", "reproduce {in}/rp_bad --quick -q", "settings.json", "--overwrite"),
    # import-scores
    C("import-aum-not-utf8", "import-scores aum {in}/not_utf8.csv {out}/s.zarr --sample-order x", "not_utf8.csv", "CSV"),
    C("import-plain-not-utf8", "import-scores plain {in}/not_utf8.csv {out}/s.zarr --sample-order x", "not_utf8.csv", "CSV"),
    C("import-cartography-not-utf8", "import-scores cartography {in}/carto {out}/s.zarr --sample-order x", "dynamics_epoch_0.jsonl", "UTF-8"),
    C("import-plain-absent", "import-scores plain {in}/absent.npy {out}/s.zarr --sample-order x", "absent.npy"),
    C("import-plain-pickled", "import-scores plain {in}/pickled.npz {out}/s.zarr --sample-order x", "pickled.npz"),
]


def test_corpus_is_large_and_spans_every_command():
    commands = {case.args[0] for case in CORPUS}
    assert len(CORPUS) >= 60
    assert commands >= {"convert", "calculate", "update-csv", "estimate", "trials-from-runs", "ingest", "evaluate", "plot", "demo",
                        "pairs", "align-order", "compare", "convergence", "import-scores"}
    assert len({case.id for case in CORPUS}) == len(CORPUS)


#: A line of dask's progress bar, as memoxr draws it on stderr.
_PROGRESS_BAR = re.compile(r"\[[# ]*\] \| +\d+% Completed \| .*")


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_malformed_input_is_one_clear_error(world, case):
    args = [a.format(**{"in": world.inp, "out": world.out, "epoch": "{epoch}"}) for a in case.args]
    before_in, before_out = snapshot(world.inp), snapshot(world.out)
    try:
        result = CliRunner().invoke(main, args)
    finally:
        after = set(os.listdir(world.out))
    for name in after - {p.rstrip("/") for p in before_out}:  # a failed case must not spoil the next ones
        shutil.rmtree(world.out / name, ignore_errors=True)
        (world.out / name).unlink(missing_ok=True)
    text = result.stderr
    assert "Traceback" not in result.output + text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output, text)
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    if not case.usage:  # usage errors add click's usage and hint lines around it
        # A computation that ran past the bar's 0.5 s before failing drew its progress bar first (a slow machine).
        lines = [line for line in text.splitlines() if line.strip() and not _PROGRESS_BAR.fullmatch(line.strip())]
        assert lines == errors, text
    for name in case.names:
        assert name in errors[0], (name, errors[0])
    assert not after - {p.rstrip("/") for p in before_out}, "output left behind"
    assert snapshot(world.out) == before_out
    assert snapshot(world.inp) == before_in
    assert not world.marker.exists(), "a pickled payload was unpickled"


# ------------------------------------------------------------------------------------------------
# Kill tests: SIGKILL at moments chosen from measured progress, then rerun


def chunk_files(folder: Path, pattern: str, variable: str | None = None) -> int:
    """Chunk objects written so far under folders matching ``pattern`` (e.g. a partial store),
    of one ``variable`` if given."""
    total = 0
    for d in folder.glob(pattern):
        try:
            total += sum(1 for p in d.rglob(f"{variable}/c/**/*" if variable else "c/**/*") if p.is_file())
        except FileNotFoundError:  # moved into place or removed (a write probe) while counting
            continue
    return total


def run_until(args: list[str], progress, at: int, *, timeout: float = 180.0) -> int:
    """Start ``args``, SIGKILL it once ``progress()`` reaches ``at``; return the progress seen then.

    Fails if the process ends first (the moment was not reached) or nothing happens within ``timeout``.
    """
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child can never block on it
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            while (seen := progress()) < at:
                if proc.poll() is not None:
                    err.seek(0)
                    pytest.fail(f"{args[3:5]} ended (status {proc.returncode}) before progress {at}; saw {seen}: "
                                f"{err.read().decode()[-500:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{args[3:5]} reached progress {seen} of {at} in {timeout} s")
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return seen


def memoxr_cli(*args) -> list[str]:
    return [sys.executable, "-c", "from memoxr.cli import main; main()", *map(str, args)]


def assert_absent_or_refused(target: Path) -> None:
    if target.exists():  # only an unfinished store may remain, and it must not open
        with pytest.raises(memoxr.errors.MemoxrInputError):
            memoxr.open_influence(target)


def moments(total: int) -> list[int]:
    """Kill points spread over the run: first chunk, half, nearly all (each launch costs ~3 s of imports)."""
    return sorted({1, max(2, total // 2), max(3, total - 2)})


@pytest.fixture(scope="module")
def big_fz_npz(tmp_path_factory) -> Path:
    """12 MB of influence in ragged classes: a chunk per class at --chunk-mb 1."""
    folder = tmp_path_factory.mktemp("kill-convert")
    train = [512, 300, 480, 512, 200, 512] * 2
    test = [512, 512, 400, 256, 512, 300] * 2
    path = folder / "big.npz"
    np.savez(path, **make_fz_arrays(train, test, seed=3))
    return path


def test_kill_convert_at_several_moments(tmp_path, big_fz_npz):
    reference = tmp_path / "reference.zarr"
    result = CliRunner().invoke(main, ["convert", str(big_fz_npz), str(reference), "--chunk-mb", "1", "-q"])
    assert result.exit_code == 0, result.output
    total = chunk_files(tmp_path, "reference.zarr")
    assert total >= 10  # enough chunks to spread the kills
    target = tmp_path / "out.zarr"
    source = snapshot(big_fz_npz.parent)
    for at in moments(total):
        seen = run_until(memoxr_cli("convert", big_fz_npz, target, "--chunk-mb", 1, "-q"),
                         lambda: chunk_files(tmp_path, ".out.zarr.partial*"), at)
        assert seen < total + 1
        assert_absent_or_refused(target)
    done = subprocess.run(memoxr_cli("convert", big_fz_npz, target, "--chunk-mb", 1, "-q"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    # A conversion is deterministic: the rerun's store equals the reference byte for byte.
    assert snapshot(target) == snapshot(reference)
    assert snapshot(big_fz_npz.parent) == source


@pytest.fixture(scope="module")
def big_trials(tmp_path_factory) -> Path:
    """Trial records whose influence store is a chunk per class (12) at --chunk-mb 1."""
    rng = np.random.default_rng(8)
    n_class, per_train, per_test, n_trials = 12, 512, 512, 16
    tr = np.repeat(np.arange(n_class), per_train)
    tt = np.repeat(np.arange(n_class), per_test)
    tr, tt = tr[: len(tr) - 700], tt[: len(tt) - 300]  # ragged: the last classes are smaller
    trials = {
        "mask": rng.random((n_trials, tr.size)) < 0.7,
        "train_correct": rng.random((n_trials, tr.size)) < 0.8,
        "test_correct": rng.random((n_trials, tt.size)) < 0.6,
        "tr_labels": rng.permutation(tr),
        "tt_labels": rng.permutation(tt),
    }
    trials["mask"][0], trials["mask"][1] = True, False
    return write_trials(trials, tmp_path_factory.mktemp("kill-estimate") / "trials.npz")


def test_kill_estimate_at_several_moments(tmp_path, big_trials):
    reference = tmp_path / "reference.zarr"
    result = CliRunner().invoke(main, ["estimate", str(big_trials), str(reference), "--chunk-mb", "1", "-q"])
    assert result.exit_code == 0, result.output
    # Influence chunks only: its error and sums are written by the same tasks at nearly the same
    # moment, so counting them all could skip past a kill point between two polls.
    total = chunk_files(tmp_path, "reference.zarr", "influence")
    assert total >= 10
    target = tmp_path / "out.zarr"
    for at in moments(total):
        run_until(memoxr_cli("estimate", big_trials, target, "--chunk-mb", 1, "-q"),
                  lambda: chunk_files(tmp_path, ".out.zarr.partial*", "influence"), at)
        assert_absent_or_refused(target)
    done = subprocess.run(memoxr_cli("estimate", big_trials, target, "--chunk-mb", 1, "-q"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert snapshot(target) == snapshot(reference)


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from memoxr.dynamics import DynamicsWriter

    path, n, epochs = sys.argv[1], 200_000, 12
    truth = {"is_mislabeled": np.arange(n) % 7 == 0}
    w = DynamicsWriter(path, samples=n, epochs=epochs, variables={"loss": "float32", "correct": "bool"},
                       runs={"seed": [0, 1]}, truth=truth, sample_order="test")
    pending = {seed: set(w.pending_epochs(run={"seed": seed})) for seed in (0, 1)}
    for epoch in range(epochs):
        for seed in (0, 1):
            if epoch in pending[seed]:
                rng = np.random.default_rng(1000 * seed + epoch)  # the same values whenever rerun
                loss = rng.random(n, dtype=np.float32)
                w.write_epoch(epoch, run={"seed": seed}, loss=loss, correct=loss < 0.5)
    """
)


def epochs_flagged(store: Path) -> int:
    """Epoch flags set so far in a DynamicsWriter store (0 before it exists or while unreadable)."""
    import zarr

    if not (store / "zarr.json").exists():
        return 0
    try:
        return int(np.asarray(zarr.open_array(store / "epoch_complete", mode="r")[...]).sum())
    except Exception:  # a flag chunk caught mid-write: count it next time
        return 0


def test_kill_dynamics_writer_at_several_moments(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(WRITER_SCRIPT)
    reference, target = tmp_path / "reference.zarr", tmp_path / "out.zarr"
    done = subprocess.run([sys.executable, script, reference], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    expected = memoxr.dynamics.open_dynamics(reference).load()
    assert expected.sizes["epoch"] == 12
    for at in (1, 11, 21):  # of 24 epoch flags (12 epochs x 2 seeds)
        seen = run_until([sys.executable, str(script), str(target)], lambda: epochs_flagged(target), at)
        # Only epochs flagged for every run are visible, and they hold exactly the values written.
        ds = memoxr.dynamics.open_dynamics(target).load()
        assert ds.sizes["epoch"] >= seen // 2
        xr.testing.assert_identical(ds, expected.isel(epoch=slice(0, ds.sizes["epoch"])))
    done = subprocess.run([sys.executable, script, target], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    xr.testing.assert_identical(memoxr.dynamics.open_dynamics(target).load(), expected)
    # Each epoch's chunks are written whole with the same values, so the files match too, except
    # Zarr's own temporary files ("<chunk>.<uuid>.partial", empty) that a kill mid-write leaves
    # inside the store: never read, but not removed by the resumed run either.
    leftovers = {k for k in snapshot(target) if k.endswith(".partial")}
    assert {k: v for k, v in snapshot(target).items() if k not in leftovers} == snapshot(reference)


# ------------------------------------------------------------------------------------------------
# The checks refuse only bad data


def test_ingest_reads_the_member_it_checked(tmp_path):
    rng = np.random.default_rng(0)
    a = [rng.random(9) for _ in range(3)]
    b = [rng.random(9).astype(np.float32) for _ in range(3)]
    for e in range(3):
        write_members(tmp_path / f"two_{e}.npz", {"a": npy(a[e]), "b": npy(b[e])})
        # One array plus a non-array member: the array is read, whatever the member order.
        with zipfile.ZipFile(tmp_path / f"one_{e}.npz", "w") as archive:
            archive.writestr("README.txt", "not an array")
            archive.writestr("loss.npy", npy(b[e]))
    two = ingest(str(tmp_path / "two_{epoch}.npz"), tmp_path / "two.zarr", npz_key="b")
    one = ingest(str(tmp_path / "one_{epoch}.npz"), tmp_path / "one.zarr")
    for store in (two, one):
        ds = memoxr.dynamics.open_dynamics(store)
        assert ds["loss"].dtype == np.float32
        np.testing.assert_array_equal(ds["loss"].values, np.stack(b))


def test_fortran_order_and_compressed_members_still_load(tmp_path):
    fz = make_fz_arrays(RAGGED_TRAIN, RAGGED_TEST, seed=2)
    fz["infl_matrix_class3"] = np.asfortranarray(fz["infl_matrix_class3"])
    np.savez_compressed(tmp_path / "f.npz", **fz)
    ds = memoxr.open_influence(convert_npz(tmp_path / "f.npz", tmp_path / "f.zarr", chunks=SMALL_CHUNKS))
    c = list(ds["class"].values).index(3)
    n_tr, n_tt = fz["infl_matrix_class3"].shape
    np.testing.assert_array_equal(ds["influence"].values[c, :n_tr, :n_tt], fz["infl_matrix_class3"])


def test_numeric_sample_ids_text_and_integer_mask(tmp_path, world):
    (tmp_path / "ids.txt").write_text("\n".join(str(100 + i) for i in range(20)))
    store = ingest(str(world.inp / "epochs" / "loss_epoch_{epoch}.npy"), tmp_path / "d.zarr",
                   sample_ids=str(tmp_path / "ids.txt"), truth={"flag": (np.arange(20) % 4 == 0).astype(np.int8)})
    ds = memoxr.dynamics.open_dynamics(store)
    assert list(ds["train_id"].values[:2]) == [100, 101]
    table = memoxr.dynamics.evaluate(ds, mask="flag")  # 0/1 integers are a mask
    assert set(table["metric"]) >= {"auroc"}
