"""The sha256 of a source file, optionally computed in the background.

Standard library only, so the command line can start a conversion's checksum before its
heavy imports (about half a second on one core) and hash on the other core meanwhile.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

#: Bytes read at a time.
BLOCK = 8 * 2**20


def local_sha256(path: str | os.PathLike[str], *, block: int | None = None, stop: threading.Event | None = None) -> str:
    """Hex sha256 of a local file; ``""`` if ``stop`` is set before the end.

    Read ``block`` bytes at a time (default :data:`BLOCK`) into one buffer: its pages are
    faulted in once, not once per block.

    >>> _ = open("hello.txt", "w").write("hello")
    >>> local_sha256("hello.txt")[:16]
    '2cf24dba5fb0a30e'
    """
    digest, buffer = hashlib.sha256(), bytearray(block or BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fp:
        while received := fp.readinto(buffer):
            if stop is not None and stop.is_set():
                return ""
            digest.update(view[:received])  # releases the GIL
    return digest.hexdigest()


class BackgroundChecksum:
    """A file's checksum computed on a daemon thread, started at construction.

    ``compute(target, stop)`` returns the hex digest, or ``""`` once ``stop`` is set
    (default: :func:`local_sha256` of the local path ``target``). :meth:`result` waits and
    returns the digest, or raises the computation's error, or ``CancelledError`` if
    :meth:`cancel` stopped it first.

    >>> _ = open("hello.txt", "w").write("hello")
    >>> BackgroundChecksum("hello.txt").result()[:16]
    '2cf24dba5fb0a30e'
    """

    def __init__(self, target: str | os.PathLike[str], compute: Callable[[Any, threading.Event], str] | None = None) -> None:
        self.target = target
        self._compute = compute or (lambda path, stop: local_sha256(path, stop=stop))
        self._stop = threading.Event()
        self._done = threading.Event()
        self._digest = ""
        self._error: BaseException | None = None
        # A daemon: a command that fails before asking for the result never waits for it.
        threading.Thread(target=self._run, name="memoxr-checksum", daemon=True).start()

    def _run(self) -> None:
        try:
            self._digest = self._compute(self.target, self._stop)
        except BaseException as error:  # handed to whoever asks for the result
            self._error = error
        finally:
            self._done.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called before the digest was complete."""
        return self._stop.is_set() and not (self._done.is_set() and self._digest)

    def result(self) -> str:
        """The hex digest, once computed; the computation's error if it failed."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        if not self._digest:  # never an empty digest recorded as a checksum
            raise CancelledError(f"the checksum of {os.fspath(self.target)!r} gave no digest (cancelled before it finished)")
        return self._digest

    def cancel(self, *, wait: bool = False) -> None:
        """Stop at the next block (a no-op once computed); with ``wait``, until the file is closed."""
        self._stop.set()
        if wait:
            self._done.wait()
