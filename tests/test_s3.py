"""Object storage for real: moto's standalone S3 server on 127.0.0.1, started here on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid

import boto3
import numpy as np
import pandas as pd
import pytest
import s3fs
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz, fz_npz
from memoxr.errors import IncompleteStoreError, MemoxrInputError, OutputExistsError
from memoxr.storage import open_dataset

from conftest import SMALL_CHUNKS

SECRET = "not-a-real-secret-7f3a"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto(env_extra: dict[str, str] | None = None):
    port = _free_port()
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_endpoint():
    proc, url = _start_moto()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def options(s3_endpoint):
    return {"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}


@pytest.fixture
def bucket(s3_endpoint, options):
    name = f"memoxr-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                          aws_secret_access_key=SECRET, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.rm(name, recursive=True)


def _fs(options):
    return s3fs.S3FileSystem(**options, skip_instance_cache=True)


def test_convert_to_s3_equals_local(tmp_path, ragged_npz, ragged_store, bucket, options):
    url = f"s3://{bucket}/ragged.zarr"
    convert_npz(ragged_npz, url, chunks=SMALL_CHUNKS, storage_options=options)
    remote = memoxr.open_influence(url, storage_options=options)
    local = memoxr.open_influence(ragged_store)
    # Small chunks are grouped into shards on object storage: fewer, larger objects.
    keys = _fs(options).find(f"{bucket}/ragged.zarr/influence")
    local_keys = [p for p in (tmp_path / "ragged.zarr" / "influence").rglob("*") if p.is_file()]
    assert len(keys) < len(local_keys)
    xr.testing.assert_equal(remote.load().drop_attrs(), local.load().drop_attrs())
    scores_remote = memoxr.influence_scores(memoxr.open_influence(url, storage_options=options))
    scores_local = memoxr.influence_scores(local)
    xr.testing.assert_allclose(scores_remote.compute(), scores_local.compute(), rtol=1e-6)
    pd.testing.assert_frame_equal(memoxr.class_stats(scores_remote), memoxr.class_stats(scores_local), rtol=1e-6)
    assert SECRET not in json.dumps(remote.attrs) and SECRET not in repr(remote)


def test_npz_on_s3_is_read_in_place(ragged_npz, ragged_store, bucket, options):
    _fs(options).put_file(ragged_npz, f"{bucket}/in/ragged.npz")
    ds = memoxr.open_influence(f"s3://{bucket}/in/ragged.npz", storage_options=options)
    xr.testing.assert_allclose(
        memoxr.influence_scores(ds).compute().drop_attrs(),
        memoxr.influence_scores(memoxr.open_influence(ragged_store)).compute().drop_attrs(),
        rtol=1e-6,
    )


def test_cli_with_minio_credentials_file(tmp_path, ragged_npz, ragged_store, bucket, s3_endpoint):
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({
        "url": f"{s3_endpoint}/api/v1/service-account-credentials", "endpoint": s3_endpoint.removeprefix("http://"),
        "accessKey": "testing", "secretKey": SECRET, "api": "s3v4", "path": "auto",
    }))
    base = f"s3://{bucket}/run"
    runner = CliRunner()
    for args in (
        ["convert", ragged_npz, f"{base}/influence.zarr", "-q"],
        ["calculate", "--input", f"{base}/influence.zarr", "--output", f"{base}/scores.zarr",
         "--stats-csv", f"{base}/stats.csv", "-q"],
        ["update-csv", "--influence-file", f"{base}/scores.zarr", "--csv-file", f"{base}/merged.csv", "-q"],
    ):
        result = runner.invoke(main, [*map(str, args), "--credentials", str(credentials)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    options = {"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": s3_endpoint}}
    expected = memoxr.class_stats(memoxr.influence_scores(memoxr.open_influence(ragged_store)))
    for name in ("stats.csv", "merged.csv"):
        with _fs(options).open(f"{bucket}/run/{name}") as fp:
            pd.testing.assert_frame_equal(pd.read_csv(fp), expected, check_dtype=False, rtol=1e-6)
    scores = open_dataset(f"{base}/scores.zarr", storage_options=options)
    assert scores.attrs["schema"] == "memoxr.scores"
    # The output exists now: replacing it needs --overwrite.
    result = runner.invoke(main, ["convert", ragged_npz, f"{base}/influence.zarr", "--credentials", str(credentials)])
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_storage_options_json_on_the_cli(ragged_npz, bucket, options):
    url = f"s3://{bucket}/j.zarr"
    result = CliRunner().invoke(main, ["convert", ragged_npz, url, "-q", "--storage-options", json.dumps(options)])
    assert result.exit_code == 0, result.output
    assert memoxr.open_influence(url, storage_options=options).attrs["source_name"] == "ragged.npz"
    result = CliRunner().invoke(main, ["convert", ragged_npz, url, "--storage-options", "{not json"])
    assert result.exit_code == 2 and "--storage-options: expected a JSON object" in result.stderr


def test_failed_upload_leaves_nothing(ragged_npz, bucket, options, monkeypatch):
    calls = []
    original = fz_npz._load_class_block

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("network down")
        return original(*args, **kwargs)

    monkeypatch.setattr(fz_npz, "_load_class_block", failing)
    url = f"s3://{bucket}/x.zarr"
    with pytest.raises(RuntimeError, match="network down"):
        convert_npz(ragged_npz, url, chunks=SMALL_CHUNKS, shard_mb=1e-4, storage_options=options)
    assert not _fs(options).exists(f"{bucket}/x.zarr")


def test_killed_upload_is_refused_then_rerun_finishes(tmp_path, ragged_npz, bucket, options):
    """A conversion killed with SIGKILL mid-upload: the store is refused on open; a rerun completes it."""
    url = f"s3://{bucket}/killed.zarr"
    script = tmp_path / "slow_convert.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from memoxr.convert import convert_npz, fz_npz
        from memoxr._chunks import BlockChunks
        original = fz_npz._load_class_block
        def slow(*args, **kwargs):
            time.sleep(0.5)
            return original(*args, **kwargs)
        fz_npz._load_class_block = slow
        convert_npz({ragged_npz!r}, {url!r}, chunks=BlockChunks(1, 4, 3), shard_mb=1e-4,
                    storage_options={options!r})
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "DASK_SCHEDULER": "synchronous"})
    fs = _fs(options)
    deadline = time.monotonic() + 60
    while not fs.exists(f"{bucket}/killed.zarr/zarr.json"):
        fs.invalidate_cache()
        assert proc.poll() is None, "the conversion ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.6)
    proc.kill()
    proc.wait()
    fs.invalidate_cache()
    with pytest.raises(IncompleteStoreError, match="store is incomplete"):
        memoxr.open_influence(url, storage_options=options)
    convert_npz(ragged_npz, url, storage_options=options)  # no --overwrite needed for an unfinished store
    assert memoxr.open_influence(url, storage_options=options).attrs["source_name"] == "ragged.npz"
    with pytest.raises(OutputExistsError):
        convert_npz(ragged_npz, url, storage_options=options)


def test_missing_bucket(ragged_npz, options):
    with pytest.raises(MemoxrInputError, match="'s3://no-such-bucket-memoxr/x.zarr': bucket 'no-such-bucket-memoxr' does not exist"):
        convert_npz(ragged_npz, "s3://no-such-bucket-memoxr/x.zarr", storage_options=options)
    with pytest.raises(MemoxrInputError, match="does not exist"):
        memoxr.open_influence("s3://no-such-bucket-memoxr/x.zarr", storage_options=options)


def test_wrong_credentials_give_a_clear_error_without_the_secret(ragged_npz):
    proc, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # this server checks keys
    try:
        options = {"key": "wrong", "secret": SECRET, "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}}
        with pytest.raises(MemoxrInputError, match="cannot access 's3://bucket/x.zarr': Forbidden; check the credentials") as info:
            convert_npz(ragged_npz, "s3://bucket/x.zarr", storage_options=options)
        assert SECRET not in str(info.value)
        result = CliRunner().invoke(main, ["convert", ragged_npz, "s3://bucket/x.zarr", "--storage-options", json.dumps(options)])
        assert result.exit_code == 2 and SECRET not in result.output and SECRET not in result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ingest_from_a_bucket_laid_out_like_the_seed(tmp_path, bucket, options):
    """One np.savez_compressed(data=...) object per epoch, as the seed's MinIO users keep them."""
    import io

    rng = np.random.default_rng(0)
    losses = rng.random((6, 50)).astype(np.float32)
    fs = _fs(options)
    for epoch, values in enumerate(losses):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, data=values)
        fs.pipe(f"{bucket}/losses/loss_cifar100_run1_epoch_{epoch}_noise_0.01.npz", buffer.getvalue())
    from memoxr.dynamics import ingest, open_dynamics

    pattern = f"s3://{bucket}/losses/loss_{{dataset}}_run{{run}}_epoch_{{epoch}}_noise_{{noise}}.npz"
    ingest(pattern, tmp_path / "dyn.zarr", sample_order="torchvision", storage_options=options)
    ds = open_dynamics(tmp_path / "dyn.zarr")
    np.testing.assert_array_equal(ds["loss"].squeeze().values, losses)
    csl = memoxr.csl(ds["loss"]).squeeze().values
    np.testing.assert_allclose(csl, losses.astype(np.float64).sum(axis=0), rtol=1e-6)


