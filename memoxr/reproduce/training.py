"""The data and the models of the reproduction: scikit-learn's digits and small networks.

Every model is a scikit-learn ``MLPClassifier`` trained one ``partial_fit`` pass
per epoch (Adam, batch 64, learning rate 1e-2, no weight decay), as in
:mod:`memoxr.dynamics.demo`; ``hidden_layer_sizes=()`` makes it a multinomial
logistic regression. The same recipe serves the Feldman–Zhang trials (on
random 70% subsets) and the full-data runs whose dynamics are recorded, so the
memorization a proxy is compared with is the memorization of its own model
family. One BLAS thread per model: many small models are faster that way and
the results do not depend on the thread count.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datasets.digits import SUBSET_FRACTION, TEST_SIZE

if TYPE_CHECKING:
    from ..dynamics import DynamicsWriter

#: Architecture name -> hidden layer sizes of the MLP (``()``: logistic regression).
ARCHITECTURES: dict[str, tuple[int, ...]] = {"logreg": (), "mlp32": (32,), "mlp128": (128,)}
LEARNING_RATE = 1e-2
BATCH_SIZE = 64
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """The digits train/test split every stage uses (train samples are identified by position)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sample_order: str

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max()) + 1


def digits_split(seed: int = SPLIT_SEED) -> Split:
    """digits (pixels / 16), split as :mod:`memoxr.datasets.digits` splits it (same sample order name).

    Examples
    --------
    >>> split = digits_split()
    >>> split.x_train.shape, split.x_test.shape, split.n_classes
    ((1347, 64), (450, 64), 10)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    order = f"sklearn load_digits, train_test_split(test_size={TEST_SIZE}, stratify=y, random_state={seed})"
    return Split(x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), order)


def new_model(architecture: str, seed: int) -> Any:  # an MLPClassifier (scikit-learn has no types)
    """An untrained scikit-learn MLP of ``architecture`` (a key of :data:`ARCHITECTURES`).

    Examples
    --------
    >>> new_model("mlp32", seed=0).hidden_layer_sizes, new_model("logreg", seed=0).hidden_layer_sizes
    ((32,), ())
    """
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=ARCHITECTURES[architecture], learning_rate_init=LEARNING_RATE, alpha=0.0,
        batch_size=BATCH_SIZE, random_state=seed,
    )


def epoch_values(prob: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample loss, correctness, true-class probability and ``||softmax - onehot||`` (logit gradient norm).

    Examples
    --------
    >>> values = epoch_values(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))
    >>> values["loss"].round(3), values["correct"], values["grad_norm"].round(3)
    (array([0.105, 1.204]), array([ True, False]), array([0.141, 0.99 ]))
    """
    rows = np.arange(labels.size)
    p_true = prob[rows, labels]
    onehot = np.zeros_like(prob)
    onehot[rows, labels] = 1.0
    return {
        "loss": -np.log(np.clip(p_true, 1e-12, None)),
        "correct": prob.argmax(axis=1) == labels,
        "true_prob": p_true,
        "grad_norm": np.linalg.norm(prob - onehot, axis=1),
    }


def train(
    architecture: str, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, n_classes: int,
    after_epoch: Callable[[int, Any], None] | None = None,
) -> Any:
    """Train one model ``epochs`` passes over ``(x, y)``; ``after_epoch(epoch, model)`` after each.

    Examples
    --------
    >>> split = digits_split()
    >>> model = train("logreg", split.x_train, split.y_train, epochs=2, seed=0, n_classes=10)
    >>> bool((model.predict(split.x_test) == split.y_test).mean() > 0.8)
    True
    """
    from sklearn import config_context
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    classes = np.arange(n_classes)
    model = new_model(architecture, seed)
    # The inputs are finite and well formed: scikit-learn's per-call checks would cost a third of the time.
    with threadpool_limits(1), config_context(assume_finite=True, skip_parameter_validation=True), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(epochs):
            model.partial_fit(x, y, classes=classes)
            if after_epoch is not None:
                after_epoch(epoch, model)
    return model


