"""Shared pieces of the figures: input checks, number formatting, axis scales, class ticks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.scale import SymmetricalLogTransform
from matplotlib.transforms import ScaledTranslation

from ..compute.progress import compute
from ..errors import MemoxrInputError
from ..io.schema import CLASS, TRAIN

ArrayLike = Any  # numpy array, list, dask array or xarray.DataArray

#: Axis scales of the distribution figures; "auto" picks one from the data (:func:`resolve_scale`).
SCALES = ("auto", "linear", "log", "symlog")
Scale = Literal["auto", "linear", "log", "symlog"]
_MIN_TICK_FONT = 5.5  # points; class labels are thinned rather than drawn smaller
#: Zero-heavy: at least this share of exact zeros makes "auto" leave the linear scale.
ZERO_HEAVY = 0.25
#: Skewed: the 90th percentile of the non-zero magnitudes this many times the 10th.
SKEWED_RATIO = 100.0


# --------------------------------------------------------------------------- validation


def check_choice(argument: str, value: Any, choices: Sequence[Any]) -> None:
    """Refuse ``value`` unless it is one of ``choices``, naming ``argument``.

    Examples
    --------
    >>> check_choice("scale", "log", SCALES)
    >>> check_choice("scale", "cubic", SCALES)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: scale must be one of ['auto', 'linear', 'log', 'symlog']; received 'cubic'
    """
    if value not in choices:
        raise MemoxrInputError(f"{argument} must be one of {list(choices)}; received {value!r}")


def score_variables(scores: xr.Dataset) -> list[str]:
    """Names of the ``(class, train_sample)`` score variables of ``scores``.

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> score_variables(scores)  # doctest: +NORMALIZE_WHITESPACE
    ['influence_weighted_memo', 'representativeness_score', 'weighted_combination', 'critical_sample_score',
     'original_memo', 'pos_infl_mean', 'influence_std']
    """
    return [
        str(name)
        for name, var in scores.data_vars.items()
        if set(var.dims) == {CLASS, TRAIN} and name != "training_indices"
    ]


def check_score_name(scores: xr.Dataset, name: str, argument: str = "name") -> None:
    valid = score_variables(scores)
    if name not in valid:
        raise MemoxrInputError(
            f"{argument} must be a (class, train_sample) score variable, one of {valid}; received {name!r}"
        )


def class_position(scores: xr.Dataset, label: Any, argument: str) -> int:
    labels = scores[CLASS].values.tolist()
    if label not in labels:
        shown = labels if len(labels) <= 12 else [*labels[:5], "...", *labels[-5:]]
        raise MemoxrInputError(f"{argument} must be one of the store's classes {shown}; received {label!r}")
    return labels.index(label)


def check_bins(bins: Any, n: int | None = None) -> None:
    """Refuse a bin count that is not a whole number in [1, ``n``].

    Examples
    --------
    >>> check_bins(10, n=100)
    >>> check_bins(0)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: bins must be an integer >= 1; received 0
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise MemoxrInputError(f"bins must be an integer >= 1; received {bins!r}")
    if n is not None and bins > n:
        raise MemoxrInputError(
            f"bins must be at most the number of samples with finite values ({n}); received {bins}"
        )


