"""Faults of ``perturbridge query`` and ``Compendium.sql``: statements that write, read
files or load extensions; results too large to hold; a query stopped with Ctrl-C."""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.compendium import Compendium, StoreError, build

runner = CliRunner()

#: runs the CLI in a child process; prints ``ready`` before it starts, ``running`` when
#: the CLI first hands a statement to DuckDB (the store is open) and, when it ends,
#: its peak RSS (``maxrss_kb=``, VmHWM of /proc/self/status: ``getrusage`` of a child
#: keeps the RSS of the forking parent across exec) and the peak of the memory it
#: allocated (``anon_kb=``, RssAnon sampled every millisecond from the start). The RSS of
#: the shared libraries mapped from disk (RssFile) depends on the machine's page cache,
#: not on the command: the same wheels gave 179 MB of VmHWM in one virtual environment and
#: 230 MB in a fresh one, with the same RssAnon.
_CHILD = """
import sys, threading, time

def _status(key):
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith(key + ":"))

peak = [0]

def _sample():
    while True:
        peak[0] = max(peak[0], _status("RssAnon"))
        time.sleep(0.001)

threading.Thread(target=_sample, daemon=True).start()
from perturbridge.cli import app
from perturbridge.compendium import api

_interruptible = api.interruptible

def _announced(con, call):
    print("running", file=sys.stderr, flush=True)
    return _interruptible(con, call)

api.interruptible = _announced
print("ready", file=sys.stderr, flush=True)
try:
    app(sys.argv[1:], prog_name="perturbridge")
finally:
    peak[0] = max(peak[0], _status("RssAnon"))
    print(f"maxrss_kb={_status('VmHWM')} anon_kb={peak[0]}", file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store built from a simulated L1000 GCT."""
    from compendium._fixtures import write_l1000, write_plan

    folder = tmp_path_factory.mktemp("query_store")
    plan = write_plan(folder, l1000=write_l1000(folder), extra="[executor]\nn_jobs = 1\n")
    build(plan)
    return folder / "store"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _query(store: Path, sql: str, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["query", str(store), sql, *args])
    return res.exit_code, res.output


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _child(store: Path, sql: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", _CHILD, "query", str(store), sql, *args]
    # the child gets SIGINT's default action, as a command started from a terminal does
    # (a pytest-xdist worker ignores SIGINT, and an ignored signal stays ignored in a child)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    assert proc.stderr is not None and proc.stderr.readline().strip() == "ready"
    return proc


def _peak_mb(stderr: str, key: str = "maxrss_kb") -> float:
    line = next(x for x in stderr.splitlines() if x.startswith("maxrss_kb="))
    values = dict(item.split("=") for item in line.split())
    return int(values[key]) / 1024


def test_copy_to_a_catalog_file_is_refused(store, fault):
    catalog = store / "catalog"
    before = _digest(catalog)
    target = catalog / "conditions.parquet"
    code, out = _query(store, f"COPY (SELECT 1 AS x) TO '{target}'")
    assert code == 2
    assert "COPY statements are refused" in out and "read-only" in out
    assert "--format tsv > file" in " ".join(out.split())
    with Compendium.open(store) as comp, pytest.raises(StoreError, match="COPY statements"):
        comp.sql(f"COPY conditions TO '{target}' (FORMAT csv)")
    assert _digest(catalog) == before
    fault(
        "COPY ... TO a catalog file",
        "refused before it runs; catalog unchanged",
        f"exit {code}, {' '.join(out.split()).split(';')[0]!r}; "
        f"{len(before)} catalog files byte-identical",
    )


def test_reading_a_file_outside_the_catalog_is_refused(store, fault):
    code, out = _query(store, "SELECT * FROM read_text('/etc/passwd')")
    assert code == 2 and "catalog tables only" in out and "root:" not in out
    with Compendium.open(store) as comp:
        for sql in (
            "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
            "SELECT * FROM glob('/etc/*')",
            f"SELECT * FROM read_parquet('{store}/catalog/*.parquet')",
        ):
            with pytest.raises(StoreError, match="catalog tables only"):
                comp.sql(sql)
        # the catalog views still read their files
        assert comp.sql("SELECT count(*) AS n FROM conditions")["n"].iloc[0] > 0
    fault(
        "read_text('/etc/passwd')",
        "refused (no file but the catalog is readable)",
        f"exit {code}: file system access disabled; catalog views still read",
    )


def test_attach_is_refused(store, tmp_path, fault):
    db = tmp_path / "other.duckdb"
    code, out = _query(store, f"ATTACH '{db}' AS other")
    assert code == 2 and "ATTACH statements are refused" in out
    with Compendium.open(store) as comp:
        for sql in ("DETACH other", "USE other", f"EXPORT DATABASE '{tmp_path}/x'"):
            with pytest.raises(StoreError, match="statements are refused"):
                comp.sql(sql)
    assert not db.exists() and not (tmp_path / "x").exists()
    fault("ATTACH a database file", "refused, no file made", f"exit {code}; no file")


def test_install_and_load_are_refused(store, fault):
    observed = []
    for sql in ("INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true"):
        code, out = _query(store, sql)
        assert code == 2 and "statements are refused" in out
        observed.append(f"{sql.split()[0]}: exit {code}")
    with Compendium.open(store) as comp:
        for sql in ("CREATE TABLE t AS SELECT 1", "INSERT INTO genes SELECT * FROM genes"):
            with pytest.raises(StoreError, match=f"{sql.split()[0]} statements are refused"):
                comp.sql(sql)
        with pytest.raises(StoreError, match="PRAGMA enable_profiling is refused"):
            comp.sql("PRAGMA enable_profiling")
        with pytest.raises(StoreError, match="one SQL statement, found 2"):
            comp.sql("SELECT 1; INSTALL httpfs")
        # and DuckDB itself refuses, for code that uses the connection directly
        with pytest.raises(duckdb.Error, match="locked"):
            comp.con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            comp.con.execute("INSTALL httpfs")
    fault(
        "INSTALL/LOAD httpfs, SET",
        "refused (no extension, no network, settings locked)",
        "; ".join(observed) + "; connection config locked",
    )


def test_read_statements_and_parameters_still_run(store):
    with Compendium.open(store) as comp:
        n = comp.sql("SELECT count(*) AS n FROM conditions WHERE pert_time_h = ?", [24])
        assert n["n"].iloc[0] > 0
        for sql in (
            "WITH c AS (SELECT * FROM conditions) SELECT count(*) FROM c",
            "FROM genes LIMIT 2",
            "DESCRIBE genes",
            "SHOW TABLES",
            "SUMMARIZE datasets",
            "EXPLAIN SELECT * FROM genes",
            "PRAGMA table_info('genes')",
            "-- a comment\nSELECT 1 AS x;",
        ):
            assert isinstance(comp.sql(sql), pd.DataFrame), sql
        frames = list(comp.sql_batches("SELECT * FROM range(10000)", chunk_size=4096))
        assert [len(f) for f in frames] == [4096, 4096, 1808]
        assert [len(f) for f in comp.sql_batches("SELECT * FROM range(9) -- c", limit=3)] == [3]
        empty = list(comp.sql_batches("SELECT * FROM genes WHERE false"))
        assert len(empty) == 1 and len(empty[0]) == 0 and "symbol" in empty[0].columns
    code, out = _query(store, "SELECT * FROM range(7)", "--format", "csv", "--limit", "3")
    assert code == 0 and out.splitlines() == ["range", "0", "1", "2"]
    help_text = " ".join(runner.invoke(app, ["query", "--help"]).output.split())
    assert "COPY, ATTACH, INSTALL" in help_text and "--format tsv > file" in help_text
    code, out = _query(store, "SELECT * FROM range(5)", "--format", "json")
    assert code == 0 and pd.read_json(io.StringIO(out))["range"].tolist() == [0, 1, 2, 3, 4]


def test_limit_keeps_memory_small_on_a_large_result(store, fault):
    # SELECT 1 gives the peak of the command itself (imports, DuckDB, the table)
    base = _child(store, "SELECT 1 AS x")
    _, base_err = base.communicate(timeout=120)
    assert base.returncode == 0, base_err
    t0 = time.perf_counter()
    big = _child(store, "SELECT range AS a, range * 2 AS b FROM range(80000000)", "--limit", "5")
    out, err = big.communicate(timeout=120)
    seconds = time.perf_counter() - t0
    assert big.returncode == 0, err
    assert "more than 5 rows; 5 shown" in out
    baseline, peak = _peak_mb(base_err), _peak_mb(err)
    # before the fix, the 80M rows were materialized (about 1.3 GB above the baseline)
    assert peak - baseline < 64, (baseline, peak)
    # the bound on what the whole command allocates (the CLI loads the store reader only)
    anon = _peak_mb(err, "anon_kb")
    assert anon < 200, (anon, peak)
    fault(
        "query --limit 5 over 80M rows",
        "limit pushed down, < 200 MB allocated",
        f"peak allocated {anon:.0f} MB, peak RSS {peak:.0f} MB (SELECT 1: {baseline:.0f} MB), "
        f"{seconds:.1f} s",
    )


def test_ctrl_c_stops_a_query(store, fault):
    proc = _child(store, "SELECT count(*) FROM range(100000000000) t(a) WHERE a % 7 = 3")
    assert proc.stderr is not None
    # a busy machine can take more than a second to open the store: wait for the query
    assert proc.stderr.readline().strip() == "running"
    time.sleep(0.5)  # the query is running
    assert proc.poll() is None
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the query did not stop within 30 s of SIGINT")
    seconds = time.perf_counter() - t0
    assert proc.returncode == 130
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err
    assert seconds < 10
    fault(
        "Ctrl-C during a long query",
        "stops promptly, message, non-zero exit",
        f"exit {proc.returncode} after {seconds:.2f} s, no traceback",
    )
