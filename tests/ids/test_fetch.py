"""Fetching upstream reference files from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import shared_path
from perturbridge.ids.fetch import (
    FETCH_MANIFEST,
    REMOTE_FILES,
    FetchError,
    FetchOptions,
    fetch_references,
    resolve_urls,
)
from perturbridge.ids.store import RefStore
from perturbridge.io import file_sha256

from ._fixtures import DEPMAP_CSV, hgnc_text, write


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records requests; optional failures and Range support."""

    fail_first: ClassVar[dict[str, int]] = {}
    requests: ClassVar[list[tuple[str, str | None]]] = []
    ranges: ClassVar[bool] = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append((self.path, self.headers.get("Range")))
        left = type(self).fail_first.get(self.path, 0)
        if left:
            type(self).fail_first[self.path] = left - 1
            self.send_error(503, "Service Unavailable")
            return
        rng = self.headers.get("Range")
        if type(self).ranges and rng and rng.startswith("bytes="):
            path = Path(self.translate_path(self.path))
            data = path.read_bytes()
            start = int(rng.removeprefix("bytes=").split("-")[0])
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@contextlib.contextmanager
def serve(directory: Path, **attrs: object) -> Iterator[str]:
    handler = type("Handler", (QuietHandler,), {"fail_first": {}, "requests": [], **attrs})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    write(root / "hgnc_complete_set.txt", hgnc_text())
    write(root / "sample_info.csv", DEPMAP_CSV)
    return root


def no_sleep(seconds: float) -> None:
    pass


@pytest.mark.shared_data
def test_fetch_real_files_then_build_offline(tmp_path: Path, no_network):
    data = shared_path()
    hgnc = shared_path("reference_hgnc", "hgnc_complete_set.txt.gz")
    depmap = shared_path("reference_cell_lines", "depmap_sample_info.csv")
    out = tmp_path / "upstream"
    with serve(data) as base:
        res = fetch_references(
            out,
            names=["hgnc_complete_set", "depmap_sample_info"],
            urls={
                "hgnc_complete_set": f"{base}/reference_hgnc/hgnc_complete_set.txt.gz",
                "depmap_sample_info": f"{base}/reference_cell_lines/depmap_sample_info.csv",
            },
            options=FetchOptions(sleep=no_sleep),
        )
    got = {f.name: f for f in res.files}
    assert got["hgnc_complete_set"].path == "hgnc_complete_set.txt.gz"
    assert got["hgnc_complete_set"].sha256 == file_sha256(hgnc)
    assert got["depmap_sample_info"].sha256 == file_sha256(depmap)
    assert got["depmap_sample_info"].size == depmap.stat().st_size
    assert got["depmap_sample_info"].last_modified  # the server's header is kept
    manifest = json.loads((out / FETCH_MANIFEST).read_text())
    assert {f["name"] for f in manifest["files"]} == {"hgnc_complete_set", "depmap_sample_info"}
    assert manifest["failures"] == {}
    assert not list(out.glob("*.part"))
    # the downloaded folder is a --from folder; the build is offline (guard still on)
    store = RefStore.build(source_dir=out, out=tmp_path / "refs")
    rows = {i["parser"]: i["rows"] for i in store.manifest["inputs"]}
    assert rows["hgnc"]["genes"] == 43_882
    assert rows["depmap_sample_info"]["cells"] == 1_775
    assert store.manifest["unmatched_files"] == []  # fetch_manifest.json is not an input


def test_fetch_with_base_url_mirror(tmp_path: Path, mirror: Path, no_network):
    with serve(mirror) as base:
        res = fetch_references(
            tmp_path / "up", names=["hgnc_complete_set", "depmap_sample_info"], base_url=base
        )
    assert sorted(f.path for f in res.files) == ["hgnc_complete_set.txt", "sample_info.csv"]
    assert (tmp_path / "up" / "sample_info.csv").read_text() == DEPMAP_CSV


