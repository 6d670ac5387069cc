"""The array kernels alone (numpy, and the C row and ranking kernels), against numpy/scipy and by properties."""

from __future__ import annotations

import platform
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps

from memoxr.influence import kernels as _kernels

finite_rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(-1, 1, allow_nan=False, width=32),
)


@given(finite_rows, st.data())
def test_merged_chunks_equal_whole_row(x, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, x.shape[1]), max_size=4)))
    pieces = np.split(x, cuts, axis=1)
    parts = np.stack([_kernels.row_moments(p, axis=1) for p in pieces], axis=1)
    merged = _kernels.finalize_moments(_kernels.merge_moments(parts, axis=1))
    np.testing.assert_allclose(merged, _kernels.row_statistics(x, axis=1), rtol=1e-9, atol=1e-12)


@given(finite_rows)
def test_row_statistics_match_numpy(x):
    stats = _kernels.row_statistics(x, axis=1)
    np.testing.assert_array_equal(stats[:, 0], x.shape[1])
    np.testing.assert_allclose(stats[:, 1], np.maximum(x, 0).mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(stats[:, 2], x.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(stats[:, 3], x.std(axis=1), atol=1e-9)


def test_row_statistics_ignore_nan_and_axis():
    x = np.array([[1.0, np.nan, -2.0], [np.nan, np.nan, np.nan]])
    stats = _kernels.row_statistics(x.T, axis=0)
    np.testing.assert_allclose(stats[0], [2, 0.5, -0.5, 1.5])
    assert stats[1, 0] == 0 and np.isnan(stats[1, 1:]).all()


def reference_moments(x: np.ndarray) -> np.ndarray:
    """count, positive sum, mean, M2 of each row in float64, NaN skipped: numpy, written apart."""
    x = x.astype(np.float64)
    kept = ~np.isnan(x)
    count = kept.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(kept, x, 0).sum(axis=1) / count
        deviation = np.where(kept, x - mean[:, None], 0)
        m2 = (deviation**2).sum(axis=1)
    positive = np.where(kept, np.maximum(x, 0), 0).sum(axis=1)
    out = np.stack([count, positive, mean, m2], axis=1)
    out[count == 0] = 0
    return out


ROW_KINDS = ["real", "real", "padding", "nan first", "nan inside", "nan last", "inf", "-inf", "both inf",
             "offset", "huge", "tiny", "signed zeros"]


@given(st.lists(st.sampled_from(ROW_KINDS), min_size=1, max_size=30), st.data())
def test_row_moments_match_a_float64_reference(kinds, data):
    """Rows of a ragged chunk (real, all-NaN padding, NaN first, inside or last, infinities, a large
    mean, values whose squares overflow float32 (float64 too, for float64 rows), subnormals, -0.0)
    of widths around the kernel's 4-, 8- and 16-value steps, float32 and float64: each row's moments
    equal the row's alone, and a float64 numpy reference's."""
    n = data.draw(st.sampled_from([1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 50, 700]))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    rows = np.repeat(kinds, data.draw(st.integers(1, 20)))
    x = rng.normal(size=(rows.size, n)).astype(dtype)
    x[rows == "padding"] = np.nan
    x[rows == "nan first", 0] = np.nan
    x[rows == "nan inside", n // 2] = np.nan
    x[rows == "nan last", -1] = np.nan
    x[rows == "inf", n // 3] = np.inf
    x[rows == "-inf", -1] = -np.inf
    x[rows == "both inf", 0] = np.inf
    x[rows == "both inf", -1] = -np.inf  # a row of one value: -inf alone
    x[rows == "offset"] += dtype(1e4)  # a mean far from 0 against the spread: M2 must not cancel
    x[rows == "huge"] *= dtype(1e36 if dtype == np.float32 else 1e200)
    x[rows == "tiny"] *= dtype(1e-40 if dtype == np.float32 else 1e-310)  # subnormal
    x[rows == "signed zeros"] = np.where(rng.random((int((rows == "signed zeros").sum()), n)) < 0.5, -0.0, 0.0)
    got = _kernels.row_moments(x)
    alone = np.concatenate([_kernels.row_moments(row[None]) for row in x])
    np.testing.assert_array_equal(got, alone)
    expected = reference_moments(x)
    np.testing.assert_array_equal(got[:, 0], expected[:, 0])
    assert not got[rows == "padding"].any()  # padding: nothing counted
    # float64 sums of the same values: a few units in the last place, at the rows' scale.
    finite_values = np.where(np.isfinite(x), np.abs(x), 0).astype(np.float64)
    scale = np.maximum(finite_values.max(axis=1), 1e-300)
    with np.errstate(over="ignore"):
        tolerance = 1e-12 * np.stack([0 * scale, n * scale, scale, n * scale**2], axis=1)
    tolerance = np.minimum(tolerance, np.finfo(np.float64).max)  # overflowing M2: inf in both
    assert np.isclose(got, expected, rtol=0, atol=tolerance, equal_nan=True).all()
    infinite = np.isinf(x).any(axis=1)
    assert np.isnan(got[infinite, 3]).all()  # inf - inf: M2 is NaN


def test_row_moments_on_ragged_classes_and_any_axis():
    """Ragged classes of 700-wide rows (padding after each class's rows), with a row mixing NaN and
    a number: the moments are the reference's, along either axis."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 900, 700)).astype(np.float32)
    for k, size in enumerate((500, 900, 120)):
        x[k, size:] = np.nan
    x[2, 700, 5] = 1.0
    got = _kernels.row_moments(x)
    np.testing.assert_allclose(got, reference_moments(x.reshape(-1, 700)).reshape(3, 900, 4), rtol=1e-12, atol=1e-9)
    assert got[2, 700].tolist() == [1.0, 1.0, 1.0, 0.0]
    np.testing.assert_array_equal(_kernels.row_moments(np.swapaxes(x, 1, 2), axis=1), got)


def test_row_moments_m2_keeps_float64_accuracy_on_float32_data():
    """A mean 10^4 times the spread: float32 arithmetic would lose M2's digits; float64 keeps them."""
    rng = np.random.default_rng(5)
    x = (1e4 + rng.normal(size=(4, 2750))).astype(np.float32)
    exact = np.array([sum((v - sum(map(float, r)) / r.size) ** 2 for v in map(float, r)) for r in x])
    np.testing.assert_allclose(_kernels.row_moments(x)[:, 3], exact, rtol=1e-12)


@pytest.mark.parametrize(
    ("x", "n", "out", "error", "message"),
    [
        (np.zeros(4, np.int32), 2, np.zeros(8), TypeError, "x: expected native float32 or float64 values, got buffer format 'i'"),
        (np.zeros(4, ">f4"), 2, np.zeros(8), TypeError, "got buffer format '>f'"),
        (np.zeros(4, ">f8"), 2, np.zeros(8), TypeError, "got buffer format '>d'"),
        (np.zeros(4, np.float32), 2, np.zeros(8, np.float32), TypeError, "out: expected native float64 values"),
        (np.zeros(6, np.float32), 4, np.zeros(8), ValueError, "n: expected a positive row length dividing the 6 values of x, got 4"),
        (np.zeros(6, np.float32), 0, np.zeros(8), ValueError, "got 0"),
        (np.zeros(6, np.float32), 3, np.zeros(4), ValueError, "out: expected 8 float64 values (4 per row of x), got 4"),
        (np.zeros((4, 4), np.float32)[:, ::2], 2, np.zeros(16), ValueError, "not C-contiguous"),
        (np.zeros(4, np.float32), 2, np.frombuffer(bytes(64)), ValueError, "read-only"),
    ],
)
def test_the_compiled_kernel_refuses_buffers_it_cannot_read(x, n, out, error, message):
    from memoxr.influence import _row_moments

    with pytest.raises(error, match=re.escape(message)):
        _row_moments.row_moments_into(x, n, out)
    # the same call with good buffers works, read-only input included
    good = np.zeros(8)
    _row_moments.row_moments_into(np.frombuffer(np.ones(4, np.float32).tobytes(), np.float32), 2, good)
    assert good.tolist() == [2.0, 2.0, 1.0, 0.0] * 2


def test_the_compiled_kernel_refuses_an_output_overlapping_its_input():
    from memoxr.influence import _row_moments

    both = np.arange(12.0)
    with pytest.raises(ValueError, match="out: expected memory apart from x's, got a buffer overlapping it"):
        _row_moments.row_moments_into(both[:4], 2, both[2:10])
    assert both.tolist() == list(range(12))  # nothing written
    _row_moments.row_moments_into(both[:4], 2, both[4:])  # adjacent, not overlapping
    assert both[4:].tolist() == [2.0, 1.0, 0.5, 0.5, 2.0, 5.0, 2.5, 0.5]


@pytest.mark.parametrize("module", ["kernels", "rank_kernels"])
@pytest.mark.parametrize("kernel", ["_row_moments", "_average_ranks"])
def test_an_unbuilt_checkout_says_how_to_build_it(kernel, module):
    code = f"import sys; sys.modules['memoxr.influence.{kernel}'] = None; import memoxr.influence.{module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "memoxr's compiled kernels did not load from" in done.stderr
    assert "pip install -e ." in done.stderr


def test_descending_rank_leaves_nan_out_before_minus_infinity():
    """NaN entries take no rank, even where they come before a -inf (which argsort of -x tied with them)."""
    ranks = _kernels.descending_rank(np.array([np.nan, -np.inf, 1.0, np.nan]))
    np.testing.assert_array_equal(ranks, [np.nan, 1.0, 0.0, np.nan])
    assert np.nanmax(_kernels.normalized_descending_rank(np.array([np.nan, np.nan, -np.inf, 1.0]))) == 1.0


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0])))
def test_descending_rank_is_scipy_ordinal_rank(x):
    expected = sps.rankdata(-x, method="ordinal") - 1  # ordinal = ties by position
    np.testing.assert_array_equal(_kernels.descending_rank(x), expected)


