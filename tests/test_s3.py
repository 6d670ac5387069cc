"""Object storage for real: moto's standalone S3 server on 127.0.0.1, started here on a free port."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import s3fs
import xarray as xr
from click.testing import CliRunner

import memoxr
from memoxr.cli import main
from memoxr.convert import convert_npz
from memoxr.errors import IncompleteStoreError, MemoxrInputError, OutputExistsError
from memoxr.influence import fz_npz
from memoxr.io.storage import open_dataset

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


def test_sha256_of_an_npz_on_s3_is_streamed_block_by_block(ragged_npz, bucket, options, tmp_path):
    from memoxr.io.npz import file_sha256
    url = f"s3://{bucket}/in/ragged.npz"
    _fs(options).put_file(ragged_npz, url.removeprefix("s3://"))
    expected = hashlib.sha256(Path(ragged_npz).read_bytes()).hexdigest()
    assert file_sha256(url, block=1000, storage_options=options) == expected  # many blocks, the last partial
    store = convert_npz(url, tmp_path / "from_s3.zarr", chunks=SMALL_CHUNKS, storage_options=options)
    assert memoxr.open_influence(store).attrs["source_sha256"] == expected


def test_a_location_carries_its_options_through_writes_and_reads(tmp_path, bucket, options):
    from memoxr.io.location import Location
    from memoxr.io.storage import atomic_output, open_dataset, write_dataset

    remote = Location.of(f"s3://{bucket}/loc/data.zarr", options)
    ds = xr.Dataset({"x": ("sample", np.arange(5.0))}, attrs={"schema": "memoxr.test"})
    assert write_dataset(ds, remote) == remote.path  # no storage_options: the Location has them
    xr.testing.assert_equal(open_dataset(remote).load(), ds.drop_attrs().assign_attrs(schema="memoxr.test"))
    table = Location.of(f"s3://{bucket}/loc/table.csv", options)
    with atomic_output(table) as tmp:
        tmp.write_text("a,b\n1,2\n")
    assert _fs(options).cat_file(f"{bucket}/loc/table.csv") == b"a,b\n1,2\n"
    with pytest.raises(MemoxrInputError, match="storage_options: .* carries its own options"):
        Location.of(remote, {"anon": True})
    assert SECRET not in str(remote) and SECRET not in repr(remote.path)


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


def test_a_trials_store_on_s3_keeps_its_keys_until_written_again(tmp_path, bucket, options):
    # Reopened unchanged, the same keys (reads shared); written again at the same URL, new ones.
    from memoxr.estimate import write_trials
    from memoxr.estimate.trials import trial_arrays
    from memoxr.io.location import Location

    rng = np.random.default_rng(2)
    fs = _fs(options)
    names = []
    for version in range(2):
        records = {"mask": rng.random((6, 5)) < 0.5, "train_correct": rng.random((6, 5)) < 0.5,
                   "test_correct": rng.random((6, 3)) < 0.5, "tr_labels": np.arange(5) % 2, "tt_labels": np.arange(3) % 2}
        local = write_trials(records, tmp_path / f"t{version}.zarr")
        if fs.exists(f"{bucket}/t.zarr"):
            fs.rm(f"{bucket}/t.zarr", recursive=True)
            time.sleep(1.1)  # the same metadata bytes again: only the last-modified time, to the second, differs
        fs.put(str(local), f"{bucket}/t.zarr", recursive=True)
        fs.invalidate_cache()
        opened = [trial_arrays(Location.of(f"s3://{bucket}/t.zarr", options))[0]["mask"] for _ in range(2)]
        assert opened[0].name == opened[1].name
        np.testing.assert_array_equal(opened[1].compute(), records["mask"])
        names.append(opened[0].name)
    assert names[0] != names[1]


def test_overwrite_refuses_to_delete_what_is_not_a_store(ragged_npz, bucket, options):
    fs = _fs(options)
    fs.pipe(f"{bucket}/data/notes.txt", b"precious")
    with pytest.raises(MemoxrInputError, match="exists and is not a Zarr store"):
        convert_npz(ragged_npz, f"s3://{bucket}/data", overwrite=True, storage_options=options)
    assert fs.cat_file(f"{bucket}/data/notes.txt") == b"precious"


def _objects(options, bucket, prefix) -> dict[str, bytes]:
    """Every object under ``prefix`` (relative key -> bytes), read without any cache."""
    fs = _fs(options)
    return {key.split(f"{prefix}/", 1)[1]: body for key, body in fs.cat(fs.find(f"{bucket}/{prefix}")).items()}


def test_foreign_store_is_an_output_not_an_interrupted_write(ragged_npz, bucket, options):
    """A Zarr store memoxr did not write (no schema memoxr.*) is refused without --overwrite, as locally."""
    url = f"s3://{bucket}/results.zarr"
    xr.Dataset({"x": ("i", np.arange(5))}).to_zarr(url, zarr_format=3, storage_options=options)
    before = _objects(options, bucket, "results.zarr")
    result = CliRunner().invoke(main, ["convert", ragged_npz, url, "-q", "--storage-options", json.dumps(options)])
    assert result.exit_code == 2 and "already exists" in result.stderr, result.output
    assert _objects(options, bucket, "results.zarr") == before
    result = CliRunner().invoke(main, ["convert", ragged_npz, url, "-q", "--overwrite", "--storage-options", json.dumps(options)])
    assert result.exit_code == 0, result.output
    assert memoxr.open_influence(url, storage_options=options).attrs["source_name"] == "ragged.npz"


def test_overwrite_unmarks_the_old_store_before_deleting_it(ragged_npz, bucket, options, monkeypatch):
    """The delete fails after its first batch: what is left never opens as complete, and a rerun replaces it."""
    from memoxr.io import storage

    url = f"s3://{bucket}/o.zarr"
    convert_npz(ragged_npz, url, storage_options=options)
    reference = _objects(options, bucket, "o.zarr")
    monkeypatch.setattr(storage, "_DELETE_BATCH", 1)
    real_delete, calls = storage._delete_keys, []

    def failing_delete(fs, keys):
        calls.append(keys)
        if len(calls) == 2:
            raise OSError("connection reset")
        return real_delete(fs, keys)

    monkeypatch.setattr(storage, "_delete_keys", failing_delete)
    with pytest.raises(OSError, match="connection reset"):
        convert_npz(ragged_npz, url, overwrite=True, storage_options=options)
    monkeypatch.undo()
    left = _objects(options, bucket, "o.zarr")
    assert 0 < len(left) < len(reference) and COMPLETE not in json.loads(left["zarr.json"])["attributes"]
    with pytest.raises(IncompleteStoreError, match="store is incomplete"):
        memoxr.open_influence(url, storage_options=options)
    convert_npz(ragged_npz, url, storage_options=options)  # no --overwrite needed
    assert _objects(options, bucket, "o.zarr") == reference


COMPLETE = "memoxr_complete"

# Conversions slowed down so that a test can watch them: each class block, each batch of
# deleted objects and the moment after consolidation take a little longer. One process
# imports memoxr once and forks a child per conversion, which the test SIGKILLs.
_SLOW_CONVERTER = """
import json, os, sys, time
import zarr
from memoxr.io import storage
from memoxr.convert import convert_npz
from memoxr.influence import fz_npz
from memoxr.io.chunks import BlockChunks