def check_k(k: Any) -> None:
    """Refuse a ``k`` that is not a positive whole number (a bool is not one).

    Examples
    --------
    >>> check_k(True)
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: k must be a positive integer; received True
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MemoxrInputError(f"k must be a positive integer; received {k!r}")


def check_mask(mask: ArrayLike, argument: str = "mask") -> None:
    """Refuse a mask that is not boolean, with the conversion to use.

    Examples
    --------
    >>> check_mask(np.array([True, False]))
    >>> check_mask(np.array([0.5, 1.0]))
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: mask must be a boolean array (True = positive sample); received dtype
    float64; convert with mask.astype(bool) if 1 marks a positive
    """
    dtype = getattr(mask, "dtype", None)
    if dtype is None:
        dtype = np.asarray(mask).dtype
    if dtype != np.bool_:
        raise MemoxrInputError(
            f"{argument} must be a boolean array (True = positive sample); received dtype {dtype}; "
            "convert with mask.astype(bool) if 1 marks a positive"
        )


def check_paired(ref_name: str, ref: ArrayLike, name: str, value: ArrayLike) -> None:
    """Same shape; two DataArrays must also share dims and coordinates.

    Examples
    --------
    >>> check_paired("mask", np.zeros(3, bool), "proxies['csl']", np.zeros(4))
    Traceback (most recent call last):
    ...
    memoxr.errors.MemoxrInputError: proxies['csl'] must have the shape of mask (3,) (one value per sample); received (4,)
    """
    ref_shape, shape = np.shape(ref), np.shape(value)
    if shape != ref_shape:
        raise MemoxrInputError(
            f"{name} must have the shape of {ref_name} {ref_shape} (one value per sample); received {shape}"
        )
    if isinstance(ref, xr.DataArray) and isinstance(value, xr.DataArray):
        if value.dims != ref.dims:
            raise MemoxrInputError(f"{name} must have the dims of {ref_name} {ref.dims}; received {value.dims}")
        try:
            xr.align(ref, value, join="exact")
        except ValueError as exc:
            raise MemoxrInputError(
                f"{name} and {ref_name} must label the same samples in the same order "
                f"(identical coordinates); received different coordinates: {exc}"
            ) from exc


def check_proxies(proxies: Any) -> None:
    if not isinstance(proxies, Mapping) or not proxies:
        raise MemoxrInputError(
            f"proxies must be a non-empty dict from name to array; received {type(proxies).__name__}"
            + (" (empty)" if isinstance(proxies, Mapping) else "")
        )


# --------------------------------------------------------------------------- data


def to_numpy(values: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Flattened numpy copies; dask-backed inputs are computed together, in one pass.

    Examples
    --------
    >>> import dask.array as da
    >>> to_numpy({"a": da.ones((2, 2), chunks=1), "b": xr.DataArray([1, 2])})
    {'a': array([1., 1., 1., 1.]), 'b': array([1, 2])}
    """
    computed = compute(*values.values())
    out = {}
    for name, value in zip(values, computed, strict=True):
        data = value.values if isinstance(value, xr.DataArray) else np.asarray(value)
        out[name] = np.ravel(data)
    return out


def scores_subset(scores: xr.Dataset, names: Sequence[str]) -> xr.Dataset:
    """The named variables and ``training_indices``, in memory (one dask pass).

    Examples
    --------
    >>> import memoxr
    >>> scores = memoxr.influence_scores(memoxr.open_influence(memoxr.sample_path()))
    >>> subset = scores_subset(scores, ["original_memo"])
    >>> list(subset.data_vars), "training_indices" in subset.coords, subset["original_memo"].chunks is None
    (['original_memo'], True, True)
    """
    wanted = list(dict.fromkeys([*names, "training_indices"]))
    (subset,) = compute(scores[wanted])
    return subset


def label_of(value: ArrayLike, default: str) -> str:
    """``long_name [units]`` of a DataArray, else its name, else ``default``.

    Examples
    --------
    >>> csl = xr.DataArray([1.0], name="csl", attrs={"long_name": "cumulative sample loss", "units": "nats"})
    >>> label_of(csl, "proxy"), label_of(np.array([1.0]), "proxy")
    ('cumulative sample loss [nats]', 'proxy')
    """
    if isinstance(value, xr.DataArray):
        name = value.attrs.get("long_name") or value.name
        if name is not None:
            units = value.attrs.get("units")
            return f"{name} [{units}]" if units else str(name)
    return default


