"""Generic mapping-file adapter: round trips from files written here, DE recovery, bad input."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from perturbridge.cli import app
from perturbridge.de.limma import limma_trend
from perturbridge.de.voom import limma_voom
from perturbridge.errors import FormatError, SchemaError, UnitError
from perturbridge.schema import validate_samples
from perturbridge.simulate.counts import CountsDesign, simulate_counts
from perturbridge.sources import get_source, list_sources
from perturbridge.sources.generic import MappingError, load_mapping, read_generic

ROOT = Path(__file__).resolve().parents[2]
MAPPING = """\
version = 1

[input]
expression = "counts.csv"
orientation = "genes_x_samples"
metadata = "samples.tsv"
value_kind = "counts"

[samples]
id_column = "sample"
keep_columns = ["batch_note"]

[fields]
dataset = { value = "sim_drugseq" }
assay = { value = "DRUG-seq" }
plate = "plate"
well_row = "row"
well_column = "col"
cell_context = "cell_line"
perturbagen = "compound"
inchikey = "inchikey"

[dose]
column = "dose"

[time]
column = "time"
unit_column = "time_unit"

[controls]
control_values = ["dmso"]
positive_control_values = ["Staurosporine"]

[[exclude]]
column = "qc_pass"
equals = false
reason = "qc_fail"

