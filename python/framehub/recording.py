"""pdum.rfb's ``recording`` module names: ``Recording`` (what
``display.record(path)`` returns) and ``recording_available()``.

framehub records the stream's own H.264 (its shared encoder, built into the
extension), so recording needs no extra package: ``recording_available()``
is always ``True``.
"""

from __future__ import annotations

from ._aio import Recording

__all__ = ["Recording", "recording_available"]


def recording_available() -> bool:
    """Whether ``display.record()`` can run: always ``True`` (pdum.rfb's
    answers whether PyAV is installed; framehub needs nothing extra)."""
    return True