# --------------------------------------------------------------------------- numbers


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits: 0.0123, 3.19e-06, 1.23e+05; never ``0.00000``.

    Examples
    --------
    >>> significant(0.0123456), significant(3.19e-6), significant(123456.0), significant(7)
    ('0.0123', '3.19e-06', '1.23e+05', '7')
    """
    if isinstance(value, int | np.integer):
        return str(int(value))
    if np.isnan(value):
        return "NaN"
    return f"{float(value):.{digits}g}"


# --------------------------------------------------------------------------- scales


def resolve_scale(values: np.ndarray, scale: Scale) -> Scale:
    """The axis scale for ``values`` (finite): ``scale`` itself unless it is ``"auto"``.

    ``"auto"`` keeps the linear scale unless the values are zero-heavy (at least
    :data:`ZERO_HEAVY` exactly 0) or skewed (the 90th percentile of the non-zero
    magnitudes at least :data:`SKEWED_RATIO` times the 10th): then ``"log"``
    for non-negative values (exact zeros are counted, not drawn), ``"symlog"``
    when some are negative.

    Examples
    --------
    >>> resolve_scale(np.linspace(1, 2, 10), "auto")  # neither zero-heavy nor skewed
    'linear'
    >>> resolve_scale(np.r_[np.zeros(50), np.ones(10)], "auto")  # zero-heavy, non-negative
    'log'
    >>> resolve_scale(np.r_[-np.logspace(-6, 0, 10), np.zeros(40)], "auto")  # zero-heavy, negative values
    'symlog'
    """
    check_choice("scale", scale, SCALES)
    if scale != "auto":
        return scale
    nonzero = np.abs(values[values != 0])
    if not nonzero.size:
        return "linear"
    low, high = np.percentile(nonzero, [10, 90])
    if (values == 0).mean() < ZERO_HEAVY and high < SKEWED_RATIO * low:
        return "linear"
    return "symlog" if (values < 0).any() else "log"


def symlog_threshold(values: np.ndarray) -> float:
    """Linear range of a symlog axis: the power of ten at or below the 5th percentile of |non-zero values|.

    Examples
    --------
    >>> symlog_threshold(np.array([0.0, 0.003, 0.2, 5.0]))  # 5th percentile of |non-zero| about 0.02
    0.01
    """
    nonzero = np.abs(values[np.isfinite(values) & (values != 0)])
    if not nonzero.size:
        return 1.0
    return float(10.0 ** math.floor(math.log10(np.percentile(nonzero, 5))))


def scale_transforms(scale: str, values: np.ndarray) -> tuple[Callable, Callable, dict[str, Any]]:
    """Forward and inverse transforms of a resolved scale, and the ``set_yscale`` keywords.

    Statistics (quartiles, Tukey fences, densities) are computed on the
    transformed values, so they mean on the axis what they would on a linear one.

    Examples
    --------
    >>> forward, backward, keywords = scale_transforms("log", np.array([1.0, 100.0]))
    >>> forward(np.array([1.0, 100.0])), backward(np.array([0.0, 2.0])), keywords
    (array([0., 2.]), array([  1., 100.]), {})
    """
    if scale == "log":
        return np.log10, lambda t: 10.0 ** np.asarray(t), {}
    if scale == "symlog":
        threshold = symlog_threshold(values)
        transform = SymmetricalLogTransform(10.0, threshold, 1.0)
        inverse = transform.inverted()

        def forward(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=float)  # matplotlib's transforms take arrays of one dim or more
            return cast(np.ndarray, transform.transform_non_affine(np.atleast_1d(v))).reshape(v.shape)

        def backward(t: np.ndarray) -> np.ndarray:
            t = np.asarray(t, dtype=float)
            return cast(np.ndarray, inverse.transform_non_affine(np.atleast_1d(t))).reshape(t.shape)

        return forward, backward, {"linthresh": threshold, "linscale": 1.0}
    return (lambda v: np.asarray(v, dtype=float)), (lambda t: np.asarray(t, dtype=float)), {}


# --------------------------------------------------------------------------- axes


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def distribution_size(n_classes: int) -> tuple[float, float]:
    """Figure size of a per-class distribution figure: wider with more classes, up to 16 inches.

    Examples
    --------
    >>> distribution_size(10), distribution_size(100)
    ((6.0, 5.0), (16.0, 5.0))
    """
    return min(16.0, max(6.0, 0.16 * n_classes + 2.5)), 5.0


def class_ticks(axis: Any, ax: Axes, positions: np.ndarray, labels: Sequence[Any]) -> None:
    """Labels on ``axis`` (an x axis of ``ax`` or of its secondary axis), thinned to stay readable.

    Every one is labelled while they fit at a readable size; else every
    ``step``-th, each class keeping a small (minor) tick. Rotated when many.
    """
    n = len(positions)
    if not n:
        return
    spacing = 72.0 * ax.get_window_extent().width / ax.figure.dpi / n  # points between two classes
    fontsize = min(10.0, 0.9 * spacing)
    step = 1 if fontsize >= _MIN_TICK_FONT else math.ceil(_MIN_TICK_FONT / (0.9 * spacing))
    fontsize = max(fontsize, _MIN_TICK_FONT)
    axis.set_xticks(positions[::step], [str(v) for v in labels[::step]], rotation=90 if n > 12 else 0,
                    fontsize=fontsize)
    if step > 1:
        axis.set_xticks(positions, minor=True)


def legend_outside(ax: Axes, *, ncols: int = 1) -> None:
    """The legend below the axes, under the x label, never over the data (constrained layout makes room).

    Anchored a fixed 0.6 inch below the axes: the tick labels and the x label
    are sized in points, so the gap holds at any axes size.
    """
    below = ax.transAxes + ScaledTranslation(0.0, -0.6, ax.figure.dpi_scale_trans)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncols=ncols, fontsize="small",
              frameon=False)
