"""DRUG-seq MoA Box adapter: upstream-layout fixture, the real meta.csv well layout, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, shared_path
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.simulate.upstream import (
    UpstreamFixture,
    simulate_layout_counts,
    write_moabox,
    write_moabox_umi_counts,
)
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.drugseq_moabox import (
    POSITIVE_CONTROLS,
    DrugseqMoABoxSource,
    read_drugseq_moabox,
)

MOABOX = SHARED_DATA / "drugseq_novartis_moabox"


def _real_compounds() -> pd.DataFrame | None:
    """Sixteen real MoA Box compounds (some without a structure) when the data is present."""
    path = MOABOX / "MoABox_compounds_metadata.txt"
    if not path.exists():
        return None
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table = table[~table["cmpd_sample_id"].isin(["CB-43-EP73", "EC-27-RY89", *POSITIVE_CONTROLS])]
    with_ik = table[table["inchi_key"] != ""].head(13)
    without = table[table["inchi_key"] == ""].head(3)
    return pd.concat([with_ik, without]).sample(frac=1.0, random_state=0)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_moabox(tmp_path_factory.mktemp("moabox"), compounds=_real_compounds(), seed=21)


def _counts(fx: UpstreamFixture) -> list:
    return [v for k, v in fx.files.items() if k.startswith("counts_")]


def _read(fx: UpstreamFixture, **kw):
    args = {
        "compounds": fx.files["compounds"],
        "robust_controls": fx.files["robust_controls"],
        "gene_mapping": fx.files["gene_mapping"],
    }
    args.update(kw)
    return read_drugseq_moabox(fx.files["metadata"], _counts(fx), **args)


@pytest.fixture(scope="module")
def ingested(fixture):
    return _read(fixture)


def test_ledger_accounts_for_every_well(fixture, ingested):
    ingested.ledger.check_accounts_for(fixture.layout.index, stage="ingest")
    frame = ingested.ledger.to_frame()
    wells = frame[frame["stage"] == "ingest"]
    assert len(wells) == len(fixture.layout) == 2 * 3 * 64
    roles = fixture.layout["role"].value_counts()
    got = wells.groupby(["status", "reason"]).size().to_dict()
    assert got == {
        ("kept", ""): roles["vehicle"] + roles["compound"],
        ("dropped", "control_not_robust"): roles["control_not_robust"],
        ("dropped", "positive_control"): roles["positive_control"],
        ("dropped", "empty_well"): roles["empty"],
    }
    assert roles["vehicle"] == 2 * 6  # two robust RC wells per plate
    pos = wells[wells["reason"] == "positive_control"]
    assert set(pos["detail"]) == set(POSITIVE_CONTROLS)
    assert (frame.loc[frame["stage"] == "ingest_genes", "status"] == "kept").all()


def test_identities_wells_and_genes(fixture, ingested):
    s = ingested.samples
    validate_samples(s)
    obs = s.obs
    meta = pd.read_csv(fixture.files["metadata"], sep="\t", dtype=str).set_index("plate_well")
    cmp_table = pd.read_csv(
        fixture.files["compounds"], sep="\t", dtype=str, keep_default_na=False
    ).set_index("cmpd_sample_id")
    sid = obs.index[~obs["is_control"]][0]
    assert obs.loc[sid, "well"] == meta.loc[sid, "well_id"]
    assert obs.loc[sid, "plate"] == meta.loc[sid, "plate_barcode"]
    assert obs.loc[sid, "replicate"] == meta.loc[sid, "plate_replicate"]
    assert obs.loc[sid, "batch"] == meta.loc[sid, "batch_id"]
    assert obs.loc[sid, "pert_dose_uM"] == pytest.approx(float(meta.loc[sid, "concentration"]))
    treated = obs[~obs["is_control"]]
    expected_ik = cmp_table["inchi_key"].reindex(treated["compound_id_source"].astype(str))
    got_ik = treated["compound_inchikey"].astype(object).fillna("")
    assert (got_ik.to_numpy() == expected_ik.to_numpy()).all()
    assert set(np.round(treated["pert_dose_uM"], 6)) == {0.01, 0.1, 1.0, 10.0}
    vehicle = obs[obs["is_control"]]
    assert set(vehicle["perturbagen"]) == {"DMSO"}
    assert set(vehicle["well"].str[1:]) == {"23"}
    assert (vehicle["compound_inchikey"] == "IAZDPXIOMUYVGZ-UHFFFAOYSA-N").all()
    assert set(obs["cell_context"]) == {"U-2 OS"}
    assert (obs["pert_time_h"] == 24.0).all()
    var = s.var
    gid = var.index[0]
    assert gid.split(",")[0] == var.loc[gid, "symbol"]
    assert gid.endswith("grch38_" + var.loc[gid, "chromosome"])
    assert var["ensembl_gene_id"].astype(str).str.startswith("ENSG").all()


def test_limma_voom_recovers_planted_effects(fixture, ingested):
    de = limma_voom(ingested.samples, mode="group")
    rec = fixture.recovery(de.effects)
    print(f"MoA Box recovery: r={rec['r']:.3f} (median per contrast {rec['r_median']:.3f}) "
          f"over {rec['n_contrasts']} contrasts")  # fmt: skip
    assert rec["n_contrasts"] == len(fixture.truth) == 16 * 4
    assert rec["r"] > 0.45


def test_without_robust_list_every_rc_well_is_a_control(fixture):
    res = _read(fixture, robust_controls=None)
    roles = fixture.layout["role"]
    n_rc = int(roles.isin(["vehicle", "control_not_robust"]).sum())
    assert int(res.samples.obs["is_control"].sum()) == n_rc


def test_robust_list_by_plate_and_well(fixture, tmp_path):
    robust = pd.read_csv(fixture.files["robust_controls"], sep="\t", dtype=str)
    robust[["plate_barcode", "well_id"]].to_csv(tmp_path / "robust.tsv", sep="\t", index=False)
    res = _read(fixture, robust_controls=tmp_path / "robust.tsv")
    assert int(res.samples.obs["is_control"].sum()) == len(robust)
    robust[["batch_id"]].to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match=r"'plate_well'.*bad\.tsv"):
        _read(fixture, robust_controls=tmp_path / "bad.tsv")


def test_counts_folder_and_missing_or_extra_wells(fixture, tmp_path):
    folder = fixture.files["metadata"].parent
    res = read_drugseq_moabox(fixture.files["metadata"], folder)
    assert res.samples.n_obs > 0
    # drop one metadata row: its counts column becomes missing_metadata;
    # drop one counts column: its metadata row becomes missing_counts
    meta = pd.read_csv(fixture.files["metadata"], sep="\t", dtype=str, keep_default_na=False)
    gone_meta = meta["plate_well"].iloc[0]
    meta.iloc[1:].to_csv(tmp_path / "meta.txt", sep="\t", index=False)
    first = _counts(fixture)[0]
    lines = first.read_text().splitlines()
    header = lines[0].split("\t")
    gone_counts = header[-1]
    cut = [("\t".join(line.split("\t")[:-1])) for line in lines]
    (tmp_path / "UMI.counts_cut.tsv").write_text("\n".join(cut) + "\n")
    res = read_drugseq_moabox(
        tmp_path / "meta.txt", [tmp_path / "UMI.counts_cut.tsv", *_counts(fixture)[1:]]
    )
    led = res.ledger.to_frame().set_index("id")
    assert led.loc[gone_meta, "reason"] == "missing_metadata"
    assert led.loc[gone_counts, "reason"] == "missing_counts"
    assert len(led[led["stage"] == "ingest"]) == len(fixture.layout)


def test_missing_files_are_errors(fixture, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"plate-well metadata.*nope\.txt"):
        read_drugseq_moabox(tmp_path / "nope.txt", _counts(fixture))
    with pytest.raises(FileNotFoundError, match=r"UMI count table.*gone\.tsv"):
        read_drugseq_moabox(fixture.files["metadata"], [tmp_path / "gone.tsv"])
    with pytest.raises(FileNotFoundError, match=r"compound table.*cmp\.txt"):
        _read(fixture, compounds=tmp_path / "cmp.txt")


@pytest.mark.parametrize("column", ["concentration", "well_type", "cmpd_sample_id", "well_index"])
def test_missing_column_names_file_and_column(fixture, tmp_path, column):
    meta = pd.read_csv(fixture.files["metadata"], sep="\t", dtype=str, keep_default_na=False)
    meta.drop(columns=[column]).to_csv(tmp_path / "bad_meta.txt", sep="\t", index=False)
    with pytest.raises(SchemaError, match=rf"'{column}'.*bad_meta\.txt"):
        read_drugseq_moabox(tmp_path / "bad_meta.txt", _counts(fixture))


def test_unparseable_dose_names_the_values(fixture, tmp_path):
    meta = pd.read_csv(fixture.files["metadata"], sep="\t", dtype=str, keep_default_na=False)
    meta.loc[3, "concentration"] = "0,1"
    meta.loc[7, "concentration"] = "1e-2 uM"
    meta.to_csv(tmp_path / "bad_meta.txt", sep="\t", index=False)
    with pytest.raises(FormatError, match=r"bad_meta\.txt.*'concentration'.*'0,1'.*'1e-2 uM'"):
        read_drugseq_moabox(tmp_path / "bad_meta.txt", _counts(fixture))


def test_genes_differing_between_plates_is_an_error(fixture, tmp_path):
    first = _counts(fixture)[1]
    lines = first.read_text().splitlines()
    lines[5] = "NOTAGENE,grch38_1\t" + lines[5].split("\t", 1)[1]
    (tmp_path / "UMI.counts_x.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"gene rows differ.*NOTAGENE"):
        read_drugseq_moabox(
            fixture.files["metadata"], [_counts(fixture)[0], tmp_path / "UMI.counts_x.tsv"]
        )


def test_corrupt_counts_leave_no_output(fixture, tmp_path):
    first = _counts(fixture)[0]
    lines = first.read_text().splitlines()
    header = lines[0].split("\t")  # R style: no name for the gene column
    kept = fixture.layout.index[fixture.layout["role"] == "compound"]
    j = next(i for i, c in enumerate(header) if c in kept)
    fields = lines[10].split("\t")
    fields[j + 1] = "12a"
    lines[10] = "\t".join(fields)
    (tmp_path / "UMI.counts_bad.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out" / "samples.h5ad"
    files = [tmp_path / "UMI.counts_bad.tsv", *_counts(fixture)[1:]]
    with pytest.raises(FormatError, match=r"UMI\.counts_bad\.tsv.*'12a'"):
        write_h5ad(read_drugseq_moabox(fixture.files["metadata"], files).samples, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_registry():
    row = list_sources().set_index("name").loc["drugseq_moabox"]
    assert row["assay"] == "DRUG-seq"
    assert DrugseqMoABoxSource.value_kind == "counts"
    assert "MoABox_compounds_metadata.txt (optional)" in DrugseqMoABoxSource.expected_files
    assert isinstance(get_source("drugseq_moabox"), DrugseqMoABoxSource)


# ------------------------------------------------------------------ the real meta.csv layout


@pytest.fixture(scope="module")
def real_layout(tmp_path_factory):
    """Simulated counts for exactly the 3,240 wells of the real DRUG-seq ``meta.csv``."""
    meta_path = shared_path("drugseq_novartis_moabox", "meta.csv")
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    sa = meta["readout.comment"].eq("SA")
    layout = pd.DataFrame(
        {
            "plate": meta["plate_barcode"],
            "context": meta["cell.line.name"],
            "compound": meta["treatment"].where(sa, None),
            "dose_uM": meta["treatment_dose"].astype(float),
            "time_h": 24.0,
        }
    )
    genes = [f"GENE{j},grch38_{1 + j % 22}" for j in range(150)]
    counts, truth = simulate_layout_counts(layout, genes, seed=3)
    ids = (meta["plate_barcode"] + "_" + meta["well_index"]).tolist()
    folder = tmp_path_factory.mktemp("meta_csv")
    write_moabox_umi_counts(counts, genes, ids, meta["plate_barcode"].tolist(), folder)
    return meta_path, folder, UpstreamFixture("drugseq_moabox", {}, truth, pd.DataFrame(index=ids))


def test_real_meta_csv_ledger(real_layout):
    meta_path, folder, fx = real_layout
    res = read_drugseq_moabox(
        meta_path,
        folder,
        compounds=shared_path("drugseq_novartis_moabox", "MoABox_compounds_metadata.txt"),
    )
    led = res.ledger
    led.check_accounts_for(fx.layout.index, stage="ingest")
    wells = led.to_frame().query("stage == 'ingest'")
    assert len(wells) == 3240
    got = wells.groupby(["status", "reason"]).size().to_dict()
    # BTdCPU (SE-15-AV21) is a listed MoA Box positive control
    assert got == {("kept", ""): 3024, ("dropped", "positive_control"): 216}
    assert set(wells.loc[wells["status"] == "dropped", "detail"]) == {"SE-15-AV21"}
    obs = res.samples.obs
    validate_samples(res.samples)
    assert obs["plate"].nunique() == 9
    assert int(obs["is_control"].sum()) == 216
    assert set(obs.loc[obs["is_control"], "perturbagen"]) == {"DMSO"}
    assert set(obs["replicate"]) == {"1", "2", "3"} and set(obs["batch"]) == {"1", "2", "3"}
    g04 = obs.loc["VH02001612_ACACCGAATT"]
    assert (g04["well"], g04["perturbagen"], g04["compound_id_source"]) == (
        "G04",
        "Dilazep",
        "NA-37-JQ34",
    )
    assert g04["pert_dose_uM"] == pytest.approx(0.01004)
    crizotinib = obs[obs["compound_id_source"] == "LD-22-SA99"]
    assert (crizotinib["compound_inchikey"] == "KTEIFNKAUNYNJU-LBPRGKRZSA-N").all()
    assert crizotinib["pert_dose_uM"].nunique() == 8


def test_real_meta_csv_keep_listed_controls_and_recover(real_layout):
    meta_path, folder, fx = real_layout
    res = read_drugseq_moabox(meta_path, folder, positive_controls=())
    wells = res.ledger.to_frame().query("stage == 'ingest'")
    assert (wells["status"] == "kept").all() and len(wells) == 3240
    de = limma_voom(res.samples, mode="group")
    rec = fx.recovery(de.effects)
    print(
        f"MoA Box real meta.csv layout recovery: r={rec['r']:.3f} "
        f"over {rec['n_contrasts']} contrasts"
    )
    assert rec["n_contrasts"] == 14 * 8
    assert rec["r"] > 0.8