def test_404_fails_at_once_and_the_rest_is_kept(tmp_path: Path, mirror: Path):
    out = tmp_path / "up"
    with (
        serve(mirror) as base,
        pytest.raises(FetchError, match=r"1 of 2 reference files failed: cellosaurus: .*404"),
    ):
        fetch_references(
            out,
            names=["hgnc_complete_set", "cellosaurus"],
            base_url=base,
            options=FetchOptions(sleep=no_sleep),
        )
    manifest = json.loads((out / FETCH_MANIFEST).read_text())
    assert [f["name"] for f in manifest["files"]] == ["hgnc_complete_set"]
    assert "cellosaurus" in manifest["failures"]
    assert not (out / "cellosaurus.txt").exists()


def test_404_is_not_retried(tmp_path: Path, mirror: Path):
    waits: list[float] = []
    with serve(mirror) as base, pytest.raises(FetchError, match="HTTP 404"):
        fetch_references(
            tmp_path / "up",
            names=["cellosaurus"],
            base_url=base,
            options=FetchOptions(sleep=waits.append),
        )
    assert waits == []


def test_server_failing_once_then_succeeding(tmp_path: Path, mirror: Path):
    waits: list[float] = []
    with serve(mirror, fail_first={"/sample_info.csv": 1}) as base:
        res = fetch_references(
            tmp_path / "up",
            names=["depmap_sample_info"],
            base_url=base,
            options=FetchOptions(backoff=0.5, sleep=waits.append),
        )
    assert waits == [0.5]
    assert res.files[0].sha256 == file_sha256(mirror / "sample_info.csv")


def test_retries_run_out(tmp_path: Path, mirror: Path):
    waits: list[float] = []
    with (
        serve(mirror, fail_first={"/sample_info.csv": 9}) as base,
        pytest.raises(FetchError, match=r"failed after 3 attempts: HTTP 503.*rerun to resume"),
    ):
        fetch_references(
            tmp_path / "up",
            names=["depmap_sample_info"],
            base_url=base,
            options=FetchOptions(retries=2, backoff=1.0, sleep=waits.append),
        )
    assert waits == [1.0, 2.0]  # exponential backoff


def test_resume_from_a_partial_download(tmp_path: Path, mirror: Path):
    out = tmp_path / "up"
    full = (mirror / "hgnc_complete_set.txt").read_bytes()
    write(out / "hgnc_complete_set.txt.part", "")
    (out / "hgnc_complete_set.txt.part").write_bytes(full[:100])
    with serve(mirror, ranges=True) as base:
        res = fetch_references(out, names=["hgnc_complete_set"], base_url=base)
    assert (out / "hgnc_complete_set.txt").read_bytes() == full
    assert res.files[0].size == len(full)
    assert not (out / "hgnc_complete_set.txt.part").exists()


def test_resume_request_sends_a_range_header(tmp_path: Path, mirror: Path):
    out = tmp_path / "up"
    out.mkdir()
    full = (mirror / "sample_info.csv").read_bytes()
    (out / "sample_info.csv.part").write_bytes(full[:50])
    seen: list[tuple[str, str | None]] = []
    with serve(mirror, ranges=True, requests=seen) as base:
        fetch_references(out, names=["depmap_sample_info"], base_url=base)
    assert seen == [("/sample_info.csv", "bytes=50-")]
    assert (out / "sample_info.csv").read_bytes() == full


def test_server_without_range_support_sends_everything_again(tmp_path: Path, mirror: Path):
    out = tmp_path / "up"
    out.mkdir()
    full = (mirror / "sample_info.csv").read_bytes()
    (out / "sample_info.csv.part").write_bytes(b"garbage that is not a prefix")
    with serve(mirror) as base:
        fetch_references(out, names=["depmap_sample_info"], base_url=base)
    assert (out / "sample_info.csv").read_bytes() == full


