"""Precomputed signatures into a store: CMap level 5 GCTX and signatureSearch HDF5."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app
from perturbridge.compendium import Compendium, StoreError, import_release
from perturbridge.compendium.signatures import import_signatures, read_signatures
from perturbridge.io import read_gctx, write_gctx
from perturbridge.simulate import AgreementDesign
from perturbridge.simulate.agreement import write_agreement_release

# Hand-made level 5 file: 5 probes (one without Entrez id, one repeating an Entrez id)
# × 5 signatures in 2 cell lines, CMap's dose and time spellings.
PROBES = ["p1_at", "p2_at", "p3_at", "p4_at", "p5_at"]
ENTREZ = ["5720", "466", "-666", "6009", "466"]
SYMBOLS = ["PSME1", "ATF1", "NA", "RHEB", "ATF1"]
SIGS = ["S1", "S2", "S3", "S4", "S5"]


def _level5(path: Path) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 5)).astype(np.float32)
    x[:, 4] = np.nan  # S5: no value at all
    row_meta = pd.DataFrame(
        {"pr_gene_id": ENTREZ, "pr_gene_symbol": SYMBOLS}, index=pd.Index(PROBES, name="id")
    )
    col_meta = pd.DataFrame(
        {
            "cell_id": ["A375", "A375", "MCF7", "MCF7", "MCF7"],
            "pert_id": ["BRD-K1", "BRD-K1", "BRD-K2", "BRD-K3", "BRD-K3"],
            "pert_iname": ["vemurafenib", "vemurafenib", "atorvastatin", "-666", "x"],
            "pert_idose": ["10 <b5>M", "100 nM", "1 µM", "-666", "1 uM"],
            "pert_itime": ["6 h", "24 h", "6 h & 4 h", "24 h", "24 h"],
            "pert_type": ["trt_cp"] * 5,
            "distil_nsample": [4, 3, 5, 2, 2],
            "distil_ss": [2.5, 3.0, 1.0, 0.5, 0.1],
        },
        index=pd.Index(SIGS, name="id"),
    )
    write_gctx(path, x, row_meta=row_meta, col_meta=col_meta)
    return x


def _sigsearch(path: Path, *, colnames: list[str] | None = None) -> np.ndarray:
    """The signatureSearch layout as R's rhdf5 writes it (h5py sees signatures × genes)."""
    rng = np.random.default_rng(2)
    cols = colnames or ["vorinostat__SKB__trt_cp", "trichostatin-a__SKB__trt_cp", "x__HL60__trt_cp"]
    genes = ["23645", "5290", "54957", "10"]
    x = rng.normal(size=(len(cols), len(genes)))
    with h5py.File(path, "w") as f:
        f["assay"] = x
        f["colnames"] = np.array([c.encode() for c in cols])[None, :]
        f["rownames"] = np.array([g.encode() for g in genes])[None, :]
    return x


