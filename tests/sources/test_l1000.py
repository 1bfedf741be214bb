"""L1000 level 3 adapter: the real LJP005 plate, inst_info tables, units and bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from perturbridge.cli import app
from perturbridge.errors import FormatError, SchemaError, UnitError
from perturbridge.io import GCTXFile, write_gctx
from perturbridge.schema import validate_samples
from perturbridge.simulate import L1000Plates, simulate_l1000
from perturbridge.sources import L1000Tables, get_source, list_sources, read_l1000

PLATE = ("l1000_cmapPy", "test_l1000.gct")


@pytest.fixture(scope="module")
def ljp005():
    return read_l1000(shared_path(*PLATE))


def test_real_plate_ledger_accounts_for_every_well(ljp005):
    full = ljp005.ledger.to_frame()
    led = full[full["stage"] == "ingest"]
    assert len(led) == 377
    assert led["id"].is_unique
    counts = led.groupby(["status", "reason"]).size().to_dict()
    assert counts == {("dropped", "positive_control"): 23, ("kept", ""): 354}
    obs = ljp005.samples.obs
    assert int(obs["is_control"].sum()) == 26
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    assert (obs.loc[~obs["is_control"], "pert_type"] == "compound").all()
    dropped = led.loc[led["status"] == "dropped", "detail"]
    assert set(dropped) == {"trt_poscon"}


def test_real_plate_doses_times_and_identity(ljp005):
    obs = ljp005.samples.obs
    validate_samples(ljp005.samples)
    assert (obs["pert_time_h"] == 24.0).all()
    assert (obs.loc[obs["is_control"], "pert_dose_uM"] == 0).all()
    a07 = obs.loc["LJP005_A375_24H_X1_B19:A07"]
    assert a07["perturbagen"] == "CP-724714"
    assert a07["compound_id_source"] == "BRD-K76908866"
    assert a07["pert_dose_uM"] == pytest.approx(10.0)
    assert obs.loc["LJP005_A375_24H_X1_B19:A10", "pert_dose_uM"] == pytest.approx(0.37)
    treated = obs.loc[~obs["is_control"], "pert_dose_uM"]
    assert set(np.round(treated.unique(), 2)) == {0.04, 0.12, 0.37, 1.11, 3.33, 10.0}
    assert (obs["plate"] == "LJP005_A375_24H_X1").all()
    assert (obs["replicate"] == "X1").all()
    assert (obs["cell_context"] == "A375").all()
    var = ljp005.samples.var
    assert var.loc["5720", "symbol"] == "PSME1"
    assert var.loc["5720", "probe_id"] == "200814_at"
    assert ljp005.samples.n_vars == 978
    x = np.asarray(ljp005.samples.X)
    assert x.min() > 3
    assert x.max() < 16  # level 3 log2 QNORM


def _sim_files(tmp_path: Path, **kw):
    sim = simulate_l1000(
        n_genes=30, n_compounds=3, n_replicates=2, cell_lines=("A375",), times_h=(24,), seed=3, **kw
    )
    return sim, sim.write(tmp_path)


def test_inst_info_table_and_nm_units(tmp_path):
    sim, files = _sim_files(tmp_path, plates=L1000Plates(dose_units=("um", "nm")))
    res = read_l1000(files["gctx"], tables=L1000Tables(inst_info=files["inst_info"]), dataset="sim")
    obs = res.samples.obs
    info = sim.inst_info().set_index("inst_id")
    nm = info.index[info["pert_dose_unit"] == "nm"]
    assert len(nm) > 0
    kept_nm = nm.intersection(obs.index)
    np.testing.assert_allclose(
        obs.loc[kept_nm, "pert_dose_uM"], info.loc[kept_nm, "pert_dose"].astype(float) / 1000
    )
    assert len(res.ledger.ids(stage="ingest")) == sim.data.shape[1]
    assert (obs["dataset"] == "sim").all()


def test_missing_metadata_rows_go_to_ledger(tmp_path):
    sim, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info.iloc[2:].to_csv(tmp_path / "partial.tsv", sep="\t", index=False)
    res = read_l1000(files["gctx"], tables=L1000Tables(inst_info=tmp_path / "partial.tsv"))
    led = res.ledger.to_frame().query("stage == 'ingest'").set_index("id")
    assert (led.loc[info["inst_id"].iloc[:2], "reason"] == "missing_metadata").all()
    assert len(led) == sim.data.shape[1]


def test_metadata_missing_pert_dose_is_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str).drop(columns=["pert_dose"])
    info.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match=r"'pert_dose'.*bad\.tsv"):
        read_l1000(files["gctx"], tables=L1000Tables(inst_info=tmp_path / "bad.tsv"))


def test_unknown_dose_unit_is_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info.loc[info["pert_type"] == "trt_cp", "pert_dose_unit"] = "mg/kg"
    info.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(UnitError, match=r"unknown dose unit.*mg/kg"):
        read_l1000(files["gctx"], tables=L1000Tables(inst_info=tmp_path / "bad.tsv"))


def test_duplicate_sample_ids_are_an_error(tmp_path):
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    info = pd.concat([info, info.iloc[[0]]])
    info.to_csv(tmp_path / "dup.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match="unique.*" + re.escape(info["inst_id"].iloc[0])):
        read_l1000(files["gctx"], tables=L1000Tables(inst_info=tmp_path / "dup.tsv"))


def test_truncated_gctx_is_a_format_error(tmp_path):
    _, files = _sim_files(tmp_path)
    data = files["gctx"].read_bytes()
    bad = tmp_path / "truncated.gctx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated"):
        read_l1000(bad)


def test_gct_header_body_mismatch_is_a_format_error(tmp_path):
    src = shared_path(*PLATE)
    lines = src.read_text().splitlines(keepends=True)
    bad = tmp_path / "short.gct"
    bad.write_text("".join(lines[:-1]))  # one data row fewer than the header says
    with pytest.raises(FormatError, match=r"short\.gct"):
        read_l1000(bad)


def test_registry_lists_l1000():
    assert "l1000" in list_sources()["name"].tolist()
    res = get_source("l1000").ingest(level3=shared_path(*PLATE))
    assert res.samples.n_obs == 354
    with pytest.raises(KeyError, match="unknown source"):
        get_source("nope")


runner = CliRunner()


def test_cli_ingest_prints_ledger_and_writes(tmp_path):
    out = tmp_path / "samples.h5ad"
    r = runner.invoke(
        app,
        [
            "ingest",
            "l1000",
            "--level3",
            str(shared_path(*PLATE)),
            "--out",
            str(out),
            "--ledger",
            str(tmp_path / "ledger.tsv"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "positive_control" in r.output and "23" in r.output
    assert out.exists()
    led = pd.read_csv(tmp_path / "ledger.tsv", sep="\t")
    assert (led["stage"] == "ingest").sum() == 377
    assert (led["stage"] == "ingest_genes").sum() == 978


def _bad_inputs(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """CLI arguments for one kind of bad input, and a snippet the error must contain."""
    _, files = _sim_files(tmp_path)
    info = pd.read_csv(files["inst_info"], sep="\t", dtype=str)
    bad_info = tmp_path / "bad.tsv"
    if case == "truncated_gctx":
        data = files["gctx"].read_bytes()
        bad = tmp_path / "truncated.gctx"
        bad.write_bytes(data[: len(data) // 2])
        return ["--level3", str(bad)], "truncated"
    if case == "gct_counts":
        lines = shared_path(*PLATE).read_text().splitlines(keepends=True)
        bad = tmp_path / "short.gct"
        bad.write_text("".join(lines[:-1]))
        return ["--level3", str(bad)], "short.gct"
    if case == "missing_pert_dose":
        info = info.drop(columns=["pert_dose"])
        snippet = "pert_dose"
    elif case == "unknown_unit":
        info.loc[info["pert_type"] == "trt_cp", "pert_dose_unit"] = "mg/kg"
        snippet = "mg/kg"
    else:  # duplicate ids
        info = pd.concat([info, info.iloc[[0]]])
        snippet = "unique"
    info.to_csv(bad_info, sep="\t", index=False)
    return ["--level3", str(files["gctx"]), "--inst-info", str(bad_info)], snippet


@pytest.mark.parametrize(
    "case",
    ["truncated_gctx", "gct_counts", "missing_pert_dose", "unknown_unit", "duplicate_ids"],
)
def test_cli_bad_input_errors_and_leaves_no_output(tmp_path, case):
    args, snippet = _bad_inputs(tmp_path, case)
    out = tmp_path / "out" / "samples.h5ad"
    r = runner.invoke(app, ["ingest", "l1000", *args, "--out", str(out)])
    assert r.exit_code == 2
    assert "error" in r.output
    assert snippet in r.output.replace("\n", "")
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file left


def test_gctx_roundtrip_through_adapter(tmp_path):
    """The adapter reads the same plate identically from GCT and from GCTX."""
    src = shared_path(*PLATE)
    gct = read_l1000(src)
    from perturbridge.io import read_gct

    g = read_gct(src)
    write_gctx(tmp_path / "plate.gctx", g.data, row_meta=g.row_meta, col_meta=g.col_meta)
    gctx = read_l1000(tmp_path / "plate.gctx")
    np.testing.assert_allclose(np.asarray(gctx.samples.X), np.asarray(gct.samples.X))
    pd.testing.assert_frame_equal(gctx.ledger.to_frame(), gct.ledger.to_frame())
    shutil.rmtree(tmp_path)


# --------------------------------------------------------------------------------------
# The GEO series layout (GSE92742 phase I, GSE70138 phase II): a level 3 GCTX with ids
# only, plus inst_info, gene_info, cell_info and pert_info tables. Fixtures are written
# in exactly that layout, with real probe/gene ids and real perturbagens sampled from
# the dhimmel/lincs tables.
# --------------------------------------------------------------------------------------

GENEINFO = ("l1000_dhimmel_lincs", "geneinfo.tsv.gz")
PERTINFO = ("l1000_dhimmel_lincs", "pertinfo.tsv.gz")
LANDMARKS = ("l1000_dhimmel_lincs", "Landmark_Genes_n978.tsv")
GEO = {
    1: {
        "prefix": "GSE92742_Broad_LINCS_",
        "suffix": "",
        "plate": "rna_plate",
        "well": "rna_well",
        "unit": "µM",
        "time": 6,
        "plates": "CPC004_{cell}_6H_X{rep}_B3_DUO52HI53LO",
    },
    2: {
        "prefix": "GSE70138_Broad_LINCS_",
        "suffix": "_2017-03-06",
        "plate": "det_plate",
        "well": "det_well",
        "unit": "um",
        "time": 24,
        "plates": "LJP009_{cell}_24H_X{rep}_B20",
    },
}
CELLS = {
    "A375": ("skin", "malignant melanoma"),
    "MCF7": ("breast", "luminal"),
}


@pytest.fixture(scope="module")
def real_genes() -> pd.DataFrame:
    """30 real L1000 genes: 12 landmarks, 10 best inferred, 8 inferred, interleaved."""
    gi = pd.read_csv(shared_path(*GENEINFO), sep="\t", dtype=str, keep_default_na=False)
    lm = set(pd.read_csv(shared_path(*LANDMARKS), sep="\t", dtype=str)["Entrez Gene ID"])
    ok = gi[gi["pr_gene_id"].str.fullmatch(r"\d+") & (gi["pr_gene_symbol"] != "")]
    ok = ok.drop_duplicates("pr_gene_id")
    in_lm = ok["pr_gene_id"].isin(lm)
    landmark = ok[in_lm & (ok["is_lm"] == "True")].sample(12, random_state=7)
    bing = ok[~in_lm & (ok["is_bing"] == "True")].sample(10, random_state=7)
    inferred = ok[~in_lm & (ok["is_bing"] == "False")].sample(8, random_state=7)
    genes = pd.concat([inferred[:4], landmark[:6], bing, landmark[6:], inferred[4:]])
    genes["pr_is_lm"] = genes["pr_gene_id"].isin(lm).astype(int)
    genes["pr_is_bing"] = ((genes["pr_is_lm"] == 1) | (genes["is_bing"] == "True")).astype(int)
    return genes.reset_index(drop=True)


@pytest.fixture(scope="module")
def real_perts() -> pd.DataFrame:
    """Five real compounds with InChIKey and SMILES, one without, one shRNA, DMSO."""
    pi = pd.read_csv(shared_path(*PERTINFO), sep="\t", dtype=str, keep_default_na=False)
    cp = pi[(pi["pert_type"] == "trt_cp") & pi["pert_id"].str.startswith("BRD-K")]
    with_key = cp[cp["inchi_key"].str.startswith("InChIKey=")].sample(5, random_state=3)
    no_key = cp[cp["inchi_key"] == ""].sample(1, random_state=3)
    sh = pi[pi["pert_type"] == "trt_sh"].sample(1, random_state=3)
    dmso = pi[pi["pert_id"] == "DMSO"]
    return pd.concat([with_key, no_key, sh, dmso]).reset_index(drop=True)


def _geo_fixture(root: Path, phase: int, genes: pd.DataFrame, perts: pd.DataFrame, **kw):
    """Write one GEO series in its layout; returns the expected facts of the ingest."""
    g = GEO[phase]
    rng = np.random.default_rng(phase)
    compounds = perts[perts["pert_type"] == "trt_cp"]
    poscon = compounds.iloc[0]
    rows = []
    for cell in CELLS:
        for rep in (1, 2):
            plate = g["plates"].format(cell=cell, rep=rep)
            wells = iter(f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13))
            for _ in range(3):
                rows.append((plate, next(wells), "DMSO", "DMSO", "ctl_vehicle", "-666", "-666"))
            for i, cpd in enumerate(compounds.itertuples()):
                dose = ("10.0", "3.33", "1.11", "0.37", "0.12", "0.04")[i]
                rows.append(
                    (plate, next(wells), cpd.pert_id, cpd.pert_iname, "trt_cp", dose, g["unit"])
                )
            rows.append(
                (
                    plate,
                    next(wells),
                    poscon.pert_id,
                    poscon.pert_iname,
                    "trt_poscon",
                    "10.0",
                    g["unit"],
                )
            )
            sh = perts[perts["pert_type"] == "trt_sh"].iloc[0]
            rows.append((plate, next(wells), sh.pert_id, sh.pert_iname, "trt_sh", "1.0", "µL"))
            rows.append((plate, next(wells), "UnTrt", "UnTrt", "ctl_untrt", "-666", "-666"))
            rows.append(
                (
                    plate,
                    next(wells),
                    compounds.iloc[1].pert_id,
                    compounds.iloc[1].pert_iname,
                    "trt_cp",
                    "-666",
                    "-666",
                )
            )
    info = pd.DataFrame(
        rows,
        columns=[
            g["plate"],
            g["well"],
            "pert_id",
            "pert_iname",
            "pert_type",
            "pert_dose",
            "pert_dose_unit",
        ],
    )
    info.insert(0, "inst_id", info[g["plate"]] + ":" + info[g["well"]])
    info["pert_time"] = str(g["time"])
    info["pert_time_unit"] = "h"
    info["cell_id"] = info[g["plate"]].str.split("_").str[1]
    if phase == 2:  # phase II order and its extra pert_mfc_id column
        info["pert_mfc_id"] = np.where(
            info["pert_id"].str.startswith("BRD-"), info["pert_id"] + "-001-01-1", info["pert_id"]
        )
        info = info[
            ["inst_id", "cell_id", "det_plate", "det_well", "pert_mfc_id", "pert_dose",
             "pert_dose_unit", "pert_id", "pert_iname", "pert_type", "pert_time", "pert_time_unit"]
        ]  # fmt: skip
        # one instance names its compound by the long BRD id (matched to the short one)
        first = info.index[info["pert_type"] == "trt_cp"][0]
        info.loc[first, "pert_id"] = info.loc[first, "pert_mfc_id"]
    ids = info["inst_id"].tolist()
    gctx_ids = [*ids[1:], "EXTRA_PLATE_X1:P24"]  # first instance has no data; one has no info
    data = rng.normal(8.0, 1.5, (len(genes), len(gctx_ids))).clip(2, 15).astype(np.float32)
    data = kw.get("transform", lambda x: x)(data)
    n, G = len(gctx_ids), len(genes)
    level3 = root / f"{g['prefix']}Level3_INF_mlr12k_n{n}x{G}{g['suffix']}.gctx"
    write_gctx(
        level3,
        data,
        row_meta=pd.DataFrame(index=pd.Index(genes["pr_gene_id"], name="id")),
        col_meta=pd.DataFrame(index=pd.Index(gctx_ids, name="id")),
    )
    sfx = g["suffix"]
    info.to_csv(root / f"{g['prefix']}inst_info{sfx}.txt", sep="\t", index=False)
    gene_info = genes[["pr_gene_id", "pr_gene_symbol", "pr_gene_title", "pr_is_lm", "pr_is_bing"]]
    gene_info.to_csv(root / f"{g['prefix']}gene_info{sfx}.txt", sep="\t", index=False)
    if phase == 1:  # a decoy that must not be taken for the gene_info table
        gene_info.iloc[:3].to_csv(
            root / f"{g['prefix']}gene_info_delta_landmark.txt", sep="\t", index=False
        )
    cell = pd.DataFrame(
        [
            (c, "cell line", c, "-666", "-666", "tumor", site, sub, "adherent")
            for c, (site, sub) in CELLS.items()
        ],
        columns=["cell_id", "cell_type", "base_cell_id", "precursor_cell_id", "modification",
                 "sample_type", "primary_site", "subtype", "original_growth_pattern"],
    )  # fmt: skip
    cell.to_csv(
        root / f"{g['prefix']}cell_info{'_2017-04-28' if phase == 2 else ''}.txt",
        sep="\t",
        index=False,
    )
    pert = perts[["pert_id", "pert_iname", "pert_type", "canonical_smiles", "pubchem_cid"]].copy()
    key = perts["inchi_key"].str.removeprefix("InChIKey=")
    pert["is_touchstone"] = "0"
    pert["inchi_key_prefix"] = key.str[:14].replace("", "-666")
    # phase I writes bare keys, phase II keeps the 'InChIKey=' prefix of the LINCS API
    pert["inchi_key"] = (key if phase == 1 else perts["inchi_key"]).replace("", "-666")
    pert = pert.replace({"canonical_smiles": {"": "-666"}, "pubchem_cid": {"": "-666"}})
    pert = pert[["pert_id", "pert_iname", "pert_type", "is_touchstone", "inchi_key_prefix",
                 "inchi_key", "canonical_smiles", "pubchem_cid"]]  # fmt: skip
    pert.to_csv(root / f"{g['prefix']}pert_info{sfx}.txt", sep="\t", index=False)
    return {"level3": level3, "info": info, "data": data, "gctx_ids": gctx_ids, "genes": genes}


@pytest.fixture
def geo1(tmp_path, real_genes, real_perts):
    return _geo_fixture(tmp_path, 1, real_genes, real_perts)


def test_geo_phase1_folder_every_instance_and_gene_in_ledger(geo1, tmp_path, real_perts):
    res = read_l1000(folder=tmp_path, phase=1)
    s, led = res.samples, res.ledger.to_frame()
    validate_samples(s)
    info = geo1["info"]
    inst = led[led["stage"] == "ingest"]
    assert set(inst["id"]) == set(info["inst_id"]) | set(geo1["gctx_ids"])
    assert inst["id"].is_unique
    reasons = inst.groupby("reason").size().to_dict()
    # per plate (4 plates): 3 DMSO + 6 compounds kept, 1 poscon, 1 shRNA, 1 untreated,
    # 1 compound without a dose; the first instance has no data, one column no metadata
    assert reasons == {
        "": 35,
        "positive_control": 4,
        "unsupported_pert_type": 4,
        "untreated_control": 4,
        "missing_dose": 4,
        "missing_expression": 1,
        "missing_metadata": 1,
    }
    assert s.n_obs == 35
    assert (s.obs["dataset"] == "lincs_l1000_phase1").all()
    assert set(s.obs["replicate"]) == {"X1", "X2"}
    assert (s.obs["pert_time_h"] == 6.0).all()
    assert set(np.round(s.obs.loc[~s.obs["is_control"], "pert_dose_uM"], 2)) == {
        10.0, 3.33, 1.11, 0.37, 0.12, 0.04,
    }  # fmt: skip
    # genes: the 12 landmarks, every row of the GCTX in the ledger
    genes = geo1["genes"]
    lm = genes[genes["pr_is_lm"] == 1]
    assert s.var_names.tolist() == lm["pr_gene_id"].tolist()
    assert s.var["symbol"].tolist() == lm["pr_gene_symbol"].tolist()
    gled = led[led["stage"] == "ingest_genes"]
    assert len(gled) == 30
    assert gled.groupby("reason").size().to_dict() == {"": 12, "not_landmark": 18}
    # values: exactly the GCTX block of the kept instances and landmark rows
    col = pd.Index(geo1["gctx_ids"]).get_indexer(s.obs_names)
    rows = np.flatnonzero(genes["pr_is_lm"] == 1)
    np.testing.assert_array_equal(np.asarray(s.X), geo1["data"][np.ix_(rows, col)].T)
    # compound identity from pert_info, cell annotation from cell_info
    expected = real_perts.set_index("pert_id")["inchi_key"].str.removeprefix("InChIKey=")
    trt = s.obs[~s.obs["is_control"]]
    got = trt["compound_inchikey"].astype(object).fillna("")
    assert (got.to_numpy() == expected.loc[trt["compound_id_source"]].to_numpy()).all()
    assert (got == "").sum() == 4  # the compound without an InChIKey, on 4 plates
    assert trt["compound_smiles"].isna().sum() == (got == "").sum()
    assert trt["pubchem_cid"].notna().sum() >= 20
    assert s.obs["compound_inchikey"][s.obs["is_control"]].isna().all()
    assert s.obs.loc[s.obs["cell_name"] == "MCF7", "cell_primary_site"].eq("breast").all()
    assert s.uns["perturbridge"]["provenance"]["params"]["genes"] == "landmark"


@pytest.mark.parametrize(("genes", "n"), [("bing", 22), ("all", 30)])
def test_geo_gene_sets(geo1, tmp_path, genes, n):
    res = read_l1000(folder=tmp_path, phase=1, genes=genes)
    assert res.samples.n_vars == n
    gled = res.ledger.to_frame().query("stage == 'ingest_genes'")
    assert len(gled) == 30
    assert (gled["status"] == "kept").sum() == n
    if genes == "bing":
        assert set(gled.loc[gled["status"] == "dropped", "reason"]) == {"not_bing"}
        assert res.samples.var["is_bing"].all()
        assert res.samples.var["is_landmark"].sum() == 12


def test_geo_phase2_spellings_prefixed_inchikeys_and_long_brd_ids(tmp_path, real_genes, real_perts):
    fx = _geo_fixture(tmp_path, 2, real_genes, real_perts)
    res = read_l1000(folder=tmp_path)  # phase found from the file names
    s = res.samples
    assert (s.obs["dataset"] == "lincs_l1000_phase2").all()
    assert s.obs["plate"].str.startswith("LJP009_").all()
    assert (s.obs["pert_time_h"] == 24.0).all()
    trt = s.obs[~s.obs["is_control"]]
    assert (
        trt["compound_inchikey"].notna().sum()
        == len(trt) - (trt["perturbagen"] == real_perts.loc[5, "pert_iname"]).sum()
    )
    assert trt["compound_inchikey"].dropna().str.fullmatch(r"[A-Z]{14}-[A-Z]{10}-[A-Z]").all()
    long_ids = trt["compound_id_source"].str.count("-") > 1
    assert long_ids.sum() == 1 and trt.loc[long_ids, "compound_inchikey"].notna().all()
    assert len(res.ledger.ids(stage="ingest")) == len(fx["info"]) + 1


def test_geo_probe_keyed_level3_with_real_probe_ids(tmp_path, real_genes, real_perts):
    """The 22,268-row releases key the GCTX by probe; gene_info then carries ``pr_id``."""
    _probe_keyed(tmp_path, real_genes, real_perts)
    probes = real_genes["pr_id"].tolist()
    res = read_l1000(folder=tmp_path, phase=2, genes="all")
    var = res.samples.var
    assert var.index.tolist() == real_genes["pr_gene_id"].tolist()  # keyed by Entrez id
    assert var["probe_id"].tolist() == probes
    assert set(res.ledger.ids(stage="ingest_genes")) == set(probes)


def test_geo_explicit_paths_infer_the_phase(geo1, tmp_path):
    p = "GSE92742_Broad_LINCS_"
    res = read_l1000(
        geo1["level3"],
        tables=L1000Tables(
            inst_info=tmp_path / f"{p}inst_info.txt", gene_info=tmp_path / f"{p}gene_info.txt"
        ),
    )
    assert (res.samples.obs["dataset"] == "lincs_l1000_phase1").all()
    assert "compound_smiles" not in res.samples.obs  # no pert_info given
    assert res.samples.obs["compound_inchikey"].isna().all()


def test_geo_gctx_is_read_lazily_in_chunks(geo1, tmp_path, monkeypatch):
    calls = []
    real = GCTXFile.read

    def spy(self, **kw):
        calls.append(kw)
        return real(self, **kw)

    monkeypatch.setattr(GCTXFile, "read", spy)
    res = read_l1000(folder=tmp_path, phase=1, chunk_size=8)
    assert len(calls) == int(np.ceil(res.samples.n_obs / 8))
    read_cols = np.concatenate([c["col_idx"] for c in calls])
    assert len(read_cols) == res.samples.n_obs < len(geo1["gctx_ids"])
    assert all(len(c["row_idx"]) == 12 for c in calls)


def test_geo_folder_errors(tmp_path, real_genes, real_perts):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        read_l1000(folder=tmp_path / "nope", phase=1)
    with pytest.raises(ValueError, match=r"neither.*pass phase"):
        read_l1000(folder=tmp_path)
    with pytest.raises(ValueError, match="phase must be 1"):
        read_l1000(folder=tmp_path, phase=3)  # type: ignore[arg-type]
    _geo_fixture(tmp_path, 1, real_genes, real_perts)
    _geo_fixture(tmp_path, 2, real_genes, real_perts)
    with pytest.raises(ValueError, match=r"both.*pass phase"):
        read_l1000(folder=tmp_path)
    (tmp_path / "GSE70138_Broad_LINCS_gene_info_2017-03-06.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"gene_info not found.*GSE70138_Broad_LINCS_gene"):
        read_l1000(folder=tmp_path, phase=2)
    lvl3 = next(tmp_path.glob("GSE92742_*Level3*.gctx"))
    lvl3.rename(lvl3.with_name(lvl3.name + ".gz"))
    with pytest.raises(FileNotFoundError, match="decompress"):
        read_l1000(folder=tmp_path, phase=1)
    with pytest.raises(ValueError, match="pass level3="):
        read_l1000()
    with pytest.raises(ValueError, match="genes must be"):
        read_l1000(folder=tmp_path, phase=1, genes="landmarks")  # type: ignore[arg-type]


def test_geo_gene_info_without_entrez_column_names_file_and_column(geo1, tmp_path):
    path = tmp_path / "GSE92742_Broad_LINCS_gene_info.txt"
    pd.read_csv(path, sep="\t").drop(columns=["pr_gene_id"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(SchemaError, match=r"pr_gene_id.*gene_info\.txt"):
        read_l1000(folder=tmp_path, phase=1)


def test_geo_pert_info_with_repeated_ids_is_an_error(geo1, tmp_path):
    path = tmp_path / "GSE92742_Broad_LINCS_pert_info.txt"
    pert = pd.read_csv(path, sep="\t", dtype=str)
    pd.concat([pert, pert.iloc[[0]]]).to_csv(path, sep="\t", index=False)
    with pytest.raises(SchemaError, match="pert ids must be unique"):
        read_l1000(folder=tmp_path, phase=1)


def test_landmark_selection_needs_flags_beyond_978_rows(tmp_path):
    ids = [str(1000 + i) for i in range(1000)]
    cols = ["P_A375_24H_X1:A01", "P_A375_24H_X1:A02"]
    meta = pd.DataFrame(
        {
            "rna_plate": "P_A375_24H_X1",
            "rna_well": ["A01", "A02"],
            "pert_id": "DMSO",
            "pert_iname": "DMSO",
            "pert_type": "ctl_vehicle",
            "pert_dose": "-666",
            "pert_dose_unit": "-666",
            "pert_time": "24",
            "pert_time_unit": "h",
            "cell_id": "A375",
        },
        index=pd.Index(cols, name="id"),
    )
    x = np.full((1000, 2), 8.0, dtype=np.float32)
    write_gctx(tmp_path / "l3.gctx", x, row_meta=pd.DataFrame(index=pd.Index(ids)), col_meta=meta)
    with pytest.raises(ValueError, match=r"needs the is_lm flags.*gene_info= or genes='all'"):
        read_l1000(tmp_path / "l3.gctx")
    assert read_l1000(tmp_path / "l3.gctx", genes="all").samples.n_vars == 1000


# --------------------------------------------------------------------------------------
# Files that are not level 3 are refused
# --------------------------------------------------------------------------------------


def test_real_level4_gctx_is_refused():
    path = shared_path("l1000_cmapPy", "test_l1000_highprecision.gctx")
    with pytest.raises(FormatError, match=r"not L1000 level 3.*z-score step \(level 4\)"):
        read_l1000(path)


@pytest.mark.parametrize(
    "parts",
    [
        ("l1000_cmapR", "cmapR_ds_level5_modz_n272x978.gctx"),
        ("l1000_cmapR", "cmapR_ds_level5_modz_n272x978.gct"),
        ("l1000_cmapPy", "col_meta_only_example_n355x355.gct"),
        ("l1000_cmapPy", "mini_gctx_with_metadata_n2x3.gctx"),  # signature ids only
        ("l1000_signatureSearch", "test_sample_n2x12328.gctx"),  # ids only, 12,328 genes
        ("l1000_cmapR", "modzs_n25x50.gctx"),
        ("l1000_cmapR", "cmapR_kd_gct_level5_shRNA_n374x976.gctx"),
    ],
)
def test_real_level5_files_are_refused(parts):
    with pytest.raises(FormatError, match=r"not L1000 level 3.*level 5"):
        read_l1000(shared_path(*parts), genes="all")


def test_real_level2_values_are_refused(tmp_path):
    """The GSE70138 level 2 slice (ids only) with an inst_info: linear intensities."""
    path = shared_path("l1000_cmapPy", "test_parse_gctx_rid_entrez_id.gctx")
    with GCTXFile(path) as f:
        ids = f.col_ids
    info = pd.DataFrame(
        {
            "inst_id": ids,
            "rna_plate": [i.split(":")[0] for i in ids],
            "rna_well": [i.split(":")[1] for i in ids],
            "pert_iname": "DMSO",
            "pert_type": "ctl_vehicle",
            "pert_dose": "-666",
            "pert_dose_unit": "-666",
            "pert_time": "24",
            "pert_time_unit": "h",
            "cell_id": "A375",
        }
    )
    info.to_csv(tmp_path / "inst_info.txt", sep="\t", index=False)
    with pytest.raises(FormatError, match="linear-scale intensities"):
        read_l1000(path, tables=L1000Tables(inst_info=tmp_path / "inst_info.txt"))


def test_geo_level4_by_name_and_zscores_by_value(tmp_path, real_genes, real_perts):
    fx = _geo_fixture(tmp_path, 1, real_genes, real_perts, transform=lambda x: (x - 8.0) / 1.5)
    with pytest.raises(FormatError, match=r"negative.*z-scores"):
        read_l1000(folder=tmp_path, phase=1)
    lvl4 = fx["level3"].with_name("GSE92742_Broad_LINCS_Level4_ZSPCINF_mlr12k_n45x30.gctx")
    fx["level3"].rename(lvl4)
    with pytest.raises(FormatError, match="file name says level 4"):
        read_l1000(
            lvl4, tables=L1000Tables(inst_info=tmp_path / "GSE92742_Broad_LINCS_inst_info.txt")
        )


def test_real_plate_with_real_pert_info(tmp_path):
    res = read_l1000(shared_path(*PLATE), tables=L1000Tables(pert_info=shared_path(*PERTINFO)))
    obs = res.samples.obs
    a07 = obs.loc["LJP005_A375_24H_X1_B19:A07"]
    assert a07["compound_inchikey"] == "LLVZBTWPGQVVLW-SNAWJCMRSA-N"  # 'InChIKey=' stripped
    assert a07["pubchem_cid"] == 9874913
    trt = obs[~obs["is_control"]]
    assert trt["compound_inchikey"].notna().mean() > 0.8
    # the rest (8 HMS LINCS ids such as BRD-U64521890) are not in the 2015 pertinfo table
    known = pd.read_csv(shared_path(*PERTINFO), sep="\t", usecols=["pert_id"])["pert_id"]
    assert not trt.loc[trt["compound_inchikey"].isna(), "compound_id_source"].isin(known).any()
    assert res.samples.n_vars == 978


@pytest.fixture(scope="module")
def hgnc_genes():
    from perturbridge.ids.genes import GeneResolver
    from perturbridge.ids.tables import get_parser

    tables = get_parser("hgnc").parse(shared_path("reference_hgnc", "hgnc_complete_set.txt.gz"))
    return GeneResolver(tables["genes"], tables["gene_synonyms"])


def _probe_keyed(tmp_path: Path, real_genes: pd.DataFrame, real_perts: pd.DataFrame) -> dict:
    """A phase 2 series whose GCTX is keyed by probe ids (gene_info carries ``pr_id``)."""
    fx = _geo_fixture(tmp_path, 2, real_genes, real_perts)
    with GCTXFile(fx["level3"]) as f:
        cols = f.col_ids
    write_gctx(
        fx["level3"],
        fx["data"],
        row_meta=pd.DataFrame(index=pd.Index(real_genes["pr_id"].tolist(), name="id")),
        col_meta=pd.DataFrame(index=cols),
    )
    info = tmp_path / "GSE70138_Broad_LINCS_gene_info_2017-03-06.txt"
    gi = real_genes[["pr_id", "pr_gene_id", "pr_gene_symbol", "pr_is_lm", "pr_is_bing"]]
    gi.to_csv(info, sep="\t", index=False)
    return fx


def test_annotated_genes_keep_the_l1000_columns_into_effects(
    tmp_path, real_genes, real_perts, hgnc_genes
):
    import anndata as ad

    from perturbridge.de import run
    from perturbridge.ids.annotate import IdentityResolvers, annotate_samples
    from perturbridge.schema import validate_effects

    _probe_keyed(tmp_path, real_genes, real_perts)
    res = read_l1000(folder=tmp_path, phase=2, genes="all")
    samples, _notes = annotate_samples(
        res.samples, IdentityResolvers(genes=hgnc_genes), gene_rule="first"
    )
    validate_samples(samples)
    var = samples.var
    # the fixture's gene table, independently: Entrez id → probe id, landmark flag
    genes = real_genes.set_index("pr_gene_id")
    resolved = var["gene_status"] == "resolved"
    assert resolved.sum() >= 25 and var.index[resolved].str.startswith("ENSG").all()
    assert var["entrez_id"].notna().all()
    assert var["probe_id"].tolist() == genes.loc[var["entrez_id"], "pr_id"].tolist()
    landmark = (genes.loc[var["entrez_id"], "pr_is_lm"] == 1).tolist()
    assert var["is_landmark"].tolist() == landmark and 0 < sum(landmark) < len(var)
    # written and read back, then carried into the effects
    samples.write_h5ad(tmp_path / "samples.h5ad")
    back = ad.read_h5ad(tmp_path / "samples.h5ad")
    assert back.var["probe_id"].astype(str).tolist() == var["probe_id"].tolist()
    effects = run(back).effects
    validate_effects(effects)
    for col in ("entrez_id", "probe_id", "is_landmark"):
        got = effects.var[col].astype(object).tolist()
        assert got == back.var.loc[effects.var_names, col].astype(object).tolist()