[genes]
id_type = "ensembl"
id_column = "gene_id"
symbol_column = "gene_name"
"""
CAFFEINE = "RYYVLZVUVIJVGH-UHFFFAOYSA-N"


@pytest.fixture(scope="module")
def sim():
    return simulate_counts(
        CountsDesign(replicate_fraction=1.0, mean_library_size=1e6, frac_affected=0.1),
        n_genes=400,
        n_plates=3,
        conditions_per_plate=6,
        vehicles_per_plate=8,
        seed=11,
    )


def _write(root: Path, sim, *, mapping: str = MAPPING) -> dict:
    """Counts (genes × samples CSV) and metadata (TSV) of ``sim`` in a lab's layout, with
    the awkward rows a real table has: a positive control, a QC failure, a treated well
    without a dose, a metadata row without counts, a counts column without metadata,
    ERCC spike-ins."""
    s = sim.samples
    obs = s.obs
    x = np.asarray(s.X).T.astype(np.int64)
    rng = np.random.default_rng(0)
    ids = list(obs.index)
    extra = {"stauro_1": rng.poisson(x[:, 0]), "orphan_col": rng.poisson(x[:, 1])}
    counts = pd.DataFrame(
        np.vstack([np.column_stack([x, *extra.values()]), rng.poisson(30, (2, len(ids) + 2))]),
        index=pd.Index([*s.var_names, "ERCC-00002", "ERCC-00130"], name="gene_id"),
        columns=[*ids, *extra],
    )
    counts.insert(0, "gene_name", [*s.var["symbol"], "ERCC-00002", "ERCC-00130"])
    counts.to_csv(root / "counts.csv")
    n = len(ids)
    wells = pd.Series(obs["plate"].astype(str)).groupby(obs["plate"].astype(str)).cumcount()
    meta = pd.DataFrame(
        {
            "sample": ids,
            "plate": obs["plate"].astype(str).to_numpy(),
            "row": [chr(ord("A") + w // 24) for w in wells],
            "col": (wells % 24 + 1).to_numpy(),
            "cell_line": "HepG2",
            "compound": np.where(obs["is_control"], "DMSO", obs["perturbagen"].astype(str)),
            "dose": [
                "" if c else f"{d * 1000:.1f}nM"
                for c, d in zip(obs["is_control"], obs["pert_dose_uM"], strict=True)
            ],
            "time": "24",
            "time_unit": "hours",
            "qc_pass": "True",
            "inchikey": "",
            "batch_note": "b1",
        }
    )
    meta.loc[meta["compound"] == "drug0000", "inchikey"] = f"InChIKey={CAFFEINE}"
    extra_rows = pd.DataFrame(
        [
            ["stauro_1", "plate01", "P", 24, "HepG2", "Staurosporine", "1uM", "24", "h", "True"],
            ["no_counts", "plate01", "P", 23, "HepG2", "drug0001", "10uM", "24", "h", "True"],
        ],
        columns=meta.columns[:10],
    )
    meta = pd.concat([meta, extra_rows], ignore_index=True).fillna("")
    treated = np.flatnonzero(~obs["is_control"].to_numpy())
    qc_fail, no_dose = ids[treated[3]], ids[treated[5]]
    meta.loc[meta["sample"] == qc_fail, "qc_pass"] = "False"
    meta.loc[meta["sample"] == no_dose, "dose"] = "NA"
    meta.to_csv(root / "samples.tsv", sep="\t", index=False)
    (root / "mapping.toml").write_text(mapping)
    return {
        "mapping": root / "mapping.toml",
        "meta": meta,
        "counts": counts,
        "n_meta": n + 2,
        "qc_fail": qc_fail,
        "no_dose": no_dose,
    }


@pytest.fixture
def files(tmp_path, sim):
    return _write(tmp_path, sim)


def test_round_trip_accounts_for_every_sample_and_gene(files, sim):
    res = read_generic(files["mapping"])
    s = res.samples
    validate_samples(s)
    led = res.ledger.to_frame()
    inst = led[led["stage"] == "ingest"].set_index("id")
    every = set(files["meta"]["sample"]) | set(files["counts"].columns[1:])
    assert set(inst.index) == every and inst.index.is_unique  # kept + dropped = input
    assert inst["reason"].value_counts().to_dict() == {
        "": sim.samples.n_obs - 2,
        "positive_control": 1,
        "qc_fail": 1,
        "missing_dose": 1,
        "missing_expression": 1,
        "missing_metadata": 1,
    }
    assert inst.loc[files["qc_fail"], "reason"] == "qc_fail"
    assert inst.loc[files["no_dose"], "reason"] == "missing_dose"
    assert inst.loc["no_counts", "reason"] == "missing_expression"
    assert inst.loc["orphan_col", "reason"] == "missing_metadata"
    assert inst.loc["stauro_1", "reason"] == "positive_control"
    genes = led[led["stage"] == "ingest_genes"]
    assert len(genes) == 402
    assert set(genes.loc[genes["status"] == "dropped", "id"]) == {"ERCC-00002", "ERCC-00130"}
    # values and metadata survive the trip
    truth = sim.samples[s.obs_names]
    np.testing.assert_array_equal(s.X.toarray(), np.asarray(truth.X))
    np.testing.assert_allclose(s.obs["pert_dose_uM"], truth.obs["pert_dose_uM"], rtol=1e-12)
    assert (s.obs["pert_time_h"] == 24.0).all()
    assert s.var_names.tolist() == sim.samples.var_names.tolist()
    assert (s.var["symbol"] == sim.samples.var["symbol"]).all()
    assert s.uns["perturbridge"]["value_kind"] == "counts"
    assert s.uns["perturbridge"]["gene_id_type"] == "ensembl"
    assert (s.obs["dataset"] == "sim_drugseq").all() and (s.obs["assay"] == "DRUG-seq").all()
    assert s.obs.loc[s.obs["is_control"], "perturbagen"].eq("DMSO").all()
    assert s.obs["well"].str.fullmatch(r"[A-P]\d\d").all()
    assert (s.obs["batch_note"] == "b1").all()
    caffeine = s.obs["perturbagen"] == "drug0000"
    assert (s.obs.loc[caffeine, "compound_inchikey"] == CAFFEINE).all()
    assert s.obs.loc[~caffeine, "compound_inchikey"].isna().all()
    reps = s.obs.groupby(["perturbagen", "pert_dose_uM"], observed=True)["replicate"]
    assert reps.apply(lambda r: sorted(map(int, r)) == list(range(1, len(r) + 1))).all()


def test_limma_voom_recovers_planted_effects(files, sim):
    s = read_generic(files["mapping"]).samples
    eff = limma_voom(s).effects
    keys = [
        f"{p}|{d:g}" for p, d in zip(eff.obs["perturbagen"], eff.obs["pert_dose_uM"], strict=True)
    ]
    truth = sim.truth_logfc.loc[keys, eff.var_names].to_numpy()
    lfc = np.asarray(eff.layers["logFC"])
    adj = np.asarray(eff.layers["adj.P.Value.within_one_contrast"])
    ok = np.isfinite(lfc)
    planted = ok & (np.abs(truth) > 1)
    r = np.corrcoef(lfc[planted], truth[planted])[0, 1]
    sign = np.mean(np.sign(lfc[planted]) == np.sign(truth[planted]))
    called = ok & (adj < 0.05)
    precision = np.mean(truth[called] != 0)
    recall = np.mean(called[planted])
    print(
        f"\ngeneric → limma-voom: {eff.n_obs} contrasts; planted |log2FC| > 1: "
        f"Pearson r = {r:.3f}, sign agreement = {sign:.3f}; at adj.P < 0.05: "
        f"precision = {precision:.3f}, recall = {recall:.3f}"
    )
    kept = s.obs[~s.obs["is_control"]].groupby(["perturbagen", "pert_dose_uM"], observed=True)
    assert eff.n_obs == len(set(keys)) == kept.ngroups == sim.truth_logfc.shape[0]
    assert r > 0.8
    assert sign > 0.9
    assert precision > 0.85
    assert recall > 0.25  # one or two wells per condition: the simulation's own limit
    # the same samples taken straight from the simulator give the same effects
    ref = limma_voom(sim.samples[s.obs_names]).effects
    order = [
        f"{p}|{d:g}" for p, d in zip(ref.obs["perturbagen"], ref.obs["pert_dose_uM"], strict=True)
    ]
    ref_lfc = pd.DataFrame(np.asarray(ref.layers["logFC"]), index=order, columns=ref.var_names)
    np.testing.assert_allclose(lfc, ref_lfc.loc[keys, eff.var_names].to_numpy(), rtol=1e-10)


def test_samples_x_genes_parquet_with_annotation_table_gives_the_same_samples(files, tmp_path):
    ref = read_generic(files["mapping"]).samples
    counts = files["counts"]
    wide = counts.drop(columns="gene_name").T
    wide.index.name = "sample"
    wide.reset_index().to_parquet(tmp_path / "counts.parquet", index=False)
    counts[["gene_name"]].reset_index().rename(columns={"gene_id": "ensembl"}).to_csv(
        tmp_path / "genes.csv", index=False
    )
    text = (
        MAPPING.replace('"counts.csv"', '"counts.parquet"')
        .replace('"genes_x_samples"', '"samples_x_genes"')
        .replace('id_column = "gene_id"', 'id_column = "ensembl"\nannotation = "genes.csv"')
    )
    (tmp_path / "m2.toml").write_text(text)
    res = read_generic(tmp_path / "m2.toml", chunk_size=7)
    s = res.samples
    np.testing.assert_array_equal(s.X.toarray(), ref.X.toarray())
    pd.testing.assert_frame_equal(s.obs, ref.obs)
    pd.testing.assert_frame_equal(s.var, ref.var)
    assert len(res.ledger.ids(stage="ingest")) == files["n_meta"] + 1


def test_h5ad_with_obs_metadata_pert_type_map_and_fixed_values(tmp_path, sim):
    s = sim.samples
    obs = pd.DataFrame(
        {
            "kind": np.where(s.obs["is_control"], "CTRL", "trt"),
            "drug": s.obs["perturbagen"].astype(str).to_numpy(),
            "conc": s.obs["pert_dose_uM"].to_numpy(),
            "conc_unit": "uM",
            "plate_name": s.obs["plate"].astype(str).to_numpy(),
            "well_id": s.obs["well"].astype(str).to_numpy(),
            "pct_dmso": "0.1",
            "cells": s.obs["n_cells"].astype(int).to_numpy(),
        },
        index=pd.Index([f"cell_{i}" for i in range(s.n_obs)]),
    )
    obs.loc[obs.index[-1], "kind"] = "pos"
    var = pd.DataFrame({"sym": s.var["symbol"].to_numpy()}, index=s.var_names)
    a = ad.AnnData(X=np.zeros(s.shape), obs=obs, var=var, layers={"raw": np.asarray(s.X)})
    a.write_h5ad(tmp_path / "pb.h5ad")
    (tmp_path / "m.toml").write_text(
        """