@pytest.fixture
def level5(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "level5.gctx"
    return path, _level5(path)


def test_gctx_signatures_enter_the_store_with_their_values(tmp_path, level5):
    path, x = level5
    store = tmp_path / "store"
    manifest = import_signatures(store, path, dataset="cmap")
    entry = manifest["datasets"][0]
    assert (entry["source"], entry["n_signatures"], entry["n_dropped"]) == (
        "signature_import",
        5,
        1,
    )
    with Compendium.open(store) as comp:
        cond = comp.conditions().set_index("condition_id")
        assert sorted(cond.index) == ["cmap:S1", "cmap:S2", "cmap:S3", "cmap:S4"]
        # doses: 10 µM written with R's <b5>, 100 nM, 1 µM; -666 is missing
        dose = cond["pert_dose_uM"]
        assert dose["cmap:S1"] == 10.0 and dose["cmap:S2"] == pytest.approx(0.1)
        assert dose["cmap:S3"] == 1.0 and np.isnan(dose["cmap:S4"])
        time = cond["pert_time_h"]
        assert time["cmap:S1"] == 6.0 and time["cmap:S2"] == 24.0 and np.isnan(time["cmap:S3"])
        assert cond.loc["cmap:S4", "perturbagen"] == "BRD-K3"  # no name: the compound id
        assert cond.loc["cmap:S1", "cell_context"] == "A375"
        assert list(cond.sort_index()["n_treated"]) == [4, 3, 5, 2]  # S1..S4
        genes = comp.genes()
        # the probe without an Entrez id and the second probe of Entrez 466 are not genes
        assert sorted(genes["gene_id"]) == ["466", "5720", "6009"]
        eff = comp.effects(["cmap:S1", "cmap:S3"], genes=["5720", "466", "6009"])
        # rows p1, p2 (first 466), p4 of the file; S1 and S3 are columns 0 and 2
        np.testing.assert_array_equal(eff.X, x[[0, 1, 3]][:, [0, 2]].T)
        t = comp.effects(["cmap:S1"], layer="t")
        assert np.isnan(t.X).all()  # the values are in logFC only
        ledger = comp.table("ledger")
        sig = ledger[ledger["stage"] == "signatures"].set_index("id")
        assert sorted(sig.index) == SIGS  # every input signature is accounted for
        assert sig.loc["S5", "status"] == "dropped" and sig.loc["S5", "reason"] == "no_values"
        assert sig.loc["S3", "reason"] == "time_unparsed"
        assert "6 h & 4 h" in str(sig.loc["S3", "detail"])
        genes_led = ledger[ledger["stage"] == "genes"].set_index("id")
        assert sorted(genes_led.index) == PROBES
        assert genes_led.loc["p3_at", "reason"] == "no_entrez_id"
        assert genes_led.loc["p5_at", "reason"] == "duplicate_gene"
        assert (genes_led.loc[["p1_at", "p2_at", "p4_at"], "status"] == "kept").all()


def test_read_signatures_keeps_unmapped_fields_per_context(level5):
    path, _ = level5
    conv = read_signatures(path, dataset="cmap")
    assert sorted(conv.effects) == ["A375", "MCF7"]
    obs = conv.effects["A375"].obs
    assert list(obs.index) == ["S1", "S2"]
    assert list(obs["distil_ss"]) == [2.5, 3.0]  # an upstream field kept under its name
    assert conv.effects["A375"].uns["perturbridge"]["value_kind"] == "zscore"


def test_signaturesearch_layout(tmp_path):
    path = tmp_path / "db.h5"
    x = _sigsearch(path)
    store = tmp_path / "store"
    import_signatures(store, path, kind="signaturesearch", dataset="lincs")
    with Compendium.open(store) as comp:
        cond = comp.conditions().set_index("condition_id")
        vor = "lincs:vorinostat__SKB__trt_cp"
        assert cond.loc[vor, "perturbagen"] == "vorinostat"
        assert cond.loc[vor, "cell_context"] == "SKB"
        assert cond.loc[[vor], ["pert_dose_uM", "pert_time_h"]].isna().all(axis=None)
        genes = ["23645", "5290", "54957", "10"]
        eff = comp.effects([vor, "lincs:x__HL60__trt_cp"], genes=genes)
        np.testing.assert_allclose(eff.X, x[[0, 2]].astype(np.float32))


def test_signaturesearch_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.h5"
    _sigsearch(bad, colnames=["vorinostat__SKB", "a__B__trt_cp", "c__D__trt_cp"])
    with pytest.raises(ValueError, match=r"not '<drug>__<cell>__<pert_type>'.*vorinostat__SKB"):
        read_signatures(bad, kind="signaturesearch", dataset="d")
    dup = tmp_path / "dup.h5"
    _sigsearch(dup, colnames=["a__B__trt_cp", "a__B__trt_cp", "c__D__trt_cp"])
    with pytest.raises(ValueError, match=r"repeats signature names.*a__B__trt_cp"):
        read_signatures(dup, kind="signaturesearch", dataset="d")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["matrix"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"no dataset\(s\) \['assay', 'colnames', 'rownames'\]"):
        read_signatures(other, kind="signaturesearch", dataset="d")
    with pytest.raises(ValueError, match="kind must be one of"):
        read_signatures(other, kind="gct", dataset="d")  # type: ignore[arg-type, unused-ignore]
    with pytest.raises(ValueError, match="layer must be an Effects layer"):
        read_signatures(other, kind="signaturesearch", dataset="d", layer="z")
    with pytest.raises(FileNotFoundError, match="signature file not found"):
        import_signatures(tmp_path / "s", tmp_path / "none.h5", dataset="d")


def test_gctx_without_cell_line_is_an_error(tmp_path):
    path = tmp_path / "x.gctx"
    write_gctx(
        path,
        np.zeros((1, 1), dtype=np.float32),
        row_meta=pd.DataFrame({"pr_gene_id": ["1"]}, index=pd.Index(["p"], name="id")),
        col_meta=pd.DataFrame({"pert_iname": ["a"]}, index=pd.Index(["s"], name="id")),
    )
    with pytest.raises(ValueError, match=r"lacks \['cell'\].*cell_id.*not CMap's"):
        read_signatures(path, dataset="d")


def test_gctx_without_metadata_reads_cmap_signature_ids(tmp_path):
    path = tmp_path / "ids.gctx"
    ids = ["ASG001_MCF7_24H:BRD-A79768653-001-01-3:10", "CPC012_SKB_6H_X1:BRD-K81418486:10"]
    write_gctx(
        path,
        np.ones((1, 2), dtype=np.float32),
        row_meta=pd.DataFrame(index=pd.Index(["5720"], name="id")),
        col_meta=pd.DataFrame(index=pd.Index(ids, name="id")),
    )
    conv = read_signatures(path, dataset="d")
    mcf7, skb = conv.effects["MCF7"].obs, conv.effects["SKB"].obs
    assert mcf7["compound_id_source"].tolist() == ["BRD-A79768653-001-01-3"]
    assert mcf7["perturbagen"].tolist() == ["BRD-A79768653-001-01-3"]  # no name: the id
    assert (mcf7["pert_time_h"].tolist(), skb["pert_time_h"].tolist()) == ([24.0], [6.0])
    assert np.isnan(mcf7["pert_dose_uM"].iloc[0])  # the id's dose has no unit: not read
    assert conv.info["fields"]["cell"] == "signature id (cell)"


def test_signatures_join_other_datasets_and_reimport_writes_nothing(tmp_path, level5):
    path, _ = level5
    release = tmp_path / "release"
    design = AgreementDesign(n_datasets=1, n_contexts=1, n_compounds=3, doses=(1.0,), n_genes=20)
    write_agreement_release(release, design, seed=0)
    store = tmp_path / "store"
    import_release(release, store)
    h5 = tmp_path / "db.h5"
    _sigsearch(h5)
    import_signatures(store, path, dataset="cmap")
    first = import_signatures(store, h5, kind="signaturesearch", dataset="lincs")
    names = {d["name"]: d["source"] for d in first["datasets"]}
    assert names == {"sim_a": "release_import", "cmap": "signature_import",
                     "lincs": "signature_import"}  # fmt: skip
    manifest_file = store / "manifest.json"
    before = manifest_file.stat().st_mtime_ns
    again = import_signatures(store, h5, kind="signaturesearch", dataset="lincs")
    assert again["build_key"] == first["build_key"]
    assert manifest_file.stat().st_mtime_ns == before  # nothing written
    with pytest.raises(StoreError, match=r"has a dataset 'sim_a' \(source 'release_import'"):
        import_signatures(store, h5, kind="signaturesearch", dataset="sim_a")
    with Compendium.open(store) as comp:
        assert set(comp.conditions()["dataset"]) == {"sim_a", "cmap", "lincs"}
    # a release import afterwards keeps the signature datasets
    after = import_release(release, store)
    assert {d["name"] for d in after["datasets"]} == {"sim_a", "cmap", "lincs"}


def test_cli_import_signatures(tmp_path, level5):
    path, _ = level5
    runner = CliRunner()
    store = tmp_path / "store"
    res = runner.invoke(
        app, ["import-signatures", str(store), str(path), "--kind", "gctx", "--dataset", "cmap"]
    )
    assert res.exit_code == 0, res.output
    assert "cmap: 4 signatures (1 dropped), 3 genes" in " ".join(res.output.split())
    res = runner.invoke(app, ["import-signatures", str(store), str(path), "--dataset", "a b"])
    assert res.exit_code == 2 and "dataset must be a plain name" in res.output
    res = runner.invoke(
        app, ["import-signatures", str(store), str(path), "--kind", "signaturesearch",
              "--dataset", "c"]
    )  # fmt: skip
    assert res.exit_code == 2 and "not the signatureSearch layout" in " ".join(res.output.split())
    assert "Traceback" not in res.output


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_cmap_level5_gctx(tmp_path):
    path = shared_path("l1000_cmapR", "cmapR_ds_level5_modz_n272x978.gctx")
    store = tmp_path / "store"
    import_signatures(store, path, dataset="cmap")
    gct = read_gctx(path)
    with Compendium.open(store) as comp:
        cond = comp.conditions()
        print(cond.groupby("perturbagen").size())
        assert len(cond) == 272
        assert cond.groupby("perturbagen").size().to_dict() == {
            "atorvastatin": 94, "vemurafenib": 140, "venlafaxine": 38}  # fmt: skip
        assert cond["cell_context"].nunique() == 65
        assert set(cond["pert_time_h"].dropna()) == {6.0, 24.0}
        assert len(comp.genes()) == 978
        ids = ["cmap:" + s for s in gct.col_meta.index[:4]]
        entrez = gct.row_meta["pr_gene_id"].astype(str).tolist()
        eff = comp.effects(ids, genes=entrez)
        np.testing.assert_array_equal(eff.X, gct.data[:, :4].T)
        led = comp.table("ledger")
        assert (led["stage"] == "signatures").sum() == 272


@pytest.mark.shared_data
def test_real_signaturesearch_sample_db(tmp_path):
    path = shared_path("l1000_signatureSearch", "sample_db.h5")
    store = tmp_path / "store"
    import_signatures(store, path, kind="signaturesearch", dataset="skb")
    with h5py.File(path, "r") as f:
        assay = np.asarray(f["assay"][0, :], dtype=np.float32)  # vorinostat, in R's order
        genes = [g.decode() for g in f["rownames"][0]]
    with Compendium.open(store) as comp:
        cond = comp.conditions()
        assert len(cond) == 100 and set(cond["cell_context"]) == {"SKB"}
        eff = comp.effects(["skb:vorinostat__SKB__trt_cp"], genes=genes)
        np.testing.assert_array_equal(eff.X[0], assay)


def test_a_build_keeps_imported_signatures(tmp_path, built):
    """A plan rebuilt into a store that also holds imported signatures keeps them (they
    are imported datasets, like release imports), and a plan never lists them as removals."""
    import shutil

    from perturbridge.compendium import build
    from perturbridge.compendium._common import IMPORTED_SOURCES
    from perturbridge.compendium.release import SOURCE as RELEASE_SOURCE
    from perturbridge.compendium.signatures import SOURCE as SIGNATURE_SOURCE

    assert {RELEASE_SOURCE, SIGNATURE_SOURCE} <= set(IMPORTED_SOURCES)
    folder = tmp_path / "f"
    shutil.copytree(built["folder"], folder)
    store = folder / "store"
    x = _level5(tmp_path / "l5.gctx")
    import_signatures(store, tmp_path / "l5.gctx", kind="gctx", dataset="cmap")
    report = build(folder / built["plan"].name)  # no force needed: nothing is removed
    assert not report.computed
    with Compendium.open(store) as comp:
        names = set(comp.table("datasets")["dataset"])
        assert "cmap" in names and {"sim_counts", "sim_l1000"} <= names
        n = comp.sql("SELECT count(*) n FROM conditions WHERE dataset = 'cmap'")["n"].iloc[0]
        assert n == int(np.isfinite(x).any(axis=0).sum())  # S5 has no value at all