def slowed(function, seconds, after=False):
    def wrapper(*args, **kwargs):
        if not after:
            time.sleep(seconds)
        result = function(*args, **kwargs)
        if after:
            time.sleep(seconds)
        return result
    return wrapper

fz_npz._load_class_block = slowed(fz_npz._load_class_block, 0.05)
storage._delete_keys = slowed(storage._delete_keys, 0.1)
zarr.consolidate_metadata = slowed(zarr.consolidate_metadata, 0.8, after=True)
storage._DELETE_BATCH = 4
for line in sys.stdin:
    npz, url, options, overwrite = json.loads(line)
    pid = os.fork()
    if pid == 0:
        convert_npz(npz, url, chunks=BlockChunks(*CHUNKS), overwrite=overwrite, storage_options=options)
        os._exit(0)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""
CHUNKS = (3, 12, 12)


@pytest.fixture
def converter(tmp_path):
    script = tmp_path / "slow_converter.py"
    script.write_text(_SLOW_CONVERTER.replace("CHUNKS", repr(CHUNKS)))
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "MEMOXR_SCHEDULER": "synchronous"})
    yield proc
    proc.stdin.close()
    proc.kill()
    proc.wait()


@pytest.fixture
def client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                        aws_secret_access_key=SECRET, region_name="us-east-1")


