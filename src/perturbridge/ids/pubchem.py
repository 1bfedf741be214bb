"""An optional online client of PubChem PUG REST, with a persistent cache.

Nothing in perturbridge creates a :class:`PubChemClient` on its own: a caller passes one
to :meth:`perturbridge.ids.compounds.CompoundResolver.resolve` (``online=client``), or
builds a reference store with ``online_pubchem=True``. Requests go through the one HTTP
helper of :mod:`perturbridge.ids._http` (rate limit here, retries with backoff there).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from ..errors import PerturbridgeError
from ._http import RetryPolicy, Transient, open_url, with_retries

__all__ = ["OfflineError", "PubChemClient", "PubChemError"]


class PubChemError(PerturbridgeError, RuntimeError):
    """PubChem answered with an error that retrying did not cure."""


class OfflineError(PerturbridgeError, ConnectionError):
    """PubChem cannot be reached (no network, or the client is in offline mode)."""


_RETRY_STATUS: Final[frozenset[int]] = frozenset({429, 500, 502, 503, 504})
_PROPERTIES = "InChIKey,IsomericSMILES,CanonicalSMILES"


class PubChemClient:
    """A small, polite client of PubChem PUG REST with a persistent cache.

    Used only when a caller passes it (``CompoundResolver.resolve(..., online=client)``);
    nothing in perturbridge creates one on its own.

    Parameters
    ----------
    cache_path
        SQLite file of answers (created if missing). Every answer, a "not found"
        included, is kept, so a query is asked once. ``None``: an in-memory cache.
    base_url
        The PUG REST root (``…/rest/pug``); tests point it at a local server.
    max_per_second
        Request rate limit (PubChem asks for at most 5 per second).
    retries
        Further attempts after a 429/5xx answer or a connection failure, with
        exponential backoff (``backoff``, ``2 × backoff``, …).
    backoff
        First backoff in seconds.
    timeout
        Seconds to wait for one answer.
    offline
        Answer from the cache only; a cache miss raises :class:`OfflineError`.

    Raises
    ------
    OfflineError
        When PubChem cannot be reached after the retries (or ``offline=True`` and the
        answer is not cached).
    PubChemError
        When PubChem keeps answering with an error status.
    """

    def __init__(
        self,
        *,
        cache_path: str | os.PathLike[str] | None = None,
        base_url: str = "https://pubchem.ncbi.nlm.nih.gov/rest/pug",
        max_per_second: float = 5.0,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 10.0,
        offline: bool = False,
    ) -> None:
        if max_per_second <= 0:
            raise ValueError(f"expected max_per_second > 0, found {max_per_second}")
        if retries < 0:
            raise ValueError(f"expected retries >= 0, found {retries}")
        self.base_url = base_url.rstrip("/")
        self.min_interval = 1.0 / max_per_second
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.offline = offline
        self.n_requests = 0
        self._last = 0.0
        self._lock = threading.Lock()
        path = ":memory:" if cache_path is None else str(cache_path)
        if cache_path is not None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers (url TEXT PRIMARY KEY, status INTEGER, "
            "body TEXT, fetched_utc TEXT)"
        )
        self._db.commit()

    def __repr__(self) -> str:
        return f"PubChemClient(base_url={self.base_url!r}, offline={self.offline})"

    def close(self) -> None:
        """Close the cache."""
        self._db.close()

    def __enter__(self) -> PubChemClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # lookups ------------------------------------------------------------------------

    def lookup_name(self, name: str) -> list[dict[str, Any]]:
        """Compounds PubChem knows by ``name`` (a synonym, CAS number, …).

        Returns
        -------
        A list of ``{"cid", "inchikey", "smiles"}`` (empty when PubChem does not know the
        name).
        """
        name_part = quote(name.strip(), safe="")
        return self._properties(
            f"{self.base_url}/compound/name/{name_part}/property/{_PROPERTIES}/JSON"
        )

    def lookup_cid(self, cid: int) -> list[dict[str, Any]]:
        """The compound with PubChem CID ``cid`` (a list of at most one)."""
        return self._properties(
            f"{self.base_url}/compound/cid/{int(cid)}/property/{_PROPERTIES}/JSON"
        )

    def cids_for_name(self, name: str) -> list[int]:
        """The CIDs PubChem lists for ``name``."""
        body = self._get(f"{self.base_url}/compound/name/{quote(name.strip(), safe='')}/cids/JSON")
        if body is None:
            return []
        return [int(c) for c in body.get("IdentifierList", {}).get("CID", [])]

    def _properties(self, url: str) -> list[dict[str, Any]]:
        body = self._get(url)
        if body is None:
            return []
        out = []
        for p in body.get("PropertyTable", {}).get("Properties", []):
            smiles = p.get("IsomericSMILES") or p.get("SMILES") or p.get("CanonicalSMILES")
            smiles = smiles or p.get("ConnectivitySMILES")
            out.append({"cid": p.get("CID"), "inchikey": p.get("InChIKey"), "smiles": smiles})
        return out

    # transport ----------------------------------------------------------------------

    def _get(self, url: str) -> dict[str, Any] | None:
        """The JSON answer of ``url`` (``None`` for "not found"), from the cache if there."""
        row = self._db.execute("SELECT status, body FROM answers WHERE url = ?", (url,)).fetchone()
        if row is not None:
            status, body = row
            return None if status == 404 else json.loads(body)
        if self.offline:
            raise OfflineError(
                f"PubChem answer not cached and the client is offline: {url}; run once "
                "online (offline=False) to fill the cache"
            )
        status, text = self._fetch(url)
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, datetime('now'))", (url, status, text)
        )
        self._db.commit()
        return None if status == 404 else json.loads(text)

    def _fetch(self, url: str) -> tuple[int, str]:
        def attempt() -> tuple[int, str]:
            with self._lock:
                wait = self._last + self.min_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last = time.monotonic()
            self.n_requests += 1
            try:
                with open_url(
                    url,
                    headers={"User-Agent": "perturbridge"},
                    timeout=self.timeout,
                    retry_status=_RETRY_STATUS,
                ) as response:
                    return int(response.status), response.read().decode("utf-8")
            except urllib.error.HTTPError as err:
                err.close()  # it holds the connection
                if err.code in (400, 404):
                    # PUG REST answers 404 (and 400 for some malformed names): not found
                    return 404, ""
                raise PubChemError(f"PubChem answered {err.code} {err.reason} for {url}") from err

        try:
            return with_retries(attempt, RetryPolicy(self.retries, self.backoff))
        except Transient as err:
            if err.status is not None:
                raise PubChemError(
                    f"PubChem kept answering {err.status} for {url} after "
                    f"{self.retries + 1} attempts; try again later"
                ) from err
            raise OfflineError(
                f"cannot reach PubChem at {self.base_url} ({err.__cause__ or err}) after "
                f"{self.retries + 1} attempts; check the network or leave the online resolver off"
            ) from err
