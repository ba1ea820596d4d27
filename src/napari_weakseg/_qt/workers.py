"""Worker threads of the docks, and how their errors reach the user.

An error is one sentence in a notification; while a script starts a
dock (:meth:`.scripting.Scriptable.start`) errors are collected and
workers are created without starting, so the script gets the error or
the worker itself (see :func:`collecting`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from napari.utils.notifications import show_error, show_info

from ..core.base.errors import Cancelled, WeaksegError

#: errors :func:`report_error` collects instead of showing, and workers
#: :func:`start_worker` creates without starting, while a dock's
#: ``start`` runs (``None``: not collecting)
CAPTURED: list[BaseException] | None = None
DEFERRED: list[Any] | None = None


@contextmanager
def collecting() -> Iterator[tuple[list, list]]:
    """Collect errors and unstarted workers (see :data:`CAPTURED`)."""
    global CAPTURED, DEFERRED
    was = CAPTURED, DEFERRED
    CAPTURED, DEFERRED = [], []
    try:
        yield CAPTURED, DEFERRED
    finally:
        CAPTURED, DEFERRED = was


def report_error(exc: BaseException) -> None:
    """One sentence in a notification for bad input; Stop is no error.
    While a script starts a dock (:meth:`.scripting.Scriptable.start`)
    the error is collected and raised there instead."""
    if CAPTURED is not None:
        CAPTURED.append(exc)
    elif isinstance(exc, Cancelled):
        show_info("Stopped.")
    elif isinstance(exc, WeaksegError):
        show_error(str(exc))
    else:
        show_error(f"Unexpected error ({type(exc).__name__}): {exc}")


def start_worker(
    job: Callable[[], Generator[Any, None, Any]],
    on_event: Callable[[Any], None],
    on_return: Callable[[Any], None],
    on_finish: Callable[[], None],
) -> Any:
    """Run a core generator in napari's worker thread.

    Events reach ``on_event`` on the GUI thread; errors become one
    notification (not raised again on the GUI thread, where napari would
    show a second one with the traceback); ``on_finish`` runs however the
    job ended.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(job, _ignore_errors=True)
    worker.yielded.connect(on_event)
    worker.returned.connect(on_return)
    worker.errored.connect(report_error)
    worker.finished.connect(on_finish)
    if DEFERRED is not None:  # a script starts it (see there)
        DEFERRED.append(worker)
    else:
        worker.start()
    return worker
