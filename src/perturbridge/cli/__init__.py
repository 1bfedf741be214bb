"""The ``perturbridge`` command line: a thin layer over the public API.

One module per command group (``ingest``, ``de``, ``refs``, ``compendium``,
``agreement``, ``demo``); what they share is in ``_common``; the app and :func:`main`
are in ``_main``.
"""

from ._main import app, main

__all__ = ["app", "main"]
