"""Download the upstream reference files that ``refs build`` reads.

This is the only module of :mod:`perturbridge.ids` that opens network connections, and
only when :func:`fetch_references` (``perturbridge refs fetch``) is called. Building and
resolving never do.

Where files come from
---------------------
:data:`REMOTE_FILES` lists each upstream file with its default URL. Any of them can be
redirected:

- ``base_url``: a mirror holding every file under its registry file name
  (``{base_url}/{filename}``);
- ``urls``: ``{name: url}`` for single files (``--url NAME=URL`` on the command line);
- a config file (TOML or JSON) with the keys ``base_url`` and ``urls``::

      base_url = "https://mirror.example.org/refs"
      [urls]
      depmap_sample_info = "https://example.org/depmap/sample_info_23Q2.csv"

Explicit ``urls`` beat ``base_url``, which beats the config file's ``urls``, which beat
its ``base_url``, which beats the defaults. A file is saved under the last path segment
of its URL when that looks like a file name (has an extension, e.g. ``.txt.gz``), else
under the registry file name.

How files are downloaded
------------------------
Streaming with :mod:`urllib` into ``<name>.part`` beside the target, SHA-256 on disk,
then an atomic rename: a target file is complete or absent. An interrupted download
leaves its ``.part`` file, and the next run asks the server for the rest (HTTP
``Range``); servers that ignore ranges send the whole file again. Transient failures
(connection errors, timeouts, HTTP 408/429/5xx, short reads) are retried with
exponential backoff; other HTTP errors (404, 403, …) fail at once. A file already
fetched from the same URL whose checksum still matches ``fetch_manifest.json`` is not
downloaded again unless ``FetchOptions(force=True)``. ``fetch_manifest.json`` records, per file, the
URL, size, SHA-256, time, and the server's ``ETag``/``Last-Modified``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import http.client
import json
import logging
import os
import time
import tomllib
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from .._version import __version__
from ..errors import PerturbridgeError
from ..io._atomic import atomic_file, file_sha256
from ._http import RetryPolicy, Transient, open_url, with_retries

__all__ = [
    "REMOTE_FILES",
    "FetchError",
    "FetchOptions",
    "FetchResult",
    "RemoteFile",
    "fetch_references",
    "resolve_urls",
]

logger = logging.getLogger(__name__)

FETCH_MANIFEST = "fetch_manifest.json"
_CHUNK = 1 << 20


class FetchError(PerturbridgeError, OSError):
    """A reference file could not be downloaded (after the allowed retries)."""


@dataclass(frozen=True)
class RemoteFile:
    """One upstream reference file.

    ``filename`` is its name in a mirror and the default local name; ``default`` files
    are fetched when no names are given (the large PubChem extracts are not).
    """

    name: str
    url: str
    filename: str
    description: str
    default: bool = True


_CLUE = "https://s3.amazonaws.com/macchiato.clue.io/builds/LINCS2020"
_REPURPOSING = "https://s3.amazonaws.com/data.clue.io/repurposing/downloads"
_PUBCHEM = "https://ftp.ncbi.nlm.nih.gov/pubchem/Compound/Extras"

#: The registry of upstream files.
REMOTE_FILES: dict[str, RemoteFile] = {
    f.name: f
    for f in (
        RemoteFile(
            "hgnc_complete_set",
            "https://storage.googleapis.com/public-download-files/hgnc/tsv/tsv/"
            "hgnc_complete_set.txt",
            "hgnc_complete_set.txt",
            "HGNC complete set (genes, symbols, aliases, Entrez, Ensembl)",
        ),
        RemoteFile(
            "cellosaurus",
            "https://ftp.expasy.org/databases/cellosaurus/cellosaurus.txt",
            "cellosaurus.txt",
            "Cellosaurus flat file (cell line accessions CVCL_…)",
        ),
        RemoteFile(
            "depmap_sample_info",
            "https://ndownloader.figshare.com/files/24613394",
            "sample_info.csv",
            "DepMap Public 20Q3 sample_info.csv (DepMap ids, CCLE names, RRIDs)",
        ),
        RemoteFile(
            "lincs_cellinfo",
            f"{_CLUE}/cellinfo_beta.txt",
            "cellinfo_beta.txt",
            "LINCS 2020 cell info",
        ),
        RemoteFile(
            "lincs_compoundinfo",
            f"{_CLUE}/compoundinfo_beta.txt",
            "compoundinfo_beta.txt",
            "LINCS 2020 compound info",
        ),
        RemoteFile(
            "lincs_geneinfo",
            f"{_CLUE}/geneinfo_beta.txt",
            "geneinfo_beta.txt",
            "LINCS 2020 gene info",
        ),
        RemoteFile(
            "repurposing_samples",
            f"{_REPURPOSING}/repurposing_samples_20200324.txt",
            "repurposing_samples_20200324.txt",
            "Drug Repurposing Hub samples (broad ids, vendor names, InChIKeys)",
        ),
        RemoteFile(
            "repurposing_drugs",
            f"{_REPURPOSING}/repurposing_drugs_20200324.txt",
            "repurposing_drugs_20200324.txt",
            "Drug Repurposing Hub drugs (MoA, targets, phase)",
        ),
        RemoteFile(
            "pubchem_cid_synonym",
            f"{_PUBCHEM}/CID-Synonym-filtered.gz",
            "CID-Synonym-filtered.gz",
            "PubChem CID → synonyms (large, ~1 GB)",
            default=False,
        ),
        RemoteFile(
            "pubchem_cid_inchikey",
            f"{_PUBCHEM}/CID-InChI-Key.gz",
            "CID-InChI-Key.gz",
            "PubChem CID → InChI, InChIKey (large)",
            default=False,
        ),
        RemoteFile(
            "pubchem_cid_smiles",
            f"{_PUBCHEM}/CID-SMILES.gz",
            "CID-SMILES.gz",
            "PubChem CID → SMILES (large)",
            default=False,
        ),
    )
}


@dataclass(frozen=True)
class FetchedFile:
    """One entry of ``fetch_manifest.json``."""

    name: str
    url: str
    path: str
    size: int
    sha256: str
    fetched_utc: str
    status: str  # "downloaded" or "up_to_date"
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchOptions:
    """How :func:`fetch_references` downloads.

    Attributes
    ----------
    force
        Download even when an earlier fetch of the same URL is still on disk intact.
    retries
        Extra attempts per file after a transient failure.
    backoff
        Seconds before the first retry; doubled each time.
    timeout
        Socket timeout per request, in seconds.
    sleep
        The wait between retries (tests pass a no-op).
    """

    force: bool = False
    retries: int = 3
    backoff: float = 2.0
    timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class FetchResult:
    """Files fetched (or found up to date) and the manifest written."""

    files: list[FetchedFile]
    manifest_path: Path
    failures: dict[str, str] = field(default_factory=dict)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise FetchError(f"cannot read the fetch config {path}: {err}") from err
    try:
        cfg = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({err})") from err
    unknown = set(cfg) - {"base_url", "urls"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected base_url, urls")
    if not isinstance(cfg.get("urls", {}), dict):
        raise ValueError(f"{path}: 'urls' must be a table of name = url")
    return cfg


def _check_names(names: Sequence[str], what: str) -> None:
    unknown = [n for n in names if n not in REMOTE_FILES]
    if unknown:
        raise KeyError(
            f"unknown reference file(s) {unknown} in {what}; known: {sorted(REMOTE_FILES)}"
        )


def resolve_urls(
    *,
    names: Sequence[str] | None = None,
    base_url: str | None = None,
    urls: Mapping[str, str] | None = None,
    config: str | os.PathLike[str] | None = None,
    include_all: bool = False,
) -> dict[str, str]:
    """The URL of each file to fetch, after mirrors and overrides.

    Parameters
    ----------
    names
        Registry names to fetch; default: every ``default`` file (all files with
        ``include_all``), plus the names given in ``urls``.
    base_url
        A mirror with every file under its registry file name.
    urls
        ``{name: url}`` overrides.
    config
        A TOML or JSON file with ``base_url`` and/or ``urls``.
    include_all
        Also fetch the files that are not fetched by default (PubChem extracts).

    Raises
    ------
    KeyError
        For names that are not in :data:`REMOTE_FILES`.
    """
    cfg = _read_config(Path(config)) if config is not None else {}
    cfg_urls = {str(k): str(v) for k, v in cfg.get("urls", {}).items()}
    urls = dict(urls or {})
    _check_names(list(cfg_urls), f"config {config}")
    _check_names(list(urls), "urls")
    if names is None:
        chosen = [n for n, f in REMOTE_FILES.items() if f.default or include_all]
        chosen += [n for n in urls if n not in chosen]
    else:
        _check_names(list(names), "names")
        chosen = list(dict.fromkeys(names))
    out: dict[str, str] = {}
    for n in chosen:
        f = REMOTE_FILES[n]
        url = f.url
        if cfg.get("base_url"):
            url = f"{str(cfg['base_url']).rstrip('/')}/{f.filename}"
        url = cfg_urls.get(n, url)
        if base_url:
            url = f"{base_url.rstrip('/')}/{f.filename}"
        out[n] = urls.get(n, url)
    return out


def _local_name(name: str, url: str) -> str:
    last = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return last if last and "." in last else REMOTE_FILES[name].filename


def _download(
    url: str,
    part: Path,
    *,
    timeout: float,
    on_bytes: Callable[[int, int | None], None] | None,
) -> dict[str, str | None]:
    """One attempt: fetch ``url`` into ``part`` (resuming it); returns headers."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"perturbridge/{__version__} (reference fetch)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = open_url(url, headers=headers, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            part.unlink(missing_ok=True)  # our partial file is stale; start over
            raise Transient(f"HTTP 416 for a resumed download; restarting {url}") from err
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from err
    with resp:
        status = getattr(resp, "status", None) or 200
        resumed = offset > 0 and status == 206
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = None if expected is None else expected + (offset if resumed else 0)
        got = 0
        try:
            with part.open("ab" if resumed else "wb") as fh:
                if on_bytes is not None:
                    on_bytes(offset if resumed else 0, total)
                while block := resp.read(_CHUNK):
                    fh.write(block)
                    got += len(block)
                    if on_bytes is not None:
                        on_bytes(len(block), None)
        except (OSError, http.client.HTTPException) as err:
            raise Transient(f"connection lost after {got} bytes ({err!r})") from err
        if expected is not None and got != expected:
            raise Transient(f"short read: {got} of {expected} bytes")
        return {
            "etag": resp.headers.get("ETag"),
            "last_modified": resp.headers.get("Last-Modified"),
        }


def _fetch_one(
    name: str,
    url: str,
    dest: Path,
    *,
    policy: RetryPolicy,
    timeout: float,
    on_bytes: Callable[[int, int | None], None] | None,
) -> FetchedFile:
    part = dest.with_name(dest.name + ".part")

    def warn(err: Transient, wait: float) -> None:
        logger.warning("%s: %s; retrying in %.1f s", name, err, wait)

    try:
        headers = with_retries(
            lambda: _download(url, part, timeout=timeout, on_bytes=on_bytes),
            policy,
            on_retry=warn,
        )
    except Transient as err:
        raise FetchError(
            f"{name}: {url} failed after {policy.retries + 1} attempts: {err}; rerun to resume"
        ) from err
    sha = file_sha256(part)
    size = part.stat().st_size
    os.replace(part, dest)
    return FetchedFile(
        name=name,
        url=url,
        path=dest.name,
        size=size,
        sha256=sha,
        fetched_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        status="downloaded",
        etag=headers.get("etag"),
        last_modified=headers.get("last_modified"),
    )


def _previous(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((out / FETCH_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {f["name"]: f for f in data.get("files", []) if isinstance(f, dict) and "name" in f}


def fetch_references(
    out: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    base_url: str | None = None,
    urls: Mapping[str, str] | None = None,
    config: str | os.PathLike[str] | None = None,
    include_all: bool = False,
    progress: bool = False,
    options: FetchOptions = FetchOptions(),
) -> FetchResult:
    """Download upstream reference files into ``out`` (see the module notes).

    Parameters
    ----------
    out
        Folder for the files and ``fetch_manifest.json`` (created if needed).
    names, base_url, urls, config, include_all
        Which files and from where (see :func:`resolve_urls`).
    progress
        Show a progress bar of the bytes received.
    options
        Re-download, retries, backoff and timeout (:class:`FetchOptions`).

    Returns
    -------
    The files and the manifest path.

    Raises
    ------
    FetchError
        If any file failed; the others are downloaded and recorded first, and the
        message names every failure.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = resolve_urls(
        names=names, base_url=base_url, urls=urls, config=config, include_all=include_all
    )
    before = _previous(out_dir)
    done: list[FetchedFile] = []
    failures: dict[str, str] = {}
    bar = _Progress(progress)
    with bar:
        for name, url in plan.items():
            dest = out_dir / _local_name(name, url)
            prev = before.get(name)
            if (
                not options.force
                and prev is not None
                and prev.get("url") == url
                and prev.get("path") == dest.name
                and dest.is_file()
                and file_sha256(dest) == prev.get("sha256")
            ):
                logger.info("%s: up to date (%s)", name, dest.name)
                fields = {f.name for f in dataclasses.fields(FetchedFile)}
                entry = {k: v for k, v in prev.items() if k in fields}
                done.append(FetchedFile(**{**entry, "status": "up_to_date"}))
                continue
            logger.info("%s: fetching %s", name, url)
            try:
                done.append(
                    _fetch_one(
                        name,
                        url,
                        dest,
                        policy=RetryPolicy(options.retries, options.backoff, options.sleep),
                        timeout=options.timeout,
                        on_bytes=bar.task(name),
                    )
                )
            except FetchError as err:
                failures[name] = str(err)
                logger.error("%s", err)
    kept = {
        n: f for n, f in before.items() if n not in plan and (out_dir / f.get("path", "")).is_file()
    }
    manifest = {
        "package": "perturbridge",
        "package_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "files": [*kept.values(), *(dataclasses.asdict(f) for f in done)],
        "failures": failures,
    }
    mpath = out_dir / FETCH_MANIFEST
    with atomic_file(mpath) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    if failures:
        raise FetchError(
            f"{len(failures)} of {len(plan)} reference files failed: "
            + "; ".join(f"{n}: {e}" for n, e in failures.items())
        )
    return FetchResult(files=done, manifest_path=mpath, failures=failures)


class _Progress:
    """A rich progress bar of bytes per file, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def task(self, name: str) -> Callable[[int, int | None], None] | None:
        if self._bar is None:
            return None
        bar = self._bar
        task = bar.add_task(name, total=None)

        def on_bytes(n: int, total: int | None) -> None:
            if total is not None:
                bar.reset(task, total=total, completed=n)
            else:
                bar.advance(task, n)

        return on_bytes
