"""Python's cyclic garbage collector during the ``memoxr`` command's start-up and exit.

A command imports numpy, pandas, xarray, dask and zarr: some 90,000 objects that
live until the process exits. Python's collector scans them again and again as
they arrive and frees almost nothing (during ``memoxr calculate``'s imports: about
250 young, 20 middle and 2 full collections, 0.07-0.13 s, counted with
``gc.callbacks``), and at exit it scans everything once more. So the command, and
only the command (like :mod:`memoxr.compute.malloc`):

* pauses automatic collection from its start until its first computation
  (:func:`resume`, called by :func:`memoxr.compute.progress.compute`), then
  moves everything alive to the permanent generation (``gc.freeze``, made for
  objects that live as long as the process) and collects as usual from there.
  The few hundred to two thousand cyclic garbage objects start-up leaves (a
  fraction of a MB) are frozen with the rest;
* freezes what is alive at exit, before the interpreter's last collections
  (:func:`freeze_at_exit`), so the exit does not scan what it is about to free.

Only commands whose work all goes through that gateway pause the collector
(``cli.main.COLLECTOR_PAUSED``); with the pause bounded by their first
computation, cyclic garbage is collected during the work as it always was. A
host that turned the collector off, or froze objects of its own, keeps them as
they were.
"""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The pause sets threshold0 to 0 ("disables collection", Python's docs) and keeps gc.isenabled()
# True: dask's ``disable_gc`` decorator records gc.isenabled() when dask.array is imported and
# restores that state after every slice, so a gc.disable() here would switch the collector off
# for good in any process that imported dask.array during the pause.
_lock = threading.Lock()
_open = False  # a pause is open, from its start to its end (also after resume())
_saved: tuple[int, ...] | None = None  # the thresholds resume() restores; None once restored
_may_freeze = False  # nothing was frozen before the pause, so resume() freezes and the end thaws


def _collecting() -> bool:
    return gc.isenabled() and gc.get_threshold()[0] != 0


@contextmanager
def paused_until_work() -> Iterator[None]:
    """No automatic collection inside, until :func:`resume`; as before afterwards.

    Objects :func:`resume` froze are thawed at the end, so an in-process caller
    (a test, a notebook) keeps nothing frozen.

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
    global _open, _saved, _may_freeze
    with _lock:
        owner = not _open and _collecting()  # else nested, or the host's own setting: left alone
        if owner:
            _open, _saved = True, gc.get_threshold()
            _may_freeze = gc.get_freeze_count() == 0
            gc.set_threshold(0)
    if not owner:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            saved, _saved = _saved, None
            if saved is not None:  # no computation came: collection as before
                gc.set_threshold(*saved)
            elif _may_freeze:  # resume() froze what was alive: thawed again
                gc.unfreeze()
            _open = False


def resume() -> None:
    """End a pause: everything alive is frozen and collection runs again. A no-op otherwise."""
    global _saved
    with _lock:
        saved, _saved = _saved, None
        if saved is None:
            return
        if _may_freeze:
            gc.freeze()
        gc.set_threshold(*saved)


def freeze_at_exit() -> None:
    """Freeze what is alive when the interpreter exits, before its last collections.

    For the command's process (``cli.main.run``): frozen objects are never collected
    again, so the freeze waits for the exit (``atexit``), not for the command's return.
    """
    atexit.register(gc.freeze)