def test_up_to_date_files_are_not_downloaded_again(tmp_path: Path, mirror: Path):
    out = tmp_path / "up"
    seen: list = []
    with serve(mirror, requests=seen) as base:
        fetch_references(out, names=["depmap_sample_info"], base_url=base)
        again = fetch_references(out, names=["depmap_sample_info"], base_url=base)
        assert again.files[0].status == "up_to_date"
        assert len(seen) == 1
        (out / "sample_info.csv").write_text("tampered")
        fixed = fetch_references(out, names=["depmap_sample_info"], base_url=base)
        assert fixed.files[0].status == "downloaded"
        forced = fetch_references(
            out, names=["depmap_sample_info"], base_url=base, options=FetchOptions(force=True)
        )
        assert forced.files[0].status == "downloaded"
    assert len(seen) == 3
    assert (out / "sample_info.csv").read_text() == DEPMAP_CSV


def test_resolve_urls_defaults_overrides_and_config(tmp_path: Path):
    plan = resolve_urls()
    assert set(plan) == {n for n, f in REMOTE_FILES.items() if f.default}
    assert plan["hgnc_complete_set"].startswith("https://")
    assert "pubchem_cid_synonym" in resolve_urls(include_all=True)
    toml = write(
        tmp_path / "refs.toml",
        'base_url = "https://mirror.example.org/refs/"\n'
        "[urls]\n"
        'cellosaurus = "https://other.example.org/cello.txt"\n',
    )
    plan = resolve_urls(names=["hgnc_complete_set", "cellosaurus"], config=toml)
    assert plan == {
        "hgnc_complete_set": "https://mirror.example.org/refs/hgnc_complete_set.txt",
        "cellosaurus": "https://other.example.org/cello.txt",
    }
    # explicit arguments beat the config file
    plan = resolve_urls(
        names=["hgnc_complete_set", "cellosaurus"],
        config=toml,
        base_url="http://127.0.0.1:1",
        urls={"hgnc_complete_set": "http://127.0.0.1:2/h.txt.gz"},
    )
    assert plan == {
        "hgnc_complete_set": "http://127.0.0.1:2/h.txt.gz",
        "cellosaurus": "http://127.0.0.1:1/cellosaurus.txt",
    }
    js = write(tmp_path / "refs.json", json.dumps({"urls": {"lincs_cellinfo": "file:///x.txt"}}))
    assert resolve_urls(names=["lincs_cellinfo"], config=js) == {"lincs_cellinfo": "file:///x.txt"}
    # a name given only in urls is fetched too
    assert "pubchem_cid_smiles" in resolve_urls(urls={"pubchem_cid_smiles": "http://h/x.gz"})


def test_resolve_urls_errors(tmp_path: Path):
    with pytest.raises(KeyError, match=r"unknown reference file\(s\) \['hgnc'\] in names"):
        resolve_urls(names=["hgnc"])
    with pytest.raises(KeyError, match="in urls"):
        resolve_urls(urls={"nope": "http://x"})
    bad = write(tmp_path / "bad.toml", "mirror = 'x'\n")
    with pytest.raises(ValueError, match=r"unknown keys \['mirror'\]"):
        resolve_urls(config=bad)
    broken = write(tmp_path / "broken.json", "{")
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_urls(config=broken)


def test_file_urls_work_offline(tmp_path: Path, mirror: Path, no_network):
    url = (mirror / "sample_info.csv").as_uri()
    res = fetch_references(
        tmp_path / "up", names=["depmap_sample_info"], urls={"depmap_sample_info": url}
    )
    assert res.files[0].path == "sample_info.csv"


def test_the_guard_blocks_remote_hosts(tmp_path: Path, no_network):
    with pytest.raises(RuntimeError, match=r"network access blocked.*'example.org'"):
        fetch_references(
            tmp_path / "up",
            names=["cellosaurus"],
            urls={"cellosaurus": "http://example.org/cellosaurus.txt"},
            options=FetchOptions(retries=0),
        )
