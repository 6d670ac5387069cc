"""Proxies: independent loop references, several chunks on epoch and sample, leading dims kept."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import memoxr.dynamics as dyn
from memoxr.dynamics import _kernels
from memoxr.errors import MemoxrInputError

ARCH, T, N = 2, 7, 11


def _refs_1d(name: str, x: np.ndarray, tau: float | None = None) -> float:
    """Plain-Python reference of one proxy on one sample's trajectory."""
    x = [float(v) for v in x]
    t = len(x)
    if name in ("csl", "cumulative_grad_norm"):
        total = 0.0
        for v in x:
            total += v
        return total
    if name in ("mean_loss", "mean_curvature", "confidence"):
        return sum(x) / t
    if name == "final_loss":
        return x[-1]
    if name == "in_confidence":
        return 1.0 - x[-1]
    if name == "variability":
        m = sum(x) / t
        return (sum((v - m) ** 2 for v in x) / t) ** 0.5
    if name == "learning_time":
        below, running = 0, 0.0
        for i, v in enumerate(x, start=1):
            running += v
            if running / i < tau:
                below += 1
        return 1.0 - below / t
    if name == "threshold_learning_time":
        for start in range(t):
            if all(x[start:]):
                return float(start)
        return float(t)
    if name == "forgetting_events":
        return float(sum(1 for i in range(1, t) if x[i - 1] and not x[i]))
    raise KeyError(name)


def _dataset(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    dims = ("arch", "epoch", "sample")
    shape = (ARCH, T, N)
    correct = rng.random(shape) < 0.6
    correct[:, :, 0] = True  # learned from the start
    correct[:, :, 1] = False  # never learned
    return xr.Dataset(
        {
            "loss": (dims, rng.gamma(2.0, 1.0, shape).astype(np.float32)),
            "grad_norm": (dims, rng.gamma(2.0, 1.0, shape)),
            "curvature": (dims, rng.random(shape)),
            "true_prob": (dims, rng.random(shape).astype(np.float32)),
            "correct": (dims, correct),
            "is_mislabeled": (("sample",), np.arange(N) % 3 == 0),
        },
        coords={"arch": ["vgg", "resnet"], "epoch": np.arange(T), "sample": np.arange(100, 100 + N)},
        attrs={"sample_order": "tfds"},
    )


def _reference(ds: xr.Dataset, name: str) -> np.ndarray:
    var = dyn.PROXIES[name].variable
    x = ds[var].transpose("arch", "epoch", "sample").values
    out = np.empty((ARCH, N))
    for a in range(ARCH):
        tau = float(np.mean(x[a])) if name == "learning_time" else None
        for i in range(N):
            out[a, i] = _refs_1d(name, x[a, :, i], tau)
    return out


@pytest.mark.parametrize("name", list(dyn.PROXIES))
@pytest.mark.parametrize("chunks", [None, {"epoch": 3, "sample": 4}, {"epoch": 1, "sample": 5, "arch": 1}])
def test_proxy_matches_loop_reference(name: str, chunks: dict | None) -> None:
    ds = _dataset()
    if chunks is not None:
        ds = ds.chunk(chunks)
    proxy = dyn.PROXIES[name]
    out = proxy.func(ds[proxy.variable])
    assert out.dims == ("arch", "sample")
    assert list(out["arch"].values) == ["vgg", "resnet"]
    np.testing.assert_array_equal(out["sample"].values, np.arange(100, 100 + N))
    if chunks is not None:
        assert out.chunks is not None
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.values, _reference(_dataset(), name), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(dyn.PROXIES))
def test_proxy_dask_equals_numpy_and_epoch_first_layout(name: str) -> None:
    ds = _dataset(1)
    var = dyn.PROXIES[name].variable
    eager = dyn.PROXIES[name].func(ds[var])
    # Run dim after epoch: the reduction uses the dim name, not a position.
    lazy = dyn.PROXIES[name].func(ds[var].transpose("epoch", "arch", "sample").chunk({"epoch": 2, "sample": 3}))
    xr.testing.assert_allclose(eager, lazy.transpose(*eager.dims).compute())


