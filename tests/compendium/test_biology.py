"""Biology columns in the catalog, the condition filters, the effects and the exports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ids._fixtures import CELLOSAURUS_TXT, DEPMAP_CSV, LINCS_CELLINFO_TSV, write
from perturbridge.compendium import Compendium, build, export_anndata, export_shards
from perturbridge.compendium.api import _biology_columns
from perturbridge.compendium.store._catalog import (
    CATALOG_BIOLOGY,
    _context_biology,
    _with_biology,
)
from perturbridge.ids.store import RefStore
from perturbridge.schema import BIOLOGY_COLUMNS, UNKNOWN

from ._fixtures import write_l1000

BIO = list(CATALOG_BIOLOGY)


def _samples_table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(dataset, cell_context, sex) rows; the other biology columns ``unknown``."""
    df = pd.DataFrame(rows, columns=["dataset", "cell_context", "sex"])
    for col in BIO:
        if col != "sex":
            df[col] = UNKNOWN
    return df


def test_context_biology_keeps_agreed_values_only():
    samples = _samples_table(
        [("d", "A", "female"), ("d", "A", "female"), ("d", "B", "female"), ("d", "B", "male")]
    )
    ctx = _context_biology(samples).set_index("cell_context")
    assert ctx.loc["A", "sex"] == "female"
    assert ctx.loc["B", "sex"] == UNKNOWN  # donors of both sexes: not one value


def test_contrasts_take_their_own_values_then_the_contexts():
    samples = _samples_table([("d", "A", "female"), ("e", "A", "male")])
    contrasts = pd.DataFrame(
        {
            "dataset": ["d", "e", "d", "x"],
            "cell_context": ["A", "A", "A", "Z"],
            "sex": [None, None, "male", None],  # an Effects file's own value wins
            "zarr_row": [0, 1, 2, 3],
        }
    )
    out = _with_biology(contrasts, samples)
    assert out["sex"].tolist() == ["female", "male", "male", UNKNOWN]
    assert list(out.columns[-len(BIO) :]) == BIO
    assert (out["organism"] == UNKNOWN).all()


def test_frames_of_older_stores_get_unknown_columns():
    out = _biology_columns(pd.DataFrame({"condition_id": ["a"]}))
    assert all(out[c].iloc[0] == UNKNOWN for c in BIO)


def test_a_store_built_before_the_columns_gives_them_as_unknown(tmp_path: Path):
    import duckdb

    comp = Compendium(tmp_path, {})
    comp._con = duckdb.connect()
    comp._con.execute(
        "CREATE TABLE conditions AS SELECT * FROM (VALUES ('d:2', 'd', 'A', 'c', 10.0, 24.0), "
        "('d:1', 'd', 'A', 'c', 2.0, 24.0)) t(condition_id, dataset, cell_context, "
        "compound_id, pert_dose_uM, pert_time_h)"
    )
    every = comp.conditions()
    assert every["condition_id"].tolist() == ["d:1", "d:2"]  # dose 2 before dose 10
    assert all((every[c] == UNKNOWN).all() for c in BIO)
    assert comp.conditions(sex="female").empty
    assert len(comp.conditions(sex="unknown", disease="UNKNOWN")) == 2
    comp.close()


