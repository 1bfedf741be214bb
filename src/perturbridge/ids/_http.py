"""The one HTTP helper of :mod:`perturbridge.ids`: open a URL, retry transient failures.

Both network users of the package go through it: reference downloads
(:mod:`perturbridge.ids.fetch`) and the optional online PubChem resolver
(:mod:`perturbridge.ids.pubchem`). :func:`open_url` turns connection errors, timeouts and
retryable HTTP answers (408, 425, 429, 5xx) into :class:`Transient`; other HTTP errors
(404, 403, …) pass through as :class:`urllib.error.HTTPError` for the caller to judge.
:func:`with_retries` calls one attempt until it succeeds, waiting ``backoff``,
``2 × backoff``, ``4 × backoff``, … between attempts, and re-raises the last
:class:`Transient` when the retries are spent. Checksums of downloaded files are
:func:`perturbridge.io._atomic.file_sha256`.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import TypeVar

__all__ = ["RETRY_STATUS", "RetryPolicy", "Transient", "open_url", "with_retries"]

#: HTTP answers worth retrying.
RETRY_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})

T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying; ``status`` is the HTTP status when the server answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry: ``retries`` further attempts after the
    first, the first wait ``backoff`` seconds, doubled each time; ``sleep`` waits (tests
    pass a no-op)."""

    retries: int
    backoff: float
    sleep: Callable[[float], None] = time.sleep


def open_url(
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    retry_status: frozenset[int] = RETRY_STATUS,
) -> HTTPResponse:
    """Open ``url``; a connection failure or a status in ``retry_status`` is a
    :class:`Transient`, any other HTTP error is raised as it is."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code in retry_status:
            err.close()  # it holds the connection
            raise Transient(f"HTTP {err.code} {err.reason}", status=err.code) from err
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise Transient(str(getattr(err, "reason", err))) from err
    return response


def with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[Transient, float], None] | None = None,
) -> T:
    """The result of the first ``attempt()`` that raises no :class:`Transient`.

    ``on_retry(error, wait)`` is told about each retry before its wait. The last
    :class:`Transient` is re-raised when ``policy.retries`` retries all failed.
    """
    for n in range(policy.retries + 1):
        try:
            return attempt()
        except Transient as err:
            if n == policy.retries:
                raise
            wait = policy.backoff * 2**n
            if on_retry is not None:
                on_retry(err, wait)
            policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
