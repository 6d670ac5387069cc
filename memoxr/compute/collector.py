"""Python's cyclic garbage collector during the ``memoxr`` command's start-up and exit.

A command imports numpy, pandas, xarray, dask and zarr: some 90,000 objects that
live until the process exits. Python's collector scans them again and again as
they arrive and frees nothing (during ``memoxr calculate``'s imports: about 250
young, 20 middle and 2 full collections, 0.07-0.13 s, counted with
``gc.callbacks``), and at exit it scans everything once more. So the command, and
only the command (like :mod:`memoxr.compute.malloc`):

* pauses the collector from its start until its first computation
  (:func:`resume`, called by :func:`memoxr.compute.progress.compute`), then
  moves everything alive to the permanent generation (``gc.freeze``, made for
  objects that live as long as the process) and collects as usual from there;
* freezes what is alive once more when the command has returned (:func:`frozen_at_exit`),
  so the exit does not scan what it is about to free anyway.

Only commands whose work all goes through that gateway pause the collector
(``cli.main.COLLECTOR_PAUSED``); with the pause bounded by their first
computation, cyclic garbage is collected during the work as it always was. A
host that disabled the collector itself is left alone.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# The pause sets threshold0 to 0 ("disables collection", Python's docs) and keeps gc.isenabled()
# True: dask's ``disable_gc`` decorator records gc.isenabled() when dask.array is imported and
# restores that state after every slice, so a gc.disable() here would switch the collector off
# for good in any process that imported dask.array during the pause.
_saved: tuple[int, ...] | None = None  # the thresholds to restore while paused, else None
_frozen = False  # whether resume() froze objects, for the pause to thaw when it ends in-process


def _collecting() -> bool:
    return gc.isenabled() and gc.get_threshold()[0] != 0


@contextmanager
def paused_until_work() -> Iterator[None]:
    """No automatic collection inside, until :func:`resume`; as before afterwards (nothing left frozen).

    Examples
    --------
    >>> default = gc.get_threshold()
    >>> with paused_until_work():
    ...     paused = gc.get_threshold()[0]
    ...     resume()
    ...     resumed = gc.get_threshold() == default, gc.get_freeze_count() > 0
    >>> paused, resumed, gc.get_freeze_count()
    (0, (True, True), 0)
    """
    global _saved, _frozen
    if _saved is not None or not _collecting():  # nested, or the host's own setting: leave it alone
        yield
        return
    _saved, _frozen = gc.get_threshold(), False
    gc.set_threshold(0)
    try:
        yield
    finally:
        if _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
        if _frozen:  # in-process callers (tests, notebooks) keep no frozen objects
            _frozen = False
            gc.unfreeze()


def resume() -> None:
    """End a pause: what start-up made is frozen and collection runs again. A no-op otherwise."""
    global _saved, _frozen
    if _saved is None:
        return
    gc.freeze()
    _frozen = True
    gc.set_threshold(*_saved)
    _saved = None


@contextmanager
def frozen_at_exit() -> Iterator[None]:
    """Around a whole process: what is alive at the end is frozen, so the exit does not scan it.

    For the process's entry point only: frozen objects are never collected again.
    """
    try:
        yield
    finally:
        gc.freeze()