# ------------------------------------------------------------------ a store with references


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated L1000 plate (A375, MCF7, PC3) built with a reference store of the
    cell tables of tests/ids (Cellosaurus, DepMap, LINCS)."""
    root = tmp_path_factory.mktemp("bio")
    src = root / "upstream"
    write(src / "cellosaurus.txt", CELLOSAURUS_TXT)
    write(src / "sample_info_21Q1.csv", DEPMAP_CSV)
    write(src / "cellinfo.tsv", LINCS_CELLINFO_TSV)
    RefStore.build(source_dir=src, out=root / "refs")
    refs = root / "refs"
    level3 = write_l1000(root / "inputs")
    plan = root / "plan.toml"
    plan.write_text(
        textwrap.dedent(
            f"""
            [store]
            path = "store"
            [references]
            path = "{refs}"
            [executor]
            n_jobs = 1
            [[datasets]]
            name = "sim_l1000"
            source = "l1000"
            inputs = {{ level3 = "{level3}" }}
            de = {{ modes = ["group"] }}
            """
        )
    )
    build(plan)
    return root / "store"


@pytest.fixture
def comp(store: Path):
    with Compendium.open(store) as c:
        yield c


@pytest.mark.slow  # the module's store: a build with references
def test_catalog_tables_carry_the_biology(comp: Compendium):
    for table in ("samples", "contrasts", "conditions"):
        columns = comp.sql(f"DESCRIBE {table}")["column_name"].tolist()
        assert columns[-len(BIO) :] == BIO, table
    got = comp.sql(
        "SELECT DISTINCT cell_name, sex, development_stage, tissue_type, organism "
        "FROM conditions ORDER BY cell_name"
    )
    assert got.to_dict("records") == [
        {
            "cell_name": "A375",
            "sex": "female",
            "development_stage": "54-year-old stage",
            "tissue_type": "cell line",
            "organism": "Homo sapiens",
        },
        {
            "cell_name": "MCF7",
            "sex": "female",
            "development_stage": "69-year-old stage",
            "tissue_type": "cell line",
            "organism": "Homo sapiens",
        },
        {
            "cell_name": "PC3",
            "sex": "male",
            "development_stage": "62-year-old stage",
            "tissue_type": "cell line",
            "organism": "Homo sapiens",
        },
    ]  # fmt: skip  (Cellosaurus SX and AG of the fixture)


@pytest.mark.slow  # the module's store: a build with references
def test_condition_filters_on_biology(comp: Compendium):
    every = comp.conditions()
    female = comp.conditions(sex="Female")
    assert set(female["cell_name"]) == {"A375", "MCF7"}
    assert len(female) == (every["cell_name"] != "PC3").sum()
    a375 = every.loc[every["cell_name"] == "A375"].iloc[0]
    disease, term = a375["disease"], a375["disease_ontology_term_id"]
    if term == UNKNOWN:
        pytest.skip("no MONDO labels (cellxgene-ontology-guide is not installed)")
    by_label = comp.conditions(disease=disease.upper())
    by_id = comp.conditions(disease=term.lower())
    assert set(by_label["cell_name"]) == {"A375"}
    assert by_id["condition_id"].tolist() == by_label["condition_id"].tolist()
    both = comp.conditions(sex=["female", "male"], tissue_type="cell line", time=24)
    assert len(both) == (every["pert_time_h"] == 24).sum()
    assert comp.conditions(tissue_type="primary cell").empty
    with pytest.raises(ValueError, match=r"sex must be one of \['female', 'male', 'unknown'\]"):
        comp.conditions(sex="f")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        comp.conditions(colour="blue")


@pytest.mark.slow  # the module's store: a build with references
def test_conditions_sorted_by_dose_numerically(comp: Compendium):
    got = comp.conditions()
    keys = ["dataset", "cell_context", "compound_id", "pert_dose_uM", "pert_time_h"]
    expected = got.sort_values([*keys, "condition_id"], kind="stable")
    assert got["condition_id"].tolist() == expected["condition_id"].tolist()
    one = got.groupby(["cell_context", "compound_id", "pert_time_h"])["pert_dose_uM"]
    assert one.apply(lambda d: bool(np.all(np.diff(d.to_numpy()) >= 0))).all()


@pytest.mark.slow  # the module's store: a build with references
def test_effects_and_exports_carry_the_biology(comp: Compendium, tmp_path: Path):
    cond = comp.conditions(sex="male")
    eff = comp.effects(cond, genes=None)
    assert set(eff.obs["sex"]) == {"male"} and set(eff.obs["cell_name"]) == {"PC3"}
    path = export_anndata(comp, tmp_path / "eval.h5ad", conditions=cond)
    obs = ad.read_h5ad(path).obs
    assert set(BIOLOGY_COLUMNS) <= set(obs.columns)
    assert set(obs["development_stage"]) == {"62-year-old stage"}
    shards = export_shards(comp, tmp_path / "shards", rows_per_shard=10_000)
    table = pq.read_table(shards[0]).to_pandas()
    assert list(table.columns[-len(BIOLOGY_COLUMNS) :]) == list(BIOLOGY_COLUMNS)
    by_context = table.groupby("context", observed=True)["sex"].agg(lambda s: set(s.astype(str)))
    names = comp.sql("SELECT DISTINCT cell_context, cell_name FROM conditions")
    sexes = {"A375": {"female"}, "MCF7": {"female"}, "PC3": {"male"}}
    for ctx, name in zip(names["cell_context"], names["cell_name"], strict=True):
        assert by_context[ctx] == sexes[name]