[input]
expression = "pb.h5ad"
layer = "raw"
value_kind = "counts"
[fields]
dataset = { value = "pb" }
assay = { value = "scRNA-seq pseudobulk" }
plate = "plate_name"
well = "well_id"
cell_context = { value = "CL:0000236" }
cell_name = { value = "B cells" }
perturbagen = "drug"
n_cells = "cells"
[dose]
column = "conc"
unit_column = "conc_unit"
[time]
value = 18
unit = "h"
[controls]
pert_type_column = "kind"
pert_type_map = { ctrl = "vehicle", trt = "compound", pos = "positive_control" }
control_match_keys = ["pct_dmso"]
[genes]
id_type = "ensembl"
symbol_column = "sym"
"""
    )
    res = read_generic(tmp_path / "m.toml")
    out = res.samples
    assert out.n_obs == s.n_obs - 1
    assert res.ledger.to_frame().query("reason == 'positive_control'")["id"].tolist() == [
        obs.index[-1]
    ]
    np.testing.assert_array_equal(out.X.toarray(), np.asarray(s.X)[:-1])
    assert (out.obs["pert_time_h"] == 18.0).all()
    assert (out.obs["cell_context"] == "CL:0000236").all()
    assert (out.obs["n_cells"].to_numpy() == obs["cells"].to_numpy()[:-1]).all()
    assert out.uns["perturbridge"]["control_match_keys"] == ["pct_dmso"]
    assert (out.var["symbol"] == s.var["symbol"]).all()
    assert limma_voom(out).effects.n_obs > 0  # the declared control keys are usable


def test_log_expression_table_and_limma_trend(tmp_path, sim):
    s = sim.samples
    x = np.asarray(s.X)
    logcpm = np.log2((x + 0.5) / (x.sum(axis=1, keepdims=True) + 1) * 1e6)
    table = pd.DataFrame(logcpm.T, index=pd.Index(s.var["symbol"], name="symbol"))
    table.columns = s.obs_names
    table.to_csv(tmp_path / "logcpm.tsv", sep="\t")
    meta = pd.DataFrame(
        {
            "id": s.obs_names,
            "plate": s.obs["plate"].astype(str).to_numpy(),
            "cell": "HepG2",
            "treatment": s.obs["perturbagen"].astype(str).to_numpy(),
            "dose_uM": s.obs["pert_dose_uM"].to_numpy(),
        }
    )
    meta.to_csv(tmp_path / "meta.csv", index=False)
    (tmp_path / "m.toml").write_text(
        """
