"""Progress bars for long work (KBE passes, adaptive rings, region and catalog
masks rasterised on the CPU, batches run from a notebook), in notebooks and terminals.

Bars come from ``tqdm.auto`` (a widget in Jupyter, text on a terminal) and appear
only once the work has lasted :data:`DELAY_S` seconds, so quick calls print
nothing.  They are on by default; silence them for the process with
``gpumask.set_progress(False)`` or with the environment variable
``GPUMASK_PROGRESS=0`` (batch jobs on clusters).  Without tqdm installed the bars
are silently absent.  A bar never reads device data: it counts steps the host
already knows about.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["DELAY_S", "in_notebook", "open_bar", "progress_bar", "progress_enabled", "set_progress"]

#: Seconds of work before a bar is shown.
DELAY_S = 2.0
_OFF = {"0", "false", "no", "off"}
_enabled: bool | None = None  # None: GPUMASK_PROGRESS decides (default on)


def set_progress(enabled: bool | None) -> None:
    """Show (True) or hide (False) progress bars for long work in this process.

    ``None`` returns the choice to the ``GPUMASK_PROGRESS`` environment variable
    (``0``, ``false``, ``no`` or ``off`` hide them; anything else or unset shows them).

    Examples
    --------
    >>> import gpumask
    >>> gpumask.set_progress(False)   # e.g. in a batch script
    >>> gpumask.set_progress(None)    # back to GPUMASK_PROGRESS / the default
    """
    global _enabled
    if enabled is not None and not isinstance(enabled, bool):
        raise ValueError(f"set_progress takes True, False or None, got {enabled!r}")
    _enabled = enabled


def progress_enabled() -> bool:
    """Whether progress bars are shown (see :func:`set_progress`)."""
    if _enabled is not None:
        return _enabled
    return os.environ.get("GPUMASK_PROGRESS", "").strip().lower() not in _OFF


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def write(self, text):
        pass

    def close(self):
        pass


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where ``tqdm.auto`` draws widgets)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def open_bar(total, desc, unit="it", delay=None):
    """An open ``tqdm.auto`` bar (close it yourself), or a do-nothing bar when
    progress is off or tqdm is missing; shown after ``delay`` seconds (default
    :data:`DELAY_S`)."""
    if not progress_enabled():
        return _NoBar()
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415 - optional, imported when work starts
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, delay=DELAY_S if delay is None else delay, leave=False,
                dynamic_ncols=True)


@contextlib.contextmanager
def progress_bar(total, desc, unit="it"):
    """A ``tqdm.auto`` bar of ``total`` steps shown after :data:`DELAY_S` seconds,
    closed on exit (also on an exception); a do-nothing bar when progress is off
    or tqdm is missing.

    Examples
    --------
    >>> with progress_bar(3, "passes", unit="pass") as bar:
    ...     for _ in range(3):
    ...         bar.update()
    """
    bar = open_bar(total, desc, unit)
    try:
        yield bar
    finally:
        bar.close()
