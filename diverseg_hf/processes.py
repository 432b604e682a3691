"""Process pools whose workers never outlive the run, and SIGTERM/SIGHUP ending a run like Ctrl-C.

:func:`process_pool` is the one way the package starts worker processes (scoring engine, shard copy,
export, calibrate, blockiness): fork where the platform has it and the work allows (fast start),
spawn otherwise (CUDA cannot fork). Its workers end with the run, however the run ends:

- the run leaves the pool by an exception (an error, Ctrl-C, SIGTERM): the workers are terminated
  and joined, rather than left to finish their queued work;
- the main process dies without a word (SIGKILL): each worker notices within a second that its
  parent is gone and exits;
- the workers leave the cleaning up to the main process: they ignore SIGINT (Ctrl-C reaches the
  whole process group; the main process then terminates them, so its ``KeyboardInterrupt`` is never
  overtaken by a broken pool) and end on SIGTERM/SIGHUP by the default action.

:func:`signals_as_interrupts` (used by the CLI) turns SIGTERM and SIGHUP in the main process into a
:class:`Terminated` exception, a ``KeyboardInterrupt``: the run unwinds as it does for Ctrl-C
(committed work kept, temporary files removed, workers ended) and exits with ``128 + signal``.

Example:
    >>> with process_pool(2) as pool:
    ...     list(pool.map(abs, [-1, -2, 3]))
    [1, 2, 3]
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: Signals the CLI turns into :class:`Terminated` (those that exist on this platform).
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """The run was asked to stop by ``signum`` (SIGTERM, SIGHUP): handled like Ctrl-C.

    Example:
        >>> Terminated(signal.SIGTERM).exit_code
        143
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: ``128 + signum``."""
        return 128 + self.signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (then restored).

    Example:
        >>> with signals_as_interrupts():
        ...     signal.getsignal(signal.SIGTERM) is _raise_terminated
        True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.signal(signum, _raise_terminated) for signum in TERMINATING}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)  # the parent is gone: nobody will read our results


def _worker_start(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    for signum in TERMINATING:
        signal.signal(signum, signal.SIG_DFL)  # a forked worker inherits the CLI's handlers; end plainly
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process ends us
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="diverseg-parent-watch").start()
    if initializer is not None:
        initializer(*initargs)


def start_method(fork: bool = True) -> str:
    """``"fork"`` when asked for and available, else ``"spawn"``.

    Example:
        >>> start_method(fork=False)
        'spawn'
    """
    return "fork" if fork and "fork" in mp.get_all_start_methods() else "spawn"


@contextlib.contextmanager
def process_pool(workers: int, *, fork: bool = True, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes (see the module doc); ``fork=False`` for work that uses CUDA.

    ``initializer(*initargs)`` runs once in each worker. On leaving the block normally, queued work is
    finished; on an exception, the workers are terminated and joined before it propagates.
    """
    ctx = mp.get_context(start_method(fork))
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work, terminate and join the workers."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
