"""Memorization and influence of scikit-learn's digits, estimated from many small models.

The recipe of Feldman & Zhang, scaled down to a laptop:

1. ``sklearn.datasets.load_digits`` (1,797 8x8 images, 10 classes), pixels
   scaled to ``[0, 1]``, split once into a stratified train and test split
   (``test_size=0.25``, ``random_state=seed``): 1,347 train and 450 test samples,
   ragged classes (131..137 train, 43..46 test per class);
2. ``n_trials`` times: draw a uniformly random subset ``S_t`` of
   ``round(0.7 * n_train)`` train samples, fit a multinomial logistic regression
   (``C=10``, lbfgs) on it, and record ``mask[t]`` (``i in S_t``), the model's
   correctness on every train sample and on every test sample;
3. run :func:`memoxr.estimate.estimate` on those trial records and save the
   influence store in the FZ ``.npz`` layout.

Run ``python -m memoxr.datasets.digits --trials 1000 --output digits_infl_matrix.npz``;
the result for ``--trials 1000 --seed 0`` ships with memoxr (see ``memoxr/data/README.md``).
Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MemoxrInputError

SUBSET_FRACTION = 0.7
TEST_SIZE = 0.25
C = 10.0
MAX_ITER = 300


@dataclass
class DigitsTrials:
    """Trial records of the digits models and figures about them.

    >>> trials = make_digits_trials(2)
    >>> trials.records["mask"].shape, trials.test_accuracy.shape
    ((2, 1347), (2,))
    """

    records: dict[str, np.ndarray]
    seconds: float
    train_accuracy: np.ndarray  # (trial,) accuracy on the model's own subset
    heldout_accuracy: np.ndarray  # (trial,) accuracy on the train samples left out
    test_accuracy: np.ndarray  # (trial,) accuracy on the test split
    info: dict = field(default_factory=dict)

    def summary(self) -> str:
        r = self.records
        tr_counts = np.bincount(r["tr_labels"]).tolist()
        tt_counts = np.bincount(r["tt_labels"]).tolist()
        return "\n".join([
            f"trials: {r['mask'].shape[0]} models, logistic regression (C={C}) on random "
            f"{SUBSET_FRACTION:.0%} subsets ({int(r['mask'][0].sum())} of {r['mask'].shape[1]} train samples)",
            f"split: {r['mask'].shape[1]} train, {r['test_correct'].shape[1]} test (stratified, "
            f"test_size={TEST_SIZE}, seed {self.info.get('seed')})",
            f"train per class: {tr_counts}",
            f"test per class:  {tt_counts}",
            f"accuracy (mean over models): subset {self.train_accuracy.mean():.4f}, "
            f"held-out train {self.heldout_accuracy.mean():.4f}, test {self.test_accuracy.mean():.4f} "
            f"(test min {self.test_accuracy.min():.4f}, max {self.test_accuracy.max():.4f})",
            f"training time: {self.seconds:.1f} s ({self.seconds / max(1, r['mask'].shape[0]) * 1e3:.1f} ms per model)",
        ])


def _sklearn():
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError(
            "memoxr.datasets.digits needs scikit-learn: pip install scikit-learn"
        ) from exc
    return load_digits, ConvergenceWarning, LogisticRegression, train_test_split


def _validate_trials(n_trials: int) -> int:
    if not isinstance(n_trials, int | np.integer) or n_trials < 2:
        raise MemoxrInputError(f"n_trials: expected a whole number >= 2, received {n_trials!r}")
    return int(n_trials)


def make_digits_trials(n_trials: int = 1000, *, seed: int = 0, verbose: bool = False) -> DigitsTrials:
    """Train ``n_trials`` logistic regressions on random 70% subsets of digits' train split.

    Returns
    -------
    DigitsTrials
        ``records``: ``mask``, ``train_correct`` bool ``(trial, 1347)``,
        ``test_correct`` bool ``(trial, 450)``, ``tr_labels``, ``tt_labels``
        int64 (the layout :func:`memoxr.estimate.estimate` reads); accuracies
        and the time spent training.

    Examples
    --------
    >>> trials = make_digits_trials(2, seed=1)
    >>> sorted(trials.records), bool(trials.test_accuracy.min() > 0.8)
    (['mask', 'test_correct', 'tr_labels', 'train_correct', 'tt_labels'], True)
    """
    n_trials = _validate_trials(n_trials)
    load_digits, ConvergenceWarning, LogisticRegression, train_test_split = _sklearn()
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x / 16.0, y, test_size=TEST_SIZE, stratify=y, random_state=seed
    )
    n_train, n_test = len(y_train), len(y_test)
    n_subset = int(round(SUBSET_FRACTION * n_train))
    rng = np.random.default_rng(seed)
    mask = np.zeros((n_trials, n_train), dtype=bool)
    train_correct = np.zeros((n_trials, n_train), dtype=bool)
    test_correct = np.zeros((n_trials, n_test), dtype=bool)
    start = time.perf_counter()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for t in range(n_trials):
            subset = rng.choice(n_train, size=n_subset, replace=False)
            mask[t, subset] = True
            model = LogisticRegression(C=C, max_iter=MAX_ITER).fit(x_train[subset], y_train[subset])
            train_correct[t] = model.predict(x_train) == y_train
            test_correct[t] = model.predict(x_test) == y_test
            if verbose and (t + 1) % 100 == 0:
                print(f"  {t + 1}/{n_trials} models, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    seconds = time.perf_counter() - start
    inside = (train_correct & mask).sum(axis=1) / mask.sum(axis=1)
    outside = (train_correct & ~mask).sum(axis=1) / (~mask).sum(axis=1)
    records = {
        "mask": mask,
        "train_correct": train_correct,
        "test_correct": test_correct,
        "tr_labels": y_train.astype(np.int64),
        "tt_labels": y_test.astype(np.int64),
    }
    return DigitsTrials(records, seconds, inside, outside, test_correct.mean(axis=1), {"seed": seed})


def make_digits_sample(
    output: str | os.PathLike[str],
    n_trials: int = 1000,
    *,
    seed: int = 0,
    overwrite: bool = False,
    trials_output: str | os.PathLike[str] | None = None,
    verbose: bool = False,
) -> tuple[Path, DigitsTrials]:
    """Train the models, estimate, and write the FZ-layout ``.npz`` (or a Zarr store).

    ``trials_output`` also saves the trial records (``.npz`` or Zarr).

    >>> import os, tempfile, warnings, numpy as np
    >>> with warnings.catch_warnings():  # 2 models: most samples are in both subsets or in none
    ...     warnings.simplefilter("ignore")
    ...     path, trials = make_digits_sample(os.path.join(tempfile.mkdtemp(), "d.npz"), n_trials=2)
    >>> np.load(path)["tr_mem"].shape
    (1347,)
    """
    from ..estimate import write_estimate, write_trials
    from ..io.storage import check_writable

    check_writable(output, overwrite=overwrite)
    if trials_output is not None:
        check_writable(trials_output, overwrite=overwrite)
    trials = make_digits_trials(n_trials, seed=seed, verbose=verbose)
    if trials_output is not None:
        write_trials(trials.records, trials_output, overwrite=overwrite)
    order = f"sklearn load_digits, train_test_split(test_size={TEST_SIZE}, stratify=y, random_state={seed})"
    path = Path(write_estimate(trials.records, output, overwrite=overwrite, sample_order=order))
    return path, trials


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memoxr.datasets.digits``: :func:`make_digits_sample` from the command line; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m memoxr.datasets.digits",
        description="Estimate memorization and influence on scikit-learn's digits from many small models.",
    )
    parser.add_argument("--trials", type=int, default=1000, help="number of models (default: 1000)")
    parser.add_argument("--output", required=True, help="FZ-layout .npz (or a Zarr store) to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the subsets (default: 0)")
    parser.add_argument("--trials-output", default=None, help="also save the trial records here (.npz or Zarr)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="only the files written")
    args = parser.parse_args(argv)
    try:
        start = time.perf_counter()
        path, trials = make_digits_sample(
            args.output, args.trials, seed=args.seed, overwrite=args.overwrite,
            trials_output=args.trials_output, verbose=not args.quiet,
        )
    except (MemoxrInputError, FileExistsError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(trials.summary())
        print(f"total time (training + estimate + write): {time.perf_counter() - start:.1f} s")
    print(f"wrote {path} ({Path(path).stat().st_size / 1024:.0f} KiB)")
    if args.trials_output is not None:
        print(f"wrote {args.trials_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
