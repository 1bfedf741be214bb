"""Reliability of the generic adapter's expression tables (issue 13 leftovers).

Faults: a row in the middle of the expression table with too few or too many fields, a
quote never closed, a gzipped table cut short or with a bad checksum, in CSV and TSV,
plain and gzipped, in both orientations; counts that are not whole numbers, refused
unless the mapping says ``allow_non_integer = true``. Each test reproduces the fault
first and records what was expected and what happened with the ``fault`` fixture. The
rule: a corrupt table is one error naming the file and the line (expected and found
field counts), found in the pass that parses the table.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbridge.compendium import plan_tasks
from perturbridge.errors import FormatError
from perturbridge.simulate.upstream_generic import write_generic
from perturbridge.sources.generic import MappingError, load_mapping, read_generic


def _outcome(call) -> str:  # type: ignore[no-untyped-def]
    """What a call did, in words: the error it raised or how many samples it kept."""
    try:
        res = call()
    except Exception as err:  # the table records whatever happened
        text = re.sub(r"/\S*/", "", str(err))  # file names without their folders
        return f"{type(err).__name__}: {text[:180]}"
    return f"ok, {res.samples.n_obs} samples"


def _table(
    tmp_path: Path, *, suffix: str, orientation: str, n_genes: int = 40
) -> tuple[Path, Path]:
    """The example's files with the expression table written as ``counts<suffix>`` in
    ``orientation``; returns the mapping and the table (uncompressed text first)."""
    files = write_generic(tmp_path, n_genes=n_genes, seed=3)
    counts = pd.read_csv(files["counts"], index_col=0)
    sep = "," if ".csv" in suffix else "\t"
    text = files["mapping"].read_text()
    if orientation == "samples_x_genes":
        counts.drop(columns="gene_name").T.rename_axis("sample").to_csv(
            tmp_path / "table.txt", sep=sep
        )
        text = text.replace('"genes_x_samples"', '"samples_x_genes"').replace(
            'symbol_column = "gene_name"\n', ""
        )
    else:
        counts.to_csv(tmp_path / "table.txt", sep=sep)
    files["mapping"].write_text(text.replace('"counts.csv"', f'"counts{suffix}"'))
    return files["mapping"], tmp_path / "table.txt"


def _write(plain: str, path: Path) -> None:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(plain)
    else:
        path.write_text(plain)


def _edit_row(text: str, row: int, sep: str, change: str) -> tuple[str, int]:
    """``text`` with data row ``row`` one field short, one field long, or with an
    opening quote; returns the text and the line number of the row (header: line 1)."""
    lines = text.split("\n")
    cells = lines[row].split(sep)
    if change == "short":
        cells = cells[:-1]
    elif change == "long":
        cells = [*cells, "7"]
    else:  # an unclosed quote
        cells[1] = '"' + cells[1]
    lines[row] = sep.join(cells)
    return "\n".join(lines), row + 1


CASES = [
    (suffix, orientation)
    for suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz")
    for orientation in ("genes_x_samples", "samples_x_genes")
]


@pytest.mark.parametrize(("suffix", "orientation"), CASES)
@pytest.mark.parametrize("change", ["short", "long"])
def test_a_row_in_the_middle_with_the_wrong_field_count_names_file_and_line(
    tmp_path, fault, suffix, orientation, change
):
    mapping, plain = _table(tmp_path, suffix=suffix, orientation=orientation)
    sep = "," if ".csv" in suffix else "\t"
    text = plain.read_text()
    n_fields = len(text.split("\n", 1)[0].split(sep))
    bad, line = _edit_row(text, 5, sep, change)
    _write(bad, tmp_path / f"counts{suffix}")
    call = lambda: read_generic(mapping)  # noqa: E731
    fault(
        f"{orientation} counts{suffix}: row {line} one field {change}",
        "error naming file, line, expected and found fields",
        _outcome(call),
    )
    found = n_fields - 1 if change == "short" else n_fields + 1
    word = "fewer" if change == "short" else "more"
    with pytest.raises(
        FormatError,
        match=rf"counts{re.escape(suffix)}: 1 row\(s\) of the expression table have {word} "
        rf"fields than the header's {n_fields}: line {line} has {found}$",
    ):
        call()


@pytest.mark.parametrize(("suffix", "orientation"), CASES)
def test_an_unclosed_quote_names_file_and_line(tmp_path, fault, suffix, orientation):
    mapping, plain = _table(tmp_path, suffix=suffix, orientation=orientation)
    sep = "," if ".csv" in suffix else "\t"
    bad, line = _edit_row(plain.read_text(), 5, sep, "quote")
    _write(bad, tmp_path / f"counts{suffix}")
    call = lambda: read_generic(mapping)  # noqa: E731
    fault(
        f"{orientation} counts{suffix}: quote opened on line {line}",
        "error naming file and line",
        _outcome(call),
    )
    with pytest.raises(
        FormatError, match=rf"counts{re.escape(suffix)}: .*quote opened on line {line} is never"
    ):
        call()


@pytest.mark.parametrize(("suffix", "orientation"), CASES)
def test_a_table_cut_mid_row_names_the_last_line(tmp_path, fault, suffix, orientation):
    mapping, plain = _table(tmp_path, suffix=suffix, orientation=orientation)
    sep = "," if ".csv" in suffix else "\t"
    text = plain.read_text().rstrip("\n")
    cut = text[: text.rfind(sep) - 1]  # the last row loses its last field and a digit
    _write(cut, tmp_path / f"counts{suffix}")
    call = lambda: read_generic(mapping)  # noqa: E731
    fault(f"{orientation} counts{suffix} cut mid-row", "error naming the last line", _outcome(call))
    with pytest.raises(
        FormatError,
        match=rf"counts{re.escape(suffix)}: .*line {cut.count(chr(10)) + 1} has \d+; the last "
        r"line has \d+ fields, the header \d+: the file is cut short",
    ):
        call()


@pytest.mark.parametrize("orientation", ["genes_x_samples", "samples_x_genes"])
@pytest.mark.parametrize("suffix", [".csv.gz", ".tsv.gz"])
@pytest.mark.parametrize("damage", ["cut", "crc"])
def test_a_damaged_gzip_table_is_an_error_naming_the_file(
    tmp_path, fault, suffix, orientation, damage
):
    # large enough that the stream breaks after some lines were read
    mapping, plain = _table(tmp_path, suffix=suffix, orientation=orientation, n_genes=3000)
    path = tmp_path / f"counts{suffix}"
    _write(plain.read_text(), path)
    raw = bytearray(path.read_bytes())
    if damage == "cut":
        raw = raw[: len(raw) * 2 // 3]  # an interrupted download
    else:
        raw[-8] ^= 0xFF  # the CRC-32 of the trailer
    path.write_bytes(bytes(raw))
    call = lambda: read_generic(mapping)  # noqa: E731
    fault(
        f"{orientation} counts{suffix}: gzip {damage}", "error naming file and line", _outcome(call)
    )
    with pytest.raises(
        FormatError,
        match=rf"counts{re.escape(suffix)}: the (expression|counts) table is cut short or "
        r"corrupt after line \d+ \(.*\); copy or download it again",
    ):
        call()


def test_a_good_gzipped_tsv_reads_like_the_csv(tmp_path):
    mapping, plain = _table(tmp_path, suffix=".tsv.gz", orientation="genes_x_samples")
    _write(plain.read_text(), tmp_path / "counts.tsv.gz")
    ref = read_generic(mapping)
    mapping.write_text(mapping.read_text().replace('"counts.tsv.gz"', '"counts.csv"'))
    other = read_generic(mapping)
    np.testing.assert_array_equal(ref.samples.X.toarray(), other.samples.X.toarray())
    pd.testing.assert_frame_equal(ref.samples.obs, other.samples.obs)


def _non_integer(tmp_path: Path) -> tuple[Path, list[str]]:
    """The example with a few counts of two treated samples made fractional."""
    files = write_generic(tmp_path, n_genes=40, seed=3)
    counts = pd.read_csv(files["counts"], index_col=0)
    meta = pd.read_csv(files["samples"], sep="\t", dtype=str)
    ids = meta.loc[meta["compound"].str.startswith("drug"), "sample"].iloc[:2].tolist()
    counts[ids] = counts[ids].astype(float)
    counts.iloc[:3, [counts.columns.get_loc(i) for i in ids]] += 0.25
    counts.to_csv(files["counts"])
    return files["mapping"], ids


def test_non_integer_counts_are_refused_by_default_naming_the_samples(tmp_path, fault):
    mapping, ids = _non_integer(tmp_path)
    call = lambda: read_generic(mapping)  # noqa: E731
    fault("estimated (non-integer) counts", "error naming the sample ids", _outcome(call))
    with pytest.raises(
        ValueError, match=rf"2 sample\(s\) \['{ids[0]}', '{ids[1]}'\].*not whole numbers"
    ):
        call()


def test_allow_non_integer_in_the_mapping_accepts_them(tmp_path, fault):
    mapping, ids = _non_integer(tmp_path)
    text = mapping.read_text()
    mapping.write_text(
        text.replace('value_kind = "counts"', 'value_kind = "counts"\nallow_non_integer = true')
    )
    assert load_mapping(mapping).allow_non_integer
    res = read_generic(mapping)
    fault("estimated counts, allow_non_integer = true", "accepted", _outcome(lambda: res))
    x = res.samples[ids].X.toarray()
    assert (x != np.round(x)).sum() == 6
    prov = res.samples.uns["perturbridge"]["provenance"]
    assert prov["params"]["allow_non_integer"] is True


@pytest.mark.parametrize(
    ("value", "kind", "pattern"),
    [
        ('"yes"', "counts", r"input\.allow_non_integer: expected true or false .*found 'yes'"),
        ("true", "log_expression", r"input\.allow_non_integer: applies to value_kind = 'counts'"),
    ],
)
def test_allow_non_integer_is_validated(tmp_path, value, kind, pattern):
    files = write_generic(tmp_path, n_genes=40, seed=3)
    text = files["mapping"].read_text()
    files["mapping"].write_text(
        text.replace('value_kind = "counts"', f'value_kind = "{kind}"\nallow_non_integer = {value}')
    )
    with pytest.raises(MappingError, match=pattern):
        load_mapping(files["mapping"])


def test_allow_non_integer_changes_the_ingest_task_key(tmp_path, fault):
    files = write_generic(tmp_path / "in", n_genes=40, seed=3)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[store]\npath = "store"\n[[datasets]]\nname = "gen"\nsource = "generic"\n'
        f'inputs = {{ mapping = "{files["mapping"]}" }}\n'
    )

    def key() -> str:
        return next(t["key"] for t in plan_tasks(plan) if t["task"] == "ingest:gen")

    before = key()
    text = files["mapping"].read_text()
    files["mapping"].write_text(
        text.replace('value_kind = "counts"', 'value_kind = "counts"\nallow_non_integer = true')
    )
    after = key()
    fault(
        "allow_non_integer added to a mapping",
        "a new ingest task key",
        f"{before[:8]} -> {after[:8]}",
    )
    assert after != before