def test_descending_rank_nan_and_single():
    np.testing.assert_array_equal(_kernels.descending_rank(np.array([1.0, 3, 3, np.nan, 0])), [2, 0, 1, np.nan, 3])
    np.testing.assert_array_equal(_kernels.normalized_descending_rank(np.array([[5.0, np.nan]])), [[0, np.nan]])
    ranks = _kernels.normalized_descending_rank(np.array([[3.0, 1.0, 2.0]]), axis=1)
    np.testing.assert_allclose(ranks, [[0, 1, 0.5]])


def test_normalize_by_max():
    x = np.array([[0.5, 1.0, np.nan], [0.0, 0.0, 0.0], [-1.0, -2.0, np.nan]])
    np.testing.assert_allclose(_kernels.normalize_by_max(x, axis=1), [[0.5, 1, np.nan], [0, 0, 0], [0, 0, np.nan]])


small_values = st.sampled_from([-1.5, 0.0, 0.0, 0.25, 1.0, 3.0, np.nan, np.inf])


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 12)), elements=small_values),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 12)), elements=small_values),
)
def test_vectorised_spearman_equals_scipy_per_row(a, b):
    """average_rank + centered_correlation == scipy.stats.spearmanr row by row, ties, NaN and inf included."""
    rows, n = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:rows, :n], b[:rows, :n]
    keep = ~np.isnan(a) & ~np.isnan(b)
    ra, rb = _kernels.average_rank(a, keep), _kernels.average_rank(b, keep)
    got = _kernels.centered_correlation(_kernels.centered(ra, keep), _kernels.centered(rb, keep), keep)
    for r in range(rows):
        x, y = a[r][keep[r]], b[r][keep[r]]
        ranks = sps.rankdata(x)
        np.testing.assert_array_equal(_kernels.average_rank(a[r], keep[r])[keep[r]], ranks)
        if x.size < 2 or np.ptp(sps.rankdata(x)) == 0 or np.ptp(sps.rankdata(y)) == 0:
            assert np.isnan(got[r])
        else:
            assert got[r] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)