@pytest.mark.parametrize("module", ["memoxr.dynamics.proxies", "memoxr.dynamics._kernels"])
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def _no_compute(*args, **kwargs):
    raise AssertionError("a lazy call computed")


def test_compute_proxies_is_lazy_and_keeps_ground_truth() -> None:
    ds = _dataset().chunk({"epoch": 3, "sample": 4})
    with dask.config.set(scheduler=_no_compute):
        out = dyn.compute_proxies(ds)
    assert list(out.data_vars)[: len(dyn.PROXIES)] == list(dyn.PROXIES)
    assert "is_mislabeled" in out
    assert out.attrs["sample_order"] == "tfds"
    assert out["confidence"].attrs["direction"] == -1 and out["csl"].attrs["direction"] == 1
    np.testing.assert_allclose(out["csl"].values, _reference(_dataset(), "csl"), rtol=1e-6)


def test_nan_propagates_in_sums_and_moments() -> None:
    ds = _dataset()
    ds["loss"][0, 2, 3] = np.nan
    ds["true_prob"][1, 4, 5] = np.nan
    lazy = ds.chunk({"epoch": 2})
    assert np.isnan(dyn.csl(lazy["loss"]).values[0, 3])
    assert np.isnan(dyn.confidence(lazy["true_prob"]).values[1, 5])
    assert np.isnan(dyn.variability(lazy["true_prob"]).values[1, 5])
    assert np.isfinite(dyn.csl(lazy["loss"]).values[1, 3])


def test_threshold_learning_time_documented_examples() -> None:
    c = np.array([[1, 1, 1], [0, 0, 1], [1, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(_kernels.threshold_learning_time(c, axis=1), [0, 2, 2, 3, 3])
    np.testing.assert_array_equal(_kernels.forgetting_events(c, axis=1), [0, 0, 1, 1, 0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dyn.csl(xr.DataArray(np.ones((3, 2)), dims=("step", "sample"))), "dim 'epoch' missing"),
        (lambda: dyn.csl(np.ones(3)), "must be an xarray.DataArray"),
        (lambda: dyn.csl(xr.DataArray(np.ones((0, 2)), dims=("epoch", "sample"))), "is empty"),
        (lambda: dyn.learning_time(xr.DataArray(np.ones((3, 2)), dims=("epoch", "x"))), "sample dim 'train_id' or 'sample' missing"),
        (lambda: dyn.compute_proxies(_dataset(), ["nope"]), r"unknown \['nope'\]"),
        (lambda: dyn.compute_proxies(_dataset().drop_vars("curvature"), ["mean_curvature"]), "needs variable 'curvature'"),
        (lambda: dyn.compute_proxies(xr.Dataset({"x": (("epoch", "sample"), np.ones((2, 2)))})), "no proxy can be computed"),
    ],
)
def test_proxy_errors(call, match: str) -> None:
    with pytest.raises(MemoxrInputError, match=match):
        call()


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 4), st.integers(1, 9))))
def test_correctness_kernels_properties(c: np.ndarray) -> None:
    t = c.shape[1]
    tlt = _kernels.threshold_learning_time(c, axis=1)
    fe = _kernels.forgetting_events(c, axis=1)
    assert ((tlt >= 0) & (tlt <= t)).all()
    assert ((fe >= 0) & (fe <= t // 2)).all()
    for row, a, b in zip(c, tlt, fe, strict=True):
        assert a == _refs_1d("threshold_learning_time", row)
        assert b == _refs_1d("forgetting_events", row)


@settings(max_examples=40, deadline=None)
@given(
    # Whole numbers: every sum is exact in float64 whatever the chunking, so the
    # comparisons with tau cannot flip on rounding.
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 8)), elements=st.integers(0, 10).map(float)),
    st.integers(1, 4),
)
def test_sum_and_learning_time_chunk_invariant(g: np.ndarray, chunk: int) -> None:
    x = xr.DataArray(g, dims=("sample", "epoch"))
    lazy = x.chunk({"epoch": chunk, "sample": 1})
    xr.testing.assert_allclose(dyn.csl(x), dyn.csl(lazy).compute())
    lt = dyn.learning_time(lazy).values
    assert ((lt >= 0) & (lt <= 1)).all()
    np.testing.assert_allclose(lt, dyn.learning_time(x).values)
