"""The HTML agreement report: sections, tables, embedded figures, escaping, empty
results, and (when Chromium is installed) how a headless browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from perturbridge.report import read_agreement_tables, write_report
from perturbridge.schema import EFFECT_LAYERS

from .test_figures import synthetic_tables

EVIL = '<script>alert("x")</script>&co'
SECTIONS = ("compendium", "coverage", "cross", "retrieval", "replicate", "dose", "excluded", "run")
PNG_TAG = re.compile(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]+"')


# --------------------------------------------------------------------------- fixtures


def _release_file(root: Path, dataset: str, context: str, mode: str, rows, lfc) -> None:
    genes = [f"G{i:02d}" for i in range(lfc.shape[1])]
    names = rows["contrast"] if mode == "separate" else rows["condition"]
    obs = pd.DataFrame(
        {
            "cell_type": context,
            "perturbagen": rows["perturbagen"].to_numpy(),
            "compound_inchikey": rows["inchikey"].astype(object).to_numpy(),
            "pert_dose_uM": rows["dose"].to_numpy(dtype=float),
            "pert_time_h": 24.0,
        },
        index=pd.Index([f"{c} - DMSO" for c in names]),
    )
    if mode == "separate":
        obs["condition"] = rows["condition"].to_numpy()
    layers = {k: np.zeros(lfc.shape) for k in EFFECT_LAYERS}
    layers["logFC"] = lfc
    layers["adj.P.Value.within_one_contrast"] = np.where(np.abs(lfc) > 1.0, 0.01, 0.5)
    path = root / dataset / f"{mode}_rep" / f"{context}_de.h5ad"
    path.parent.mkdir(parents=True, exist_ok=True)
    ad.AnnData(obs=obs, var=pd.DataFrame(index=genes), layers=layers).write_h5ad(path)


def make_store(folder: Path, *, n_compounds: int = 6, n_genes: int = 40, seed: int = 0) -> Path:
    """Two datasets (``dsA`` with replicates, ``dsB``) sharing compounds ``K0..`` in
    context ``C1`` at 24 h, a shared planted effect per compound, plus one compound
    without an InChIKey; imported from release-layout DE files."""
    from perturbridge.compendium import import_release

    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 1.2, (n_compounds, n_genes))
    for ds, doses in (("dsA", (1.0, 10.0)), ("dsB", (1.0,))):
        recs = [
            (f"K{k}", f"{chr(65 + k) * 14}-XXXXXXXXXX-N", d, effect[k])
            for k in range(n_compounds)
            for d in doses
        ]
        recs.append(("ODD", None, 1.0, np.zeros(n_genes)))
        rows = pd.DataFrame(recs, columns=["perturbagen", "inchikey", "dose", "effect"])
        rows["condition"] = [
            f"{p}_{d:g}" for p, d in zip(rows["perturbagen"], rows["dose"], strict=True)
        ]
        lfc = np.stack(rows["effect"].to_numpy()) + rng.normal(0, 0.6, (len(rows), n_genes))
        _release_file(folder / "release", ds, "C1", "group", rows, lfc)
        if ds == "dsA":
            rep = rows.loc[rows.index.repeat(2)].reset_index(drop=True)
            rep["contrast"] = [f"{c}_r{i % 2}" for i, c in enumerate(rep["condition"])]
            rl = np.repeat(lfc, 2, axis=0) + rng.normal(0, 0.4, (len(rep), n_genes))
            _release_file(folder / "release", ds, "C1", "separate", rep, rl)
    import_release(folder / "release", folder / "store")
    return folder / "store"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("report_store"))


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return synthetic_tables(("L1000", EVIL, "tahoe"))


def _result(tables: dict[str, pd.DataFrame], **info) -> SimpleNamespace:
    info.setdefault("options", {"min_compounds": 10, "n_boot": 2000, "identity": "parent"})
    return SimpleNamespace(**tables, info=info)


@pytest.fixture(scope="module")
def report(tmp_path_factory, store, tables) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(store, out, result=_result(tables, build_key="other"), title="T & <b>")


def _sources(doc: str) -> list[str]:
    return re.findall(r'(?:src|href)\s*=\s*["\']?([^"\' >]+)', doc)


# --------------------------------------------------------------------------- tests


def test_report_has_every_section_table_and_figure(report):
    doc = report.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in doc
    folder = report.with_name("report_figures")
    pngs = sorted(p.stem for p in folder.glob("*.png"))
    assert pngs == sorted(p.stem for p in folder.glob("*.svg"))
    assert {"cross_agreement", "retrieval", "replicate_agreement", "dose_sensitivity"} <= set(pngs)
    assert len(PNG_TAG.findall(doc)) == len(pngs) == 1 + 4 + 3  # + one heatmap per metric
    # the counts, datasets, coverage, four metric tables, retrieval, replicates, ...
    assert doc.count("<table>") >= 15
    for caption in ("Counts", "Datasets", "Conditions by dataset", "DEG-restricted Spearman",
                    "Direction agreement", "Datasets without replicate agreement"):  # fmt: skip
        assert f"<caption>{caption}</caption>" in doc
    # observed [CI] and Δ [CI] with signed numbers; the published finding as context
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", doc)
    assert re.search(r"[+−]\d\.\d{3} \[[+−]\d\.\d{3}, [+−]\d\.\d{3}\]", doc)
    assert (
        "Context." in doc
        and "Of the genes called DE on one side, the fraction that move the same way" in doc
    )
    assert "no separate-mode effects" in doc
    # the agreement run was on another build of the store: the report says so
    assert "the store changed since the agreement run" in doc
    assert "T &amp; &lt;b&gt;" in doc


def test_report_is_self_contained(report):
    doc = report.read_text(encoding="utf-8")
    for target in _sources(doc):
        assert target.startswith(("data:image/png;base64,", "#")), target
    assert "<script" not in doc.replace(_escaped(EVIL), "")
    assert "@import" not in doc and "url(" not in doc
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?https?://", doc)


def _escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_data_text_is_escaped(report):
    doc = report.read_text(encoding="utf-8")
    assert EVIL not in doc
    assert "<script>" not in doc
    assert _escaped(EVIL) in doc  # shown, as text
    assert f"{_escaped(EVIL)} vs L1000" in doc


def test_report_from_an_agreement_folder(tmp_path, store, tables):
    folder = tmp_path / "agreement"
    folder.mkdir()
    for name, table in tables.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
    info = {"options": {"min_compounds": 7, "score": "cosine"}, "counts": {"pairs": 24}}
    (folder / "agreement.json").write_text(json.dumps(info))
    back = read_agreement_tables(folder)
    assert back["info"] == info and len(back["cross_summary"]) == len(tables["cross_summary"])
    figs = tmp_path / "figs"
    out = write_report(store, tmp_path / "r.html", agreement_dir=folder, figures_dir=figs)
    doc = out.read_text(encoding="utf-8")
    assert "<td>min_compounds</td>" in doc and "cosine" in doc and "counts.pairs" in doc
    assert len(list(figs.glob("*.png"))) == len(list(figs.glob("*.svg"))) == 8
    assert not (tmp_path / "r_figures").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_missing_tables_are_said(tmp_path, store, tables):
    folder = tmp_path / "agreement"
    folder.mkdir()
    tables["cross_summary"].to_parquet(folder / "cross_summary.parquet", index=False)
    doc = write_report(store, tmp_path / "r.html", agreement_dir=folder).read_text("utf-8")
    assert "pairs was not found in" in doc and "replicate_summary was not found" in doc


def test_empty_results_render_sentences(tmp_path, store):
    empty = synthetic_tables()
    result = _result(
        {
            "cross_summary": empty["cross_summary"].iloc[:0],
            "replicate_summary": empty["replicate_summary"].query("metric == '*'"),
            "pairs": empty["pairs"].iloc[:0],
            "retrieval": empty["retrieval"].iloc[:0],
            "excluded": pd.DataFrame(),
            "strata": pd.DataFrame(),
            "dose_sensitivity": None,
        }
    )
    out = write_report(store, tmp_path / "empty.html", result=result)
    doc = out.read_text(encoding="utf-8")
    assert "No dataset pairs had matched conditions" in doc and "at least 10 matched" in doc
    assert "No retrieval queries" in doc
    assert "No dataset has separate-mode" in doc
    assert "Dose sensitivity was not computed" in doc
    assert "No conditions were excluded." in doc
    assert "<img" not in doc
    assert not (tmp_path / "empty_figures").exists()
    for section in SECTIONS:
        assert f'<section id="{section}">' in doc


def test_compendium_sections_read_the_store(report):
    doc = report.read_text(encoding="utf-8")
    # two datasets, the compound without an InChIKey lowers the coverage of both
    assert "<td>dsA</td>" in doc and "<td>dsB</td>" in doc
    assert "12 (92.3 %)" in doc  # dsA: 12 of 13 conditions have an InChIKey
    assert "6 (85.7 %)" in doc  # dsB: 6 of 7
    assert "shared compound × context × time" in doc


def test_errors(tmp_path, store, tables):
    with pytest.raises(ValueError, match="either result or agreement_dir"):
        write_report(store, tmp_path / "r.html", result=_result(tables), agreement_dir=tmp_path)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="is not an agreement folder"):
        write_report(store, tmp_path / "r.html", agreement_dir=tmp_path / "nothing")
    with pytest.raises(IsADirectoryError, match=r"give the path of an \.html file"):
        write_report(store, tmp_path, result=_result(tables))
    assert not (tmp_path / "r.html").exists()


def test_public_entry_is_the_report_package():
    """``write_report`` lives in :mod:`perturbridge.report`; ``agreement`` does not know it."""
    import perturbridge.agreement as agreement
    import perturbridge.report as report

    assert report.write_report is write_report
    assert not hasattr(agreement, "write_report")


@pytest.mark.slow
def test_report_of_a_real_run(tmp_path, store):
    options = {"min_compounds": 3, "n_boot": 50, "dose_sensitivity": True}
    out = write_report(store, tmp_path / "real.html", options=options)
    doc = out.read_text(encoding="utf-8")
    assert "dsA vs dsB" in doc
    assert len(PNG_TAG.findall(doc)) == len(list((tmp_path / "real_figures").glob("*.png"))) > 0
    assert "<td>min_compounds</td>" in doc


# --------------------------------------------------------------------------- browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    pytest.skip("Chromium is not installed (make browser installs Debian's chromium as root)")


def _run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _console_errors(stderr: str) -> list[str]:
    """Console messages and load failures of the page (Chromium's own pages, ``chrome://``,
    log too, e.g. "Slow network is detected" when the tests run without a network)."""
    return [
        line
        for line in stderr.splitlines()
        if ("Uncaught" in line or "CONSOLE" in line or "Failed to load" in line)
        and "source: chrome://" not in line
    ]


def test_headless_chromium_renders_the_report(tmp_path, report):
    image = pytest.importorskip("PIL.Image")
    exe = _chromium()
    url = report.absolute().as_uri()
    shot = tmp_path / "shot.png"
    proc = _run_chromium(exe, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1400,4000",
                         url)  # fmt: skip
    assert shot.is_file(), proc.stderr[-2000:]
    assert not _console_errors(proc.stderr), _console_errors(proc.stderr)
    with image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape == (4000, 1400)
    non_white = (pixels < 245).mean()
    assert non_white > 0.03, f"screenshot nearly blank ({non_white:.1%} non-white pixels)"
    assert pixels.std() > 10

    dom = _run_chromium(exe, tmp_path / "p2", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not _console_errors(dom.stderr), _console_errors(dom.stderr)
    doc = report.read_text(encoding="utf-8")
    n_figures = len(list(report.with_name("report_figures").glob("*.png")))
    assert dom.stdout.count("<table>") == doc.count("<table>") >= 15
    assert len(PNG_TAG.findall(dom.stdout)) == n_figures
    assert 'id="cross"' in dom.stdout and "<script>" not in dom.stdout