# Values one or a few units in the last place apart, signed zeros, the smallest subnormals and
# NaN of both signs: where a sort of the values' bits could go wrong.
near_ties = st.sampled_from(
    [-1.0 - np.spacing(1.0), -1.0, -0.0, 0.0, 5e-324, -5e-324, 1.0 - np.spacing(1.0) / 2, 1.0,
     1.0 + np.spacing(1.0), 1.0 + 2 * np.spacing(1.0), 1.0 + 5 * np.spacing(1.0), np.inf, -np.inf, np.nan,
     -np.abs(np.float64(np.nan))]
)


def reference_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of a vector of kept values, written apart from the kernel: scipy's average ranks of the
    numbers, then each NaN after every number, one rank each, in position order."""
    ranks = np.empty(values.size)
    number = ~np.isnan(values)
    ranks[number] = sps.rankdata(values[number])
    ranks[~number] = number.sum() + 1.0 + np.arange((~number).sum())
    return ranks


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(0, 20)), elements=near_ties | st.floats()),
    st.data(),
)
def test_ranks_within_rows_and_pooled_equal_the_reference(x, data):
    """One sort gives each row's ranks and the pooled ranks of all kept entries: scipy's average ranks,
    near ties, -0.0, inf, kept NaN of either sign (after every number) and left-out entries (NaN) included."""
    keep = np.array(data.draw(hnp.arrays(bool, x.shape)), dtype=bool)
    within, pooled = _kernels.row_and_pooled_ranks(x, keep)
    assert np.isnan(within[~keep]).all() and np.isnan(pooled[~keep]).all()
    for r in range(x.shape[0]):
        np.testing.assert_array_equal(within[r][keep[r]], reference_ranks(x[r][keep[r]]))
    np.testing.assert_array_equal(pooled[keep], reference_ranks(x[keep]))
    np.testing.assert_array_equal(within, _kernels.average_rank(x, keep))  # the same sort, within rows only
    # Centred: the deviations numpy's centering gives, bit for bit (ranks and their means are exact).
    number = keep & ~np.isnan(x)
    centred_within, centred_pooled = _kernels.row_and_pooled_ranks(x, number, centred=True)
    ranks_within, ranks_pooled = _kernels.row_and_pooled_ranks(x, number)
    np.testing.assert_array_equal(centred_within, _kernels.centered(ranks_within, number)[0])
    np.testing.assert_array_equal(centred_pooled.ravel(), _kernels.centered(ranks_pooled.ravel(), number.ravel())[0])


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(0, 20)), elements=near_ties | st.floats()),
    st.data(),
)
def test_ordinal_ranks_equal_scipy_and_a_stable_argsort(x, data):
    """Ties in position order: scipy's "ordinal" ranks of the kept numbers, a stable argsort's order."""
    keep = np.array(data.draw(hnp.arrays(bool, x.shape)), dtype=bool) & ~np.isnan(x)
    ranks = _kernels.ordinal_rank(x, keep)
    assert np.isnan(ranks[~keep]).all()
    for r in range(x.shape[0]):
        kept = x[r][keep[r]] + 0.0  # -0.0 ties with 0.0, as scipy ranks them
        np.testing.assert_array_equal(ranks[r][keep[r]], sps.rankdata(kept, method="ordinal"))
        order = np.argsort(kept, kind="stable")
        np.testing.assert_array_equal(ranks[r][keep[r]][order], np.arange(1, kept.size + 1))


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)), elements=near_ties),
       st.integers(0, 2), st.data())
def test_average_rank_along_any_axis(x, axis, data):
    keep = np.array(data.draw(hnp.arrays(bool, x.shape)), dtype=bool)
    ranks = _kernels.average_rank(x, keep, axis=axis)
    for index in np.ndindex(*np.delete(x.shape, axis)):
        at = (*index[:axis], slice(None), *index[axis:])
        np.testing.assert_array_equal(ranks[at][keep[at]], reference_ranks(x[at][keep[at]]))


def test_pooled_ranks_of_many_rows_with_near_ties_equal_scipy():
    """Rows of a thousand, each with neighbours one unit in the last place apart, merged."""
    rng = np.random.default_rng(11)
    x = rng.random((300, 1000))
    x[:, ::7] = np.nextafter(x[:, 1::7], 2.0)  # a neighbour of another entry of the row, one unit up
    x[::3, ::11] = np.nextafter(x[1::3, ::11], -1.0)  # ...and of an entry of another row, one unit down
    x[:, -5:] = np.round(x[:, -5:], 2)  # ties
    x[5] *= -1e-300  # tiny negatives, so every digit of the words varies
    keep = rng.random(x.size).reshape(x.shape) < 0.9
    within, pooled = _kernels.row_and_pooled_ranks(x, keep)
    np.testing.assert_array_equal(pooled[keep], sps.rankdata(x[keep]))
    for r in (0, 1, 5, 150, 299):
        np.testing.assert_array_equal(within[r][keep[r]], sps.rankdata(x[r][keep[r]]))


@pytest.mark.parametrize("run", [2, 32, 33, 5000])
def test_values_that_differ_only_in_their_low_32_bits_equal_scipy(run):
    """The sort orders by the words' high halves, then each run sharing them by the low halves:
    runs of at most 32 by insertion sort, longer ones by radix sort; with ties and a run either side
    (5 values below 1.0, 7 far above)."""
    rng = np.random.default_rng(run)
    low = rng.integers(0, 1 << 20, size=run)
    low[: run // 3] = low[0]  # ties within the run
    x = np.concatenate([1.0 + low * np.spacing(1.0), np.nextafter(1.0, 0.0) - low[:5] * np.spacing(0.5), 1.0 + (1 << 33) * np.spacing(1.0) + low[:7] * np.spacing(1.0)])
    rng.shuffle(x)
    high = (x.view(np.uint64) >> np.uint64(32)).tolist()
    assert high.count(high[x.tolist().index(1.0 + low[0] * np.spacing(1.0))]) == run  # the run, whole
    within, pooled = _kernels.row_and_pooled_ranks(x[None, :], np.ones((1, x.size), dtype=bool))
    np.testing.assert_array_equal(pooled[0], sps.rankdata(x))
    np.testing.assert_array_equal(within[0], sps.rankdata(x))
    halves = np.concatenate([x, x[::-1]]).reshape(2, -1)  # two rows: each row's run is the pooled run's half
    within, pooled = _kernels.row_and_pooled_ranks(halves, np.ones(halves.shape, dtype=bool))
    np.testing.assert_array_equal(pooled.ravel(), sps.rankdata(halves.ravel()))
    for r in range(2):
        np.testing.assert_array_equal(within[r], sps.rankdata(halves[r]))


def test_near_ties_signed_zeros_and_nan_in_one_row():
    ulp = np.spacing(1.0)
    x = np.array([1.0 + 5 * ulp, 1.0 + 2 * ulp, 1.0 + ulp, 1.0, np.nan, 1.0 + ulp, -0.0, -np.abs(np.nan), 0.0])
    ranks = _kernels.average_rank(x, np.ones(x.size, dtype=bool))
    assert ranks.tolist() == [7.0, 6.0, 4.5, 3.0, 8.0, 4.5, 1.5, 9.0, 1.5]


@pytest.mark.skipif(not (sys.platform == "linux" and platform.machine() == "x86_64"), reason="glibc's x86-64 fesetround")
def test_signed_zeros_tie_whatever_the_rounding_mode():
    """-0.0 + 0.0 is -0.0 when rounding downward: the kernel compares the bits, not a sum."""
    import ctypes

    libm = ctypes.CDLL(None)
    downward, nearest = 0x400, 0
    assert libm.fesetround(downward) == 0
    try:
        ranks = _kernels.average_rank(np.array([0.0, -0.0, 0.0]), np.ones(3, dtype=bool))
    finally:
        libm.fesetround(nearest)
    assert ranks.tolist() == [2.0, 2.0, 2.0]


def test_kept_nan_of_either_sign_ranks_last():
    """A NaN left in ``keep`` sorts after every number, so the numbers' ranks are scipy's. x86 makes
    NaN with the sign bit set (0/0, inf - inf), which a sign-aware sort of the raw bits would put first."""
    negative_nan = -np.abs(np.float64(np.nan))
    assert np.signbit(negative_nan)
    x = np.array([2.0, negative_nan, -1.0, np.nan, 2.0, 5.0])
    ranks = _kernels.average_rank(x, np.ones(x.size, dtype=bool))
    number = ~np.isnan(x)
    np.testing.assert_array_equal(ranks[number], sps.rankdata(x[number]))
    assert ranks[~number].tolist() == [5.0, 6.0]


def test_ranks_of_a_million_like_scipy():
    """At the rank agreement's size (a million samples), with continuous values (some near ties) and
    rounded ones (many ties)."""
    rng = np.random.default_rng(7)
    x = rng.random(1 << 20)
    x[::97] = np.nextafter(x[::97], 2.0)  # ...and their neighbours one unit up, shuffled in
    x = np.concatenate([x, np.nextafter(x[: 1 << 12], -1.0), np.round(rng.random(1 << 16), 3), -rng.random(1 << 12)])
    rng.shuffle(x)
    keep = rng.random(x.size) < 0.95
    np.testing.assert_array_equal(_kernels.average_rank(x, keep)[keep], sps.rankdata(x[keep]))


def test_ranks_of_nothing_kept_and_of_empty_arrays():
    within, pooled = _kernels.row_and_pooled_ranks(np.ones((3, 4)), np.zeros((3, 4), dtype=bool))
    assert np.isnan(within).all() and np.isnan(pooled).all()
    assert _kernels.average_rank(np.ones((2, 0)), np.ones((2, 0), dtype=bool)).shape == (2, 0)
    assert _kernels.average_rank(np.array([[3.0, 1.0]]), True).tolist() == [[2.0, 1.0]]  # keep broadcast


def test_ranking_kernel_refuses_bad_buffers():
    """The C entry point checks what it is given; the Python wrappers never pass such buffers."""
    from memoxr.influence._average_ranks import average_ranks_into

    x, keep, out, other = np.ones(6), np.ones(6, dtype=bool), np.empty(6), np.empty(6)
    with pytest.raises(TypeError, match="x: expected native float64 values, got buffer format 'f'"):
        average_ranks_into(x.astype(np.float32), keep, 3, out, other, False, False)
    with pytest.raises(TypeError, match="keep: expected native bool"):
        average_ranks_into(x, keep.astype(np.uint8), 3, out, other, False, False)
    with pytest.raises(TypeError, match="within: expected native float64"):
        average_ranks_into(x, keep, 3, x.astype(">f8"), other, False, False)
    with pytest.raises(ValueError, match="pooled: expected 6 values, as x has, got 5"):
        average_ranks_into(x, keep, 3, out, np.empty(5), False, False)
    with pytest.raises(ValueError, match="n: expected a positive row length dividing the 6 values of x, got 4"):
        average_ranks_into(x, keep, 4, out, other, False, False)
    with pytest.raises(ValueError, match="n: expected a positive row length"):
        average_ranks_into(x, keep, 0, out, other, False, False)
    with pytest.raises(ValueError, match="pooled: expected memory apart from within's"):
        average_ranks_into(x, keep, 3, out, out, False, False)
    with pytest.raises(ValueError, match="within: expected memory apart from x's"):
        average_ranks_into(x, keep, 3, x, None, False, False)
    with pytest.raises(ValueError, match="not C-contiguous"):
        average_ranks_into(x, keep, 3, np.empty((6, 2))[:, 0], None, False, False)
    average_ranks_into(x, keep, 3, out, None, False, False)  # pooled is optional
    assert out.tolist() == [2.0] * 6
    keep[1] = False
    average_ranks_into(x, keep, 3, out, other, False, True)  # centred: ranks less their mean, 0 where left out
    assert out.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0] and other.tolist() == [0.0] * 6
    average_ranks_into(np.arange(6.0), keep, 3, out, other, False, True)
    assert out.tolist() == [-0.5, 0.0, 0.5, -1.0, 0.0, 1.0] and other.tolist() == [-2.0, 0.0, -1.0, 0.0, 1.0, 2.0]


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(0, 15)), elements=small_values.filter(np.isfinite) | st.just(np.nan) | st.floats(-1, 1)),
    st.data(),
    st.booleans(),
)
def test_group_summary_equals_numpy_per_group(x, data, skipna):
    """Each row's valid entries summarised exactly as numpy does; NaN rules by skipna; empty -> NaN."""
    valid = data.draw(hnp.arrays(bool, x.shape))
    got = _kernels.group_summary(x, valid, skipna=skipna)
    for r in range(x.shape[0]):
        v = x[r][valid[r]]
        if skipna:
            v = v[~np.isnan(v)]
        if v.size == 0 or np.isnan(v).any():
            assert np.isnan(got[r]).all()
            continue
        expected = [v.mean(), v.std(), v.min(), v.max(), np.median(v)]
        np.testing.assert_allclose(got[r], expected, rtol=1e-12, atol=1e-15)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 10)), elements=small_values.filter(np.isfinite)),
    st.data(),
)
def test_centered_correlation_equals_numpy_corrcoef(a, data):
    """Pearson over the kept entries of each row == np.corrcoef of those entries; NaN below two or constant."""
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=small_values.filter(np.isfinite)))
    keep = data.draw(hnp.arrays(bool, a.shape))
    got = _kernels.centered_correlation(_kernels.centered(a, keep), _kernels.centered(b, keep), keep)
    for r in range(a.shape[0]):
        x, y = a[r][keep[r]], b[r][keep[r]]
        if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
            assert np.isnan(got[r])
        else:
            assert got[r] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 14)),
               elements=st.floats(-1, 1, width=32) | st.just(np.nan)),
    st.integers(1, 5),
    st.integers(1, 6),
)
def test_declared_reductions_give_the_same_numbers_on_numpy_and_dask(x, row_chunk, column_chunk):
    """apply_reduction: one numpy pass == a dask tree over any chunking, for both declared reductions."""
    import dask.array as da

    from memoxr.compute.reduction import apply_reduction
    from memoxr.dynamics import _kernels as dynamics_kernels

    lazy = da.from_array(x, chunks=(row_chunk, column_chunk))
    whole = apply_reduction(x, _kernels.ROW_STATISTICS, axis=1)
    np.testing.assert_array_equal(whole, _kernels.row_statistics(x, axis=1))  # the kernel, unchanged
    np.testing.assert_allclose(apply_reduction(lazy, _kernels.ROW_STATISTICS, axis=1).compute(), whole,
                               rtol=1e-9, atol=1e-12)
    sums = apply_reduction(lazy, dynamics_kernels.EPOCH_SUM, axis=0).compute()
    np.testing.assert_allclose(sums, dynamics_kernels.epoch_sum(x, axis=0), rtol=1e-12, atol=1e-15)
    assert apply_reduction(x, dynamics_kernels.EPOCH_SUM, axis=-2).shape == (x.shape[1],)