def record_run(writer: DynamicsWriter, run: dict, architecture: str, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int,
               n_classes: int) -> float:
    """Train on ``(x, y)`` and write every epoch's values for ``run`` with a ``DynamicsWriter``; seconds taken."""
    start = time.perf_counter()

    def write(epoch: int, model: Any) -> None:
        writer.write_epoch(epoch, run=run, **epoch_values(model.predict_proba(x), y))

    train(architecture, x, y, epochs=epochs, seed=seed, n_classes=n_classes, after_epoch=write)
    return time.perf_counter() - start


def fz_trials(
    split: Split, architecture: str, *, n_trials: int, epochs: int, seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Trial records of ``n_trials`` models on random 70% subsets (the layout ``memoxr.estimate`` reads).

    Returns the records and the seconds spent training and predicting.

    Examples
    --------
    >>> records, seconds = fz_trials(digits_split(), "logreg", n_trials=4, epochs=1, seed=0)
    >>> records["mask"].shape, records["test_correct"].shape, records["mask"].sum(axis=1)  # 70% of 1347
    ((4, 1347), (4, 450), array([943, 943, 943, 943]))
    """
    n_train, n_test = split.y_train.size, split.y_test.size
    n_subset = int(round(SUBSET_FRACTION * n_train))
    rng = np.random.default_rng([seed, list(ARCHITECTURES).index(architecture)])
    mask = np.zeros((n_trials, n_train), dtype=bool)
    train_correct = np.zeros((n_trials, n_train), dtype=bool)
    test_correct = np.zeros((n_trials, n_test), dtype=bool)
    start = time.perf_counter()
    for t in range(n_trials):
        subset = rng.choice(n_train, size=n_subset, replace=False)
        mask[t, subset] = True
        model = train(architecture, split.x_train[subset], split.y_train[subset], epochs=epochs,
                      seed=seed * 100_003 + t, n_classes=split.n_classes)
        train_correct[t] = model.predict(split.x_train) == split.y_train
        test_correct[t] = model.predict(split.x_test) == split.y_test
        if progress is not None and (t + 1) % max(1, n_trials // 4) == 0:
            progress(f"{t + 1}/{n_trials} models, {time.perf_counter() - start:.1f} s")
    records = {"mask": mask, "train_correct": train_correct, "test_correct": test_correct,
               "tr_labels": split.y_train, "tt_labels": split.y_test}
    return records, time.perf_counter() - start


def plant_duplicates(
    split: Split, *, count: int, candidates: np.ndarray, near_std: float, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Copies of ``count`` train samples drawn at random among ``candidates``, appended after the train split.

    Returns the source positions (sorted), per kind (``exact``: identical pixels;
    ``near``: Gaussian pixel noise of std ``near_std``, clipped to [0, 1]) the
    augmented inputs, and the duplicate mask over the augmented samples (sources
    and copies).

    Examples
    --------
    >>> split = digits_split()
    >>> sources, inputs, mask = plant_duplicates(split, count=3, candidates=np.arange(10), near_std=0.05, seed=0)
    >>> sources, inputs["exact"].shape, int(mask.sum())
    (array([3, 5, 7]), (1350, 64), 6)
    >>> np.array_equal(inputs["exact"][-3:], split.x_train[sources])
    True
    """
    n = split.y_train.size
    rng = np.random.default_rng([seed, 7, candidates.size])
    sources = np.sort(rng.choice(candidates, size=count, replace=False))
    copies = split.x_train[sources]
    near = np.clip(copies + rng.normal(0.0, near_std, size=copies.shape), 0.0, 1.0)
    inputs = {"exact": np.vstack([split.x_train, copies]), "near": np.vstack([split.x_train, near])}
    mask = np.zeros(n + sources.size, dtype=bool)
    mask[sources] = True
    mask[n:] = True
    return sources, inputs, mask