def _root(client, bucket, prefix):
    try:
        return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/zarr.json")["Body"].read())
    except client.exceptions.NoSuchKey:
        return None


def _kill_when(converter, args, client, bucket, prefix, reached) -> None:
    """Start a slowed conversion; SIGKILL it as soon as ``reached(count, root, seen)`` is true of the bucket."""
    converter.stdin.write(json.dumps(args) + "\n")
    converter.stdin.flush()
    pid = int(converter.stdout.readline())
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while True:
        count = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("KeyCount", 0)
        seen.append(count)
        if reached(count, _root(client, bucket, prefix), seen):
            break
        assert os.path.exists(f"/proc/{pid}"), f"the conversion ended before the moment to kill it ({seen[-5:]})"
        assert time.monotonic() < deadline
    with contextlib.suppress(ProcessLookupError):  # if it ended just now, the status below says so
        os.kill(pid, signal.SIGKILL)
    status = int(converter.stdout.readline())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the conversion had already ended"


def _assert_refused_or_absent(url, options, client, bucket, prefix):
    if client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("KeyCount", 0) == 0:
        return
    with pytest.raises(IncompleteStoreError):
        memoxr.open_influence(url, storage_options=options)
    result = CliRunner().invoke(main, ["calculate", "--input", url, "-q", "--storage-options", json.dumps(options)])
    assert result.exit_code == 2 and "incomplete" in result.stderr, result.output


