"""The one exception users see.

A :class:`WeaksegError` carries one clear sentence meant for a person: the
CLI prints it to stderr and exits non-zero, the GUI shows it as a napari
notification.  Anything else that escapes is a bug.
"""


class WeaksegError(ValueError):
    """Bad input or an impossible request, explained in one sentence."""


class Cancelled(RuntimeError):  # noqa: N818 - reads better at call sites
    """Raised inside long work when the user pressed Stop."""