[input]
expression = "logcpm.tsv"
orientation = "genes_x_samples"
metadata = "meta.csv"
value_kind = "log_expression"
[samples]
id_column = "id"
[fields]
dataset = { value = "logsim" }
assay = { value = "RNA-seq" }
plate = "plate"
cell_context = "cell"
perturbagen = "treatment"
[dose]
column = "dose_uM"
unit = "uM"
[time]
value = 24
unit = "h"
[controls]
control_values = ["DMSO"]
[genes]
id_type = "symbol"
"""
    )
    out = read_generic(tmp_path / "m.toml").samples
    assert out.uns["perturbridge"]["value_kind"] == "log_expression"
    np.testing.assert_allclose(np.asarray(out.X), logcpm, rtol=1e-12)
    assert (out.var_names == out.var["symbol"]).all()
    assert (out.obs["well"] == out.obs_names).all()  # no well given: the sample id
    assert limma_trend(out).effects.n_obs == sim.truth_logfc.shape[0]


def test_example_in_the_docs_runs(tmp_path):
    make = runpy.run_path(str(ROOT / "examples" / "generic" / "make_input.py"))
    make["write_example"](tmp_path, n_genes=300)
    shutil.copy(ROOT / "examples" / "generic" / "mapping.toml", tmp_path / "mapping.toml")
    res = read_generic(tmp_path / "mapping.toml")
    summary = res.ledger.summary().set_index(["stage", "reason"])["n"].to_dict()
    assert summary[("ingest", "positive_control")] == 6
    assert summary[("ingest", "qc_fail")] == 1
    assert summary[("ingest_genes", "spike_in")] == 2
    assert res.samples.n_vars == 300
    assert "generic" in (ROOT / "docs" / "generic.md").read_text()


def test_registry_and_reader():
    assert "generic" in list_sources()["name"].tolist()
    assert get_source("generic").reader() is read_generic


# --------------------------------------------------------------------------------------
# Bad input: the mapping file, the data files, the values
# --------------------------------------------------------------------------------------


def _edit(files: dict, old: str, new: str) -> Path:
    text = files["mapping"].read_text()
    assert old in text, old
    files["mapping"].write_text(text.replace(old, new, 1))
    return files["mapping"]


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            'orientation = "genes_x_samples"',
            'orientaton = "genes_x_samples"',
            r"mapping\.toml: 2 problems: input: unknown key\(s\) \['orientaton'\]; did you mean "
            r"'orientation'\?",
        ),
        (
            'value_kind = "counts"\n',
            "",
            r"mapping\.toml: input\.value_kind: required key is missing",
        ),
        ('value_kind = "counts"', 'value_kind = "count"', r"input\.value_kind: expected one of"),
        (
            'unit_column = "time_unit"',
            "unit_column = 5",
            r"time\.unit_column: expected a non-empty",
        ),
        ('plate = "plate"', "plate = 3", r"fields\.plate: expected a metadata column"),
        ('plate = "plate"', 'plate = { col = "p" }', r"fields\.plate: unknown key\(s\) \['col'\]"),
        ("[genes]", "[gens]", r"unknown key\(s\) \['gens'\]; did you mean 'genes'"),
        ('reason = "qc_fail"', 'reason = "QC failed"', r"exclude\[0\]\.reason: expected a lower"),
        ('control_values = ["dmso"]', "", r"controls: give exactly one control rule"),
        ("version = 1", "version = 2", r"version: expected 1"),
        ('["batch_note"]', '["plate"]', r"samples\.keep_columns: \['plate'\] are names of"),
        ('id_type = "ensembl"', 'id_type = "refseq"', r"genes\.id_type: expected one of"),
        ("[dose]\n", "[dose]\nvalue = 1\n", r"dose: give exactly one of 'column'"),
        ('assay = { value = "DRUG-seq" }', "assay = {", r"mapping\.toml: not valid TOML"),
    ],
)
def test_bad_mapping_names_file_and_key(files, old, new, pattern):
    (files["mapping"].parent / "counts.csv").unlink()  # the mapping is checked first
    with pytest.raises(MappingError, match=pattern):
        read_generic(_edit(files, old, new))


def test_bad_mapping_lists_every_problem_at_once(files):
    _edit(files, 'orientation = "genes_x_samples"', 'orientaton = "genes_x_samples"')
    _edit(files, 'unit_column = "time_unit"', "unit_column = 5")
    path = _edit(files, 'reason = "qc_fail"', 'reason = "QC failed"')
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 4 problems: "), msg
    for problem in (
        "input: unknown key(s) ['orientaton']; did you mean 'orientation'?",
        "input.orientation: required key is missing",
        "time.unit_column: expected a non-empty string (the time unit column), found 5",
        "exclude[0].reason: expected a lower-case identifier such as 'qc_fail', found 'QC failed'",
    ):
        assert problem in msg, problem


def test_missing_file_names_file_and_key(files):
    (files["mapping"].parent / "counts.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"input\.expression.*counts\.csv"):
        read_generic(files["mapping"])
    with pytest.raises(FileNotFoundError, match=r"mapping file.*nope\.toml"):
        load_mapping(files["mapping"].parent / "nope.toml")


def test_missing_column_names_file_column_and_key(files):
    path = _edit(files, 'cell_context = "cell_line"', 'cell_context = "cell_type"')
    with pytest.raises(SchemaError, match=r"'cell_type' in .*samples\.tsv.*'fields\.cell_context'"):
        read_generic(path)


def test_unknown_unit_names_the_values(files):
    meta = files["meta"]
    meta.loc[meta["compound"] == "drug0002", "dose"] = "5 mg/kg"
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    with pytest.raises(UnitError, match=r"samples\.tsv column 'dose'.*unknown dose unit.*mg/kg"):
        read_generic(files["mapping"])


def test_unparseable_dose_and_bare_numbers(files):
    meta = files["meta"]
    meta.loc[meta["compound"] == "drug0002", "dose"] = "ten"
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    with pytest.raises(FormatError, match=r"samples\.tsv: column 'dose'.*\['ten'\]"):
        read_generic(files["mapping"])
    meta.loc[meta["compound"] == "drug0002", "dose"] = "10"
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    with pytest.raises(MappingError, match=r"have no unit.*set dose\.unit or dose\.unit_column"):
        read_generic(files["mapping"])


def test_unmapped_pert_type_values_are_named(files):
    meta = files["meta"]
    meta["kind"] = np.where(meta["compound"] == "DMSO", "ctl", "trt")
    meta.loc[meta["compound"] == "Staurosporine", "kind"] = "poscon"
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    path = _edit(
        files,
        'control_values = ["dmso"]',
        'pert_type_column = "kind"\npert_type_map = { ctl = "vehicle", trt = "compound" }',
    )
    with pytest.raises(SchemaError, match=r"'kind'.*does not map: \['poscon'\]"):
        read_generic(path)


def test_gene_ids_of_the_wrong_type(files):
    path = _edit(files, 'id_type = "ensembl"', 'id_type = "entrez"')
    with pytest.raises(SchemaError, match=r"not Entrez ids.*ENSG0"):
        read_generic(path)


def test_bad_inchikey_and_missing_required_value(files):
    meta = files["meta"]
    meta.loc[meta["compound"] == "drug0000", "inchikey"] = "caffeine"
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    with pytest.raises(FormatError, match=r"'inchikey'.*not standard InChIKeys.*caffeine"):
        read_generic(files["mapping"])
    meta.loc[meta["compound"] == "drug0000", "inchikey"] = ""
    meta.loc[meta["compound"] == "drug0003", "plate"] = ""
    meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    with pytest.raises(SchemaError, match=r"'plate'.*have no plate.*\[\[exclude\]\]"):
        read_generic(files["mapping"])


def test_duplicate_sample_ids(files):
    meta = files["meta"]
    pd.concat([meta, meta.iloc[[0]]]).to_csv(
        files["mapping"].parent / "samples.tsv", sep="\t", index=False
    )
    with pytest.raises(SchemaError, match="sample ids must be unique"):
        read_generic(files["mapping"])


def test_negative_counts_name_sample_and_gene(tmp_path, sim):
    files = _write(tmp_path, sim)
    counts = files["counts"]
    counts.iloc[5, 3] = -4
    counts.to_csv(tmp_path / "counts.csv")
    text = files["mapping"].read_text().replace('"genes_x_samples"', '"samples_x_genes"')
    counts.drop(columns="gene_name").T.rename_axis("sample").to_csv(tmp_path / "counts.csv")
    files["mapping"].write_text(text.replace('symbol_column = "gene_name"\n', ""))
    with pytest.raises(FormatError, match=r"negative counts.*-4"):
        read_generic(files["mapping"])


runner = CliRunner(env={"COLUMNS": "200"})  # no wrapping inside long temporary paths


@pytest.mark.parametrize("case", ["ok", "bad_key", "missing_column", "unknown_unit"])
def test_cli_writes_all_or_nothing(files, tmp_path, case):
    if case == "bad_key":
        _edit(files, "[fields]", "[fields]\nwel = 'x'")
    elif case == "missing_column":
        _edit(files, 'plate = "plate"', 'plate = "plate_name"')
    elif case == "unknown_unit":
        meta = files["meta"]
        meta.loc[meta["compound"] == "drug0002", "dose"] = "5 mg/kg"
        meta.to_csv(files["mapping"].parent / "samples.tsv", sep="\t", index=False)
    out = tmp_path / "out" / "samples.h5ad"
    r = runner.invoke(
        app,
        [
            "ingest",
            "generic",
            "--input",
            f"mapping={files['mapping']}",
            "--out",
            str(out),
            "--ledger",
            str(tmp_path / "out" / "ledger.tsv"),
        ],
    )
    if case == "ok":
        assert r.exit_code == 0, r.output
        assert out.exists()
        assert "positive_control" in r.output
        return
    assert r.exit_code == 2
    assert "mapping.toml" in r.output.replace("\n", "") or "samples.tsv" in r.output
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_an_expression_table_cut_mid_row_is_an_error(files):
    counts = files["mapping"].parent / "counts.csv"
    text = counts.read_text()
    counts.write_text(text[: text.rstrip("\n").rfind(",") - 3])  # the last row cut short
    with pytest.raises(
        FormatError,
        match=r"counts\.csv: .*line \d+ has \d+; the last line has \d+ fields, the header \d+: "
        "the file is cut short",
    ):
        read_generic(files["mapping"])
