"""The exceptions of framehub (raised by the Rust extension through one mapping)."""

from __future__ import annotations

__all__ = [
    "FramehubError",
    "StreamExistsError",
    "InvalidFrameError",
    "InvalidNameError",
    "UnknownStreamError",
    "ClosedError",
]


class FramehubError(Exception):
    """Base class of framehub's own errors (I/O errors are plain ``OSError``)."""


class StreamExistsError(FramehubError, ValueError):
    """``add_stream`` with a name already in use (a ``ValueError``, as
    pdum.rfb raises for it)."""


class InvalidFrameError(FramehubError, ValueError):
    """A frame (or stream size) of the wrong shape or layout."""


class InvalidNameError(FramehubError, ValueError):
    """A stream name outside ``[A-Za-z0-9._-]{1,64}``, or reserved."""


class UnknownStreamError(FramehubError, KeyError):
    """No stream of that name (a ``KeyError``, as pdum.rfb's ``Server.stream``
    raises for it; ``str()`` is the plain message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ClosedError(FramehubError):
    """The stream was removed or the hub closed."""
