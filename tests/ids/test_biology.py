"""Biology columns of cell contexts: parsers' extra fields, CellBiology, annotation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.ids.annotate import IdentityResolvers, annotate_samples
from perturbridge.ids.biology import (
    TISSUE_TERMS,
    CellBiology,
    Ontologies,
    development_stage,
    load_ontologies,
    normalize_sex,
)
from perturbridge.ids.parsers_genes_cells import (
    parse_cellosaurus,
    parse_depmap_sample_info,
    parse_lincs_cellinfo,
)
from perturbridge.ids.store import RefStore
from perturbridge.samples import build_samples, with_biology
from perturbridge.schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, UNKNOWN

# A tiny MONDO/UBERON written by hand: the tests of the rules do not need the package.
TOY = Ontologies(
    versions={"MONDO": "toy", "UBERON": "toy"},
    labels={
        "MONDO:0005105": "melanoma",
        "MONDO:0004993": "carcinoma",
        "UBERON:0000955": "brain",
    },
    index={
        "MONDO": {
            "melanoma": ("MONDO:0005105",),
            "malignant melanoma": ("MONDO:0005105",),
            "carcinoma": ("MONDO:0004993",),
        },
        "UBERON": {"brain": ("UBERON:0000955",)},
    },
)


def cells_table(rows: list[dict]) -> pd.DataFrame:
    cols = [
        "accession", "name", "species", "sex", "disease", "category", "ref_source", "age",
        "tissue", "tissue_ontology_term_id", "disease_terms", "disease_ontology_term_id",
        "ethnicity",
    ]  # fmt: skip
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


def test_sex_and_development_stage_spellings():
    assert [normalize_sex(v) for v in ("F", "Female", "male", "M", "Unknown", None, "-666")] == [
        "female", "female", "male", "male", UNKNOWN, UNKNOWN, UNKNOWN,
    ]  # fmt: skip
    assert development_stage("54") == "54-year-old stage"
    assert development_stage("54.0") == "54-year-old stage"
    assert development_stage("54Y") == "54-year-old stage"
    for bad in ("35Y6M", "Fetal", "0", "", None, float("nan"), "0.5", "Age unspecified"):
        assert development_stage(bad) == UNKNOWN, bad


def test_best_source_per_field_and_provenance():
    cells = cells_table(
        [
            # DepMap: age, lineage, disease texts; LINCS: another sex spelling and site
            {"accession": "CVCL_0132", "species": "Homo sapiens", "sex": "Female",
             "ref_source": "depmap", "age": "54", "tissue": "skin",
             "disease_terms": "Melanoma|melanoma|Skin Cancer", "disease": "Skin Cancer"},
            {"accession": "CVCL_0132", "species": "Homo sapiens", "sex": "Male",
             "ref_source": "lincs_cellinfo", "tissue": "brain", "age": "12",
             "disease_terms": "malignant melanoma", "ethnicity": "White"},
        ]
    )  # fmt: skip
    got = CellBiology(cells, ontologies=TOY).lookup(["CVCL_0132"]).loc["CVCL_0132"]
    assert got["sex"] == "female"  # depmap before lincs
    assert got["development_stage"] == "54-year-old stage"
    assert (got["tissue"], got["tissue_ontology_term_id"]) == ("skin of body", "UBERON:0002097")
    assert (got["disease"], got["disease_ontology_term_id"]) == ("melanoma", "MONDO:0005105")
    assert got["self_reported_ethnicity"] == "White"  # only LINCS says
    assert got["organism"] == "Homo sapiens"
    assert got["tissue_type"] == "cell line"
    assert got["suspension_type"] == UNKNOWN  # a dataset fact, not a cell-line one
    src = got[BIOLOGY_SOURCE]
    assert "sex=depmap" in src and "self_reported_ethnicity=lincs_cellinfo" in src
    assert "disease=depmap+MONDO:toy" in src and "tissue=depmap" in src


def test_unmapped_texts_keep_their_text_and_normal_lines():
    cells = cells_table(
        [
            {"accession": "CVCL_AAAA", "ref_source": "lincs_cellinfo",
             "disease_terms": "lymphoma,Burkitts", "tissue": "soft tissue,muscle"},
            {"accession": "CVCL_BBBB", "ref_source": "lincs_cellinfo",
             "disease_terms": "odd disease", "tissue": "upper aerodigestive"},
            {"accession": "CVCL_CCCC", "ref_source": "depmap", "disease": "Non-Cancerous"},
            {"accession": "CVCL_DDDD", "ref_source": "cellosaurus", "disease": "Odd carcinoma",
             "disease_ontology_term_id": "NCIT:C9999", "category": "Cancer cell line"},
            {"accession": "CVCL_EEEE", "ref_source": "cellosaurus",
             "category": "Finite cell line", "tissue": "Brain",
             "tissue_ontology_term_id": "UBERON:0000955"},
        ]
    )  # fmt: skip
    got = CellBiology(cells, ontologies=TOY).lookup(
        ["CVCL_AAAA", "CVCL_BBBB", "CVCL_CCCC", "CVCL_DDDD", "CVCL_EEEE", "CVCL_ZZZZ"]
    )
    row = got.to_dict("index")
    # "lymphoma,Burkitts": no MONDO term for the whole text nor its parts in TOY
    assert row["CVCL_AAAA"]["disease"] == "lymphoma,Burkitts"
    assert row["CVCL_AAAA"]["disease_ontology_term_id"] == UNKNOWN
    assert row["CVCL_AAAA"]["tissue"] == "soft tissue"
    assert row["CVCL_AAAA"]["tissue_ontology_term_id"] == UNKNOWN
    assert "no MONDO term" in row["CVCL_BBBB"][BIOLOGY_SOURCE]
    assert row["CVCL_CCCC"]["disease"] == "normal"
    assert row["CVCL_CCCC"]["disease_ontology_term_id"] == "PATO:0000461"
    assert row["CVCL_DDDD"]["disease"] == "Odd carcinoma"
    assert row["CVCL_DDDD"]["disease_ontology_term_id"] == "NCIT:C9999"
    assert row["CVCL_EEEE"]["disease"] == "normal"
    assert row["CVCL_EEEE"]["tissue"] == "brain"
    assert row["CVCL_EEEE"]["tissue_ontology_term_id"] == "UBERON:0000955"
    assert all(row["CVCL_ZZZZ"][c] == UNKNOWN for c in (*BIOLOGY_COLUMNS, BIOLOGY_SOURCE))


def test_primary_cells_are_normal_primary_cells():
    cells = cells_table(
        [
            {
                "accession": "CL:0000182",
                "species": "Homo sapiens",
                "ref_source": "cell_ontology_builtin",
            }
        ]
    )
    got = CellBiology(cells, ontologies=None).lookup(["CL:0000182"]).loc["CL:0000182"]
    assert got["tissue_type"] == "primary cell"
    assert (got["disease"], got["disease_ontology_term_id"]) == ("normal", "PATO:0000461")
    assert got["sex"] == UNKNOWN


def test_store_built_before_the_fields_still_works():
    old = cells_table([{"accession": "CVCL_0132", "species": "Homo sapiens", "sex": "Female",
                        "disease": "Melanoma", "ref_source": "depmap"}])  # fmt: skip
    old = old[["accession", "name", "species", "sex", "disease", "category", "ref_source"]]
    bio = CellBiology(old, ontologies=TOY)
    assert set(bio.missing_fields) == {
        "age", "tissue", "tissue_ontology_term_id", "disease_terms",
        "disease_ontology_term_id", "ethnicity",
    }  # fmt: skip
    got = bio.lookup(["CVCL_0132"]).loc["CVCL_0132"]
    assert got["sex"] == "female" and got["disease"] == "melanoma"
    assert got["tissue"] == UNKNOWN and got["development_stage"] == UNKNOWN


def test_missing_cells_columns_are_an_error():
    with pytest.raises(KeyError, match=r"lacks columns.*ref_source"):
        CellBiology(pd.DataFrame({"accession": ["CVCL_0132"]}), ontologies=None)


# ------------------------------------------------------------------ parsers


def test_parsers_keep_the_biology_fields(tmp_path: Path):
    depmap = tmp_path / "sample_info.csv"
    depmap.write_text(
        "DepMap_ID,stripped_cell_line_name,CCLE_Name,lineage,lineage_subtype,sex,RRID,"
        "disease,disease_subtype,age\n"
        "ACH-000219,A375,A375_SKIN,skin,melanoma,Female,CVCL_0132,Skin Cancer,Melanoma,54\n"
    )
    row = parse_depmap_sample_info(depmap)["cells"].iloc[0]
    assert (row["age"], row["tissue"]) == ("54", "skin")
    assert row["disease_terms"] == "Melanoma|melanoma|Skin Cancer"
    lincs = tmp_path / "cell_info.tsv"
    lincs.write_text(
        "cell_id\tcell_type\tprimary_site\tsubtype\tdonor_sex\tdonor_age\tdonor_ethnicity\n"
        "A375\ttumor\tskin\tmalignant melanoma\tF\t54\tWhite\n"
    )
    row = parse_lincs_cellinfo(lincs)["cells"].iloc[0]
    assert (row["sex"], row["age"], row["tissue"]) == ("Female", "54", "skin")
    assert (row["disease_terms"], row["ethnicity"]) == ("malignant melanoma", "White")
    cello = tmp_path / "cellosaurus.txt"
    cello.write_text(
        "ID   A-375\nAC   CVCL_0132\nDI   NCIt; C3510; Cutaneous melanoma\n"
        "OX   NCBI_TaxID=9606; ! Homo sapiens (Human)\nSX   Female\nAG   54Y\n"
        "CC   Derived from site: In situ; Skin; UBERON=UBERON_0002097.\n"
        "CA   Cancer cell line\n//\n"
    )
    row = parse_cellosaurus(cello)["cells"].iloc[0]
    assert list(parse_cellosaurus(cello)["cells"].columns[:7]) == [
        "accession", "name", "species", "sex", "disease", "category", "ref_source",
    ]  # fmt: skip
    assert (row["age"], row["tissue"], row["tissue_ontology_term_id"]) == (
        "54Y",
        "Skin",
        "UBERON:0002097",
    )
    assert row["disease_ontology_term_id"] == "NCIT:C3510"


# ------------------------------------------------------------------ annotation


def _samples(contexts: list[str]):
    n = len(contexts)
    obs = pd.DataFrame(
        {
            "dataset": "d", "assay": "a", "plate": "P", "well": [f"A{i:02d}" for i in range(n)],
            "replicate": "1", "cell_context": contexts, "cell_name": contexts,
            "perturbagen": "DMSO", "pert_type": "vehicle", "is_control": True,
            "pert_dose_uM": 0.0, "pert_time_h": 24.0,
        },
        index=[f"s{i}" for i in range(n)],
    )  # fmt: skip
    obs = with_biology(obs, {"suspension_type": "nucleus", "sex": "male"}, source="dataset:x")
    var = pd.DataFrame({"symbol": ["A"]}, index=["1"])
    return build_samples(np.ones((n, 1)), obs, var, value_kind="log_expression")


def test_annotation_fills_unknown_columns_and_keeps_the_adapters():
    cells = cells_table(
        [{"accession": "CVCL_0132", "species": "Homo sapiens", "sex": "Female", "age": "54",
          "tissue": "skin", "disease_terms": "Melanoma", "ref_source": "depmap"}]
    )  # fmt: skip
    res = IdentityResolvers(biology=CellBiology(cells, ontologies=TOY))
    out, ledger = annotate_samples(_samples(["CVCL_0132", "CVCL_0132", "CVCL_ZZZZ"]), res)
    obs = out.obs
    a = obs.loc["s0"]
    assert a["sex"] == "male"  # the dataset's statement wins over the reference
    assert a["suspension_type"] == "nucleus"
    assert (a["disease"], a["tissue"], a["development_stage"]) == (
        "melanoma",
        "skin of body",
        "54-year-old stage",
    )
    assert a[BIOLOGY_SOURCE].startswith("suspension_type=dataset:x; sex=dataset:x; ")
    assert "disease=depmap+MONDO:toy" in a[BIOLOGY_SOURCE]
    z = obs.loc["s2"]
    assert z["disease"] == UNKNOWN and z["suspension_type"] == "nucleus"
    assert all(isinstance(obs[c].dtype, pd.CategoricalDtype) for c in BIOLOGY_COLUMNS)
    assert ledger.to_frame().empty


def test_annotation_with_an_old_store_notes_the_missing_fields():
    old = cells_table([{"accession": "CVCL_0132", "sex": "Female", "ref_source": "depmap"}])
    old = old[["accession", "name", "species", "sex", "disease", "category", "ref_source"]]
    res = IdentityResolvers(biology=CellBiology(old, ontologies=None))
    out, ledger = annotate_samples(_samples(["CVCL_0132"]), res)
    notes = ledger.to_frame()
    assert set(notes["reason"]) == {"reference_fields_missing"}
    assert "age" in notes["detail"].iloc[0] and "refs build" in notes["detail"].iloc[0]
    assert out.obs.loc["s0", "tissue"] == UNKNOWN


def test_with_biology_refuses_other_columns():
    with pytest.raises(KeyError, match=r"not biology columns.*plate"):
        with_biology(pd.DataFrame(index=["a"]), {"plate": "x"}, source="s")


# ------------------------------------------------------------------ ontologies


@pytest.fixture(scope="module")
def ontologies() -> Ontologies:
    pytest.importorskip("cellxgene_ontology_guide", reason="the refs extra is not installed")
    onto = load_ontologies()
    assert onto is not None
    return onto


def test_curated_tissues_carry_uberon_labels(ontologies: Ontologies):
    wrong = {
        k: (term, label, ontologies.labels.get(term))
        for k, (term, label) in TISSUE_TERMS.items()
        if ontologies.labels.get(term) != label
    }
    assert not wrong


@pytest.mark.shared_data
def test_a375_from_the_shared_tables(tmp_path: Path, ontologies: Ontologies):
    """A375 per the shared DepMap and LINCS tables: female, 54 years, melanoma (MONDO's
    term whose synonyms include "malignant melanoma", LINCS's word), from skin."""
    src = tmp_path / "src"
    src.mkdir()
    for parts, name in (
        (("reference_cell_lines", "depmap_sample_info.csv"), "depmap_sample_info.csv"),
        (("l1000_signatureSearch", "cell_info.tsv.gz"), "cell_info.tsv.gz"),
    ):
        (src / name).symlink_to(shared_path(*parts))
    store = RefStore.build(source_dir=src, out=tmp_path / "refs")
    bio = CellBiology.from_store(store)
    a375 = bio.lookup(["CVCL_0132"]).loc["CVCL_0132"]
    assert a375["sex"] == "female"
    assert a375["development_stage"] == "54-year-old stage"
    assert a375["tissue_ontology_term_id"] == "UBERON:0002097"
    assert a375["disease_ontology_term_id"] == "MONDO:0005105"
    assert ontologies.find("MONDO", "malignant melanoma") == "MONDO:0005105"
    assert a375["organism"] == "Homo sapiens" and a375["tissue_type"] == "cell line"