def test_estimate_ingest_and_evaluate_on_s3(tmp_path, bucket, options):
    """The remaining commands read and write s3:// too: estimate (trials in, store out), ingest, evaluate."""
    from memoxr.estimate import estimate, write_trials

    rng = np.random.default_rng(1)
    mask = rng.random((30, 20)) < 0.7
    mask[0], mask[1] = True, False
    trials = {
        "mask": mask, "train_correct": rng.random((30, 20)) < 0.8, "test_correct": rng.random((30, 9)) < 0.6,
        "tr_labels": np.arange(20) % 2, "tt_labels": np.arange(9) % 2,
    }
    write_trials(trials, tmp_path / "trials.npz")
    fs = _fs(options)
    fs.put_file(str(tmp_path / "trials.npz"), f"{bucket}/trials.npz")
    so = json.dumps(options)
    runner = CliRunner()
    result = runner.invoke(main, ["estimate", f"s3://{bucket}/trials.npz", f"s3://{bucket}/est.zarr", "-q", "--storage-options", so])
    assert result.exit_code == 0, result.output
    remote = memoxr.open_influence(f"s3://{bucket}/est.zarr", storage_options=options).load()
    np.testing.assert_allclose(remote["memorization"].values, estimate(trials)["memorization"].values)

    for epoch in range(4):
        np.save(tmp_path / f"loss_e{epoch}.npy", rng.random(20).astype(np.float32))
    mislabeled = np.zeros(20, dtype=bool)
    mislabeled[:3] = True
    np.save(tmp_path / "mask.npy", mislabeled)
    result = runner.invoke(main, ["ingest", str(tmp_path / "loss_e{epoch}.npy"), f"s3://{bucket}/dyn.zarr",
                                  "--truth", f"is_mislabeled={tmp_path / 'mask.npy'}", "-q", "--storage-options", so])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", f"s3://{bucket}/dyn.zarr", "--mask", "is_mislabeled", "--proxy", "csl",
                                  "--csv", f"s3://{bucket}/eval.csv", "--storage-options", so])
    assert result.exit_code == 0, result.output
    with fs.open(f"{bucket}/eval.csv") as fp:
        table = pd.read_csv(fp)
    auroc = table[(table.proxy == "csl") & (table.metric == "auroc")]["value"].item()
    losses = np.stack([np.load(tmp_path / f"loss_e{e}.npy") for e in range(4)]).astype(np.float64).sum(axis=0)
    from sklearn.metrics import roc_auc_score

    assert auroc == pytest.approx(roc_auc_score(mislabeled, losses))


def test_overwrite_refuses_to_delete_what_is_not_a_store(ragged_npz, bucket, options):
    fs = _fs(options)
    fs.pipe(f"{bucket}/data/notes.txt", b"precious")
    with pytest.raises(MemoxrInputError, match="exists and is not a Zarr store"):
        convert_npz(ragged_npz, f"s3://{bucket}/data", overwrite=True, storage_options=options)
    assert fs.cat_file(f"{bucket}/data/notes.txt") == b"precious"