def test_s3_conversion_killed_at_several_moments(converter, client, ragged_npz, bucket, options):
    """SIGKILL halfway through the objects, and between the consolidated metadata and the marker;
    convert --overwrite killed right after the old root is unmarked, halfway through the delete,
    and halfway through the new write. Never a store that opens as complete; a rerun without
    --overwrite writes the same bytes as an uninterrupted run."""
    from memoxr.io.chunks import BlockChunks

    url, prefix = f"s3://{bucket}/k.zarr", "k.zarr"
    convert_npz(ragged_npz, url, chunks=BlockChunks(*CHUNKS), storage_options=options)
    reference = _objects(options, bucket, prefix)
    total = len(reference)
    assert total >= 12  # enough objects for a halfway
    moments = [
        ("fresh: halfway", False, lambda count, root, seen: count >= total // 2),
        ("fresh: consolidated, not marked", False, lambda count, root, seen: bool(root and root.get("consolidated_metadata"))
         and COMPLETE not in root["attributes"]),
        ("overwrite: old root unmarked", True, lambda count, root, seen: root is not None and COMPLETE not in root["attributes"]),
        ("overwrite: delete halfway", True, lambda count, root, seen: count <= total // 2),
        ("overwrite: write halfway", True, lambda count, root, seen: min(seen) <= 1 and count >= total // 2),
    ]
    for name, overwrite, reached in moments:
        if not overwrite:
            _fs(options).rm(f"{bucket}/{prefix}", recursive=True)
        _kill_when(converter, [ragged_npz, url, options, overwrite], client, bucket, prefix, reached)
        _assert_refused_or_absent(url, options, client, bucket, prefix)
        convert_npz(ragged_npz, url, chunks=BlockChunks(*CHUNKS), storage_options=options)  # no --overwrite needed
        assert _objects(options, bucket, prefix) == reference, name
    with pytest.raises(OutputExistsError):  # finished now: replacing it needs --overwrite
        convert_npz(ragged_npz, url, storage_options=options)


def _one_error_line(result, *expected):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and SECRET not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


_SLOW_CLI = """
import sys, time
from memoxr.influence import fz_npz
from memoxr.cli import main
original = fz_npz._load_class_block
def slow(*args, **kwargs):
    time.sleep(0.2)
    return original(*args, **kwargs)
fz_npz._load_class_block = slow
main(sys.argv[1:], prog_name="memoxr")
"""


def test_server_gone_mid_upload_then_dead_before_the_command(tmp_path, ragged_npz):
    """One line naming the endpoint, exit 2, no traceback: when the server dies while objects are
    being written (seen appearing), and when it is already dead at the start."""
    server, url = _start_moto()
    try:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key=SECRET,
                              region_name="us-east-1")
        client.create_bucket(Bucket="gone")
        options = json.dumps({"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}})
        script = tmp_path / "slow_cli.py"
        script.write_text(_SLOW_CLI)
        cli = subprocess.Popen([sys.executable, str(script), "convert", ragged_npz, "s3://gone/x.zarr", "-q",
                                "--storage-options", options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while client.list_objects_v2(Bucket="gone").get("KeyCount", 0) == 0:
            assert cli.poll() is None and time.monotonic() < deadline, "the upload ended before the server could die"
        server.kill()
        server.wait()
        _, stderr = cli.communicate(timeout=120)
        result = type("Result", (), {"exit_code": cli.returncode, "stderr": stderr, "output": stderr})
        _one_error_line(result, f"object storage at {url}")
        for args in (["convert", ragged_npz, "s3://gone/x.zarr"], ["calculate", "--input", "s3://gone/x.zarr"]):
            _one_error_line(CliRunner().invoke(main, [*args, "-q", "--storage-options", options]), f"object storage at {url}",
                            "Could not connect")
    finally:
        server.kill()
        server.wait()


def test_nothing_listening_on_the_endpoint(ragged_npz):
    url = f"http://127.0.0.1:{_free_port()}"
    options = json.dumps({"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": url}})
    result = CliRunner().invoke(main, ["convert", ragged_npz, "s3://bucket/x.zarr", "--storage-options", options])
    _one_error_line(result, f"object storage at {url}", "Could not connect")


def test_silent_endpoint_times_out(ragged_npz):
    """An endpoint that accepts connections and never answers is reported (timeout made small here)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []

    def accept_forever():
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept_forever, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        options = json.dumps({"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": url},
                              "config_kwargs": {"read_timeout": 0.3}})
        result = CliRunner().invoke(main, ["convert", ragged_npz, "s3://bucket/x.zarr", "--storage-options", options])
        _one_error_line(result, f"object storage at {url}", "Read timeout")
        assert accepted  # it did connect: the silence is what failed
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_object_storage_has_default_timeouts():
    from memoxr.io.location import S3_TIMEOUTS, Location, resolve_storage_options

    assert S3_TIMEOUTS["connect_timeout"] <= 10 and S3_TIMEOUTS["read_timeout"] <= 10
    assert resolve_storage_options(None)["config_kwargs"] == S3_TIMEOUTS
    mine = resolve_storage_options('{"config_kwargs": {"read_timeout": 1, "retries": {"max_attempts": 3}}}')
    assert mine["config_kwargs"] == {**S3_TIMEOUTS, "read_timeout": 1, "retries": {"max_attempts": 3}}
    fs = Location.of("s3://bucket/x.zarr", {"key": "k", "secret": "s"}).fs
    assert fs.config_kwargs == S3_TIMEOUTS  # the library's own accesses get them too


def test_side_files_are_read_with_the_storage_options(tmp_path, bucket, options):
    """--sample-ids, --truth and --mapping files on s3:// are read with --storage-options, like the main paths."""
    from memoxr.dynamics.demo import sample_dataset
    from memoxr.dynamics.report import evaluate_store
    from memoxr.importers import open_scores, scores_dataset
    from memoxr.importers.compare import compare_scores
    from memoxr.importers.report import compare_report
    from memoxr.io.storage import write_dataset

    fs, so = _fs(options), json.dumps(options)
    rng = np.random.default_rng(7)
    values, ids, mask = rng.random(6), np.array([15, 11, 12, 10, 14, 13]), rng.random(6) < 0.5
    for name, array in {"tracin.npy": values, "mask.npy": mask}.items():
        np.save(tmp_path / name, array)
        fs.put_file(str(tmp_path / name), f"{bucket}/side/{name}")
    fs.pipe_file(f"{bucket}/side/ids.txt", " ".join(map(str, ids)).encode())
    done = CliRunner().invoke(main, [
        "import-scores", "self-influence", f"s3://{bucket}/side/tracin.npy", str(tmp_path / "tracin.zarr"),
        "--sample-order", "tfds", "--sample-ids", f"s3://{bucket}/side/ids.txt",
        "--truth", f"is_mislabeled=s3://{bucket}/side/mask.npy", "--storage-options", so,
    ])
    assert done.exit_code == 0, done.output
    ds = open_scores(tmp_path / "tracin.zarr")
    assert ds["train_id"].values.tolist() == ids.tolist()
    np.testing.assert_array_equal(ds["self_influence"].values, values)
    np.testing.assert_array_equal(ds["is_mislabeled"].values, mask)

    # compare: a permutation file on s3:// translates one source's order into the other's.
    n = 40
    to_tfds = rng.permutation(n)
    np.save(tmp_path / "tv_to_tfds.npy", to_tfds)
    fs.put_file(str(tmp_path / "tv_to_tfds.npy"), f"{bucket}/side/tv_to_tfds.npy")
    scores = rng.random(n)
    a = scores_dataset({"a": scores}, sample_order="tfds", source="a", directions={"a": 1},
                       truth={"is_mislabeled": rng.random(n) < 0.3})
    b = scores_dataset({"b": scores[to_tfds] + 0.1 * rng.random(n)}, sample_order="tv", source="b", directions={"b": 1})
    in_memory = compare_report([a, b], mask="is_mislabeled", mapping={"tv": to_tfds})
    remote = compare_report([a, b], mask="is_mislabeled", mapping={"tv": f"s3://{bucket}/side/tv_to_tfds.npy"},
                            storage_options=options)
    pd.testing.assert_frame_equal(remote, in_memory)
    pd.testing.assert_frame_equal(compare_scores([a, b], mask="is_mislabeled", storage_options=options,
                                                 mapping=f"s3://{bucket}/side/tv_to_tfds.npy"), in_memory)
    stores = [str(write_dataset(a, tmp_path / "a.zarr")), str(write_dataset(b, tmp_path / "b.zarr"))]
    for mapping in (f"tv=s3://{bucket}/side/tv_to_tfds.npy", f"s3://{bucket}/side/tv_to_tfds.npy"):  # ORDER=FILE, FILE
        done = CliRunner().invoke(main, ["compare", *stores, "--mask", "is_mislabeled", "--mapping", mapping,
                                         "--storage-options", so])
        assert done.exit_code == 0, done.output

    # plain: --sample-ids and --truth files on s3:// beside a local input.
    done = CliRunner().invoke(main, [
        "import-scores", "plain", str(tmp_path / "tracin.npy"), str(tmp_path / "plain.zarr"), "--sample-order", "tfds",
        "--sample-ids", f"s3://{bucket}/side/ids.txt", "--truth", f"is_mislabeled=s3://{bucket}/side/mask.npy",
        "--storage-options", so,
    ])
    assert done.exit_code == 0, done.output
    plain = open_scores(tmp_path / "plain.zarr")
    assert plain["train_id"].values.tolist() == ids.tolist()
    np.testing.assert_array_equal(plain["is_mislabeled"].values, mask)

    # evaluate --compare: the same for two dynamics stores in different orders.
    dyn = sample_dataset().isel(noise=[0])
    samples = dyn.sizes["train_id"]
    np.save(tmp_path / "identity.npy", np.arange(samples))
    fs.put_file(str(tmp_path / "identity.npy"), f"{bucket}/side/identity.npy")
    first = write_dataset(dyn, tmp_path / "first.zarr")
    second = write_dataset(dyn.assign_attrs(sample_order="other"), tmp_path / "second.zarr")
    expected = evaluate_store(first, compare=first, proxies=["csl"])
    got = evaluate_store(first, compare=second, proxies=["csl"], mapping=f"s3://{bucket}/side/identity.npy",
                         storage_options=options)
    pd.testing.assert_frame_equal(got, expected)
    done = CliRunner().invoke(main, ["evaluate", first, "--compare", second, "--proxy", "csl", "--mapping",
                                     f"s3://{bucket}/side/identity.npy", "--storage-options", so])
    assert done.exit_code == 0, done.output
