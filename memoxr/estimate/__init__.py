"""The Feldman–Zhang subsampling estimator on Dask: trial records in, an influence store out.

Trial records
-------------
Many models are trained, each on a random subset ``S_t`` of the train split
(Feldman & Zhang used 70%), and each is evaluated on every train and test
sample. The records of ``n_trials`` such runs are five arrays:

==================  ======================  =============================================
key                 dims (shape)            meaning
==================  ======================  =============================================
``mask``            ``(trial, train_id)``   bool or 0/1: train sample ``i`` is in ``S_t``
``train_correct``   ``(trial, train_id)``   0/1: model ``t`` right on train sample ``i``
``test_correct``    ``(trial, test_id)``    0/1: model ``t`` right on test sample ``j``
``tr_labels``       ``(train_id,)``         class label (whole number >= 0) of each train sample
``tt_labels``       ``(test_id,)``          class label of each test sample
==================  ======================  =============================================

They are read from an ``.npz`` archive (:func:`numpy.savez`, no pickle; each
member read whole when computed, as npz members cannot be sliced), from a Zarr
store (a group holding arrays of these names, for example one written by
:func:`write_trials` or by ``xarray.Dataset.to_zarr``; read chunk by chunk), or
from a mapping or :class:`xarray.Dataset` of numpy or dask arrays. Other keys
are ignored (and listed in the ``ignored_keys`` attribute). :func:`open_trials`
opens a file as a lazy Dataset.

Estimator
---------
With ``n_in(i) = sum_t mask[t, i]`` and ``n_out(i) = n_trials - n_in(i)``:

- ``mem(i) = mean_t(train_correct[t, i] | mask[t, i]) - mean_t(train_correct[t, i] | not mask[t, i])``;
- ``infl(i, j) = mean_t(test_correct[t, j] | mask[t, i]) - mean_t(test_correct[t, j] | not mask[t, i])``.

Both are computed from sums over trials (``mask.T @ test_correct`` and friends,
see :mod:`memoxr.estimate.kernels`), chunk by chunk, so memory is bounded by
the chunk sizes, not by the number of trials. :func:`estimate` is lazy: it
reads the records' metadata and labels (and an npz's sha256), nothing else.

A train sample that is in every trial's subset or in none has no estimate: its
memorization (``tr_mem``) and its whole influence row are NaN, and a
:class:`DegenerateSampleWarning` names how many and which samples. Scores of
such a sample are NaN too (``memoxr.influence_scores`` with ``skipna=False``).

Output
------
The influence store of ``memoxr convert``, with exactly its schema (see
:mod:`memoxr.io.schema`): the influence of each train sample on the test samples
of its own class, ``influence(class, train_sample, test_sample)`` float32,
NaN-padded for ragged classes; ``memorization``, ``train_index``,
``test_index``, ``train_count``, ``test_count``, ``tr_mem``, ``tr_labels``,
``tt_labels``. Classes are the distinct labels, ascending; a class's samples
follow the split's order. With ``full=True`` the whole ``influence_full(train_id,
test_id)`` is added. Save it as a Zarr store (:func:`estimate_to_zarr`) or as an
FZ-layout ``.npz`` (:func:`write_fz_npz`); :func:`write_estimate` picks by suffix.

A Zarr estimate store also keeps, per train sample, ``n_in`` and ``n_out``,
the standard errors ``tr_mem_se`` and ``influence_se`` (of a difference of two
independent proportions: ``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) /
n_out)``) and the sums the estimate is made of (:mod:`memoxr.estimate.sums`),
so that new trials can be added to it (:func:`append_estimate`,
``memoxr estimate TRIALS OUT --append``); ``bootstrap=N`` adds percentile
intervals (:mod:`memoxr.estimate.bootstrap`).

Example
-------
>>> import numpy as np, memoxr.estimate as me
>>> mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
>>> ds = me.estimate({"mask": mask, "train_correct": mask, "test_correct": mask[:, :1],
...                   "tr_labels": np.array([0, 0]), "tt_labels": np.array([0])})
>>> ds["influence"].chunks is not None, ds["tr_mem"].values.tolist()  # lazy until computed
(True, [1.0, 1.0])

Modules
-------
==========================  ====================================================================
:mod:`.trials`              the trial schema; reading records lazily and checking them
:mod:`.kernels`             numpy kernels: sums over trials, products, estimates from sums
:mod:`.sums`                the sufficient sums as dask graphs
:mod:`.variables`           the store's variables (estimate, standard errors, sums) from the sums
:mod:`.graph`               :func:`estimate`: records in, a lazy influence store out
:mod:`.bootstrap`           percentile intervals from resampled trials
:mod:`.writers`             the estimate's writers (Zarr store, FZ-layout npz) and write_trials
:mod:`.incremental`         adding trials to an estimate store
:mod:`.uncertainty`         convergence over trials; standard errors carried into the scores
:mod:`.plan`                the ``--dry-run`` cost plan
==========================  ====================================================================
"""

from __future__ import annotations

from .graph import DegenerateSampleWarning, estimate
from .incremental import append_estimate
from .trials import TRIAL, TRIAL_VARIABLES, open_trials
from .writers import estimate_to_zarr, write_estimate, write_fz_npz, write_trials

__all__ = [
    "TRIAL",
    "TRIAL_VARIABLES",
    "DegenerateSampleWarning",
    "append_estimate",
    "estimate",
    "estimate_to_zarr",
    "open_trials",
    "write_estimate",
    "write_fz_npz",
    "write_trials",
]

#: Names memoxr 0.x exported from the single-module ``memoxr.estimate``, and where they live now.
_MOVED_NAMES = {
    "DEFAULT_SAMPLE_ORDER": "graph",
    "ESTIMATOR_NAME": "graph",
    "class_indices": "graph",
    "pass_sums_graph": "graph",
    "records_sums": "graph",
    "Records": "trials",
    "read_records": "trials",
    "write_estimate_store": "writers",
}


def __getattr__(name: str) -> object:
    if name in _MOVED_NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_MOVED_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
