"""Issue 19 acceptance: the biology columns on the real LJP005 plate and on the demo.

Every sample has the metadata columns; A375 is female, melanoma (MONDO:0005105, whose
synonyms include LINCS's "malignant melanoma"), from skin, per the shared DepMap and
LINCS tables; the coverage of each column is printed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.compendium import Compendium
from perturbridge.ids.annotate import IdentityResolvers, annotate_samples
from perturbridge.ids.store import RefStore
from perturbridge.schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, UNKNOWN, validate_samples
from perturbridge.sources import read_l1000


def coverage(frame: pd.DataFrame) -> pd.Series:
    """The fraction of rows whose column is not ``unknown``, per biology column."""
    return pd.Series(
        {c: float((frame[c].astype(str) != UNKNOWN).mean()) for c in BIOLOGY_COLUMNS},
        name="known",
    )


@pytest.mark.shared_data
@pytest.mark.slow  # a reference store of the DepMap and LINCS tables, MONDO and UBERON loaded
def test_ljp005_samples_carry_the_biology_of_a375(tmp_path: Path):
    pytest.importorskip("cellxgene_ontology_guide", reason="the refs extra is not installed")
    src = tmp_path / "src"
    src.mkdir()
    for parts in (
        ("reference_cell_lines", "depmap_sample_info.csv"),
        ("l1000_signatureSearch", "cell_info.tsv.gz"),
    ):
        (src / parts[-1]).symlink_to(shared_path(*parts))
    plate = shared_path("l1000_cmapPy", "test_l1000.gct")
    RefStore.build(source_dir=src, out=tmp_path / "refs")
    resolvers = IdentityResolvers.from_store(str(tmp_path / "refs"))
    resolvers.compounds = resolvers.genes = None  # the cells only: fast
    samples, _ = annotate_samples(read_l1000(plate).samples, resolvers)
    validate_samples(samples)
    obs = samples.obs
    assert set(BIOLOGY_COLUMNS) | {BIOLOGY_SOURCE} <= set(obs.columns)
    assert not obs[list(BIOLOGY_COLUMNS)].isna().any().any()
    print("\nLJP005 (354 wells) biology coverage:\n", coverage(obs).to_string())
    a375 = obs.drop_duplicates("cell_context")
    assert len(a375) == 1
    row = a375.iloc[0]
    assert row["cell_context"] == "CVCL_0132"
    assert row["sex"] == "female"
    assert (row["disease"], row["disease_ontology_term_id"]) == ("melanoma", "MONDO:0005105")
    assert (row["tissue"], row["tissue_ontology_term_id"]) == ("skin of body", "UBERON:0002097")
    assert row["development_stage"] == "54-year-old stage"  # DepMap's age
    assert (row["organism"], row["tissue_type"]) == ("Homo sapiens", "cell line")
    print("A375:", row[[*BIOLOGY_COLUMNS, BIOLOGY_SOURCE]].to_dict())


@pytest.mark.slow
def test_every_demo_sample_has_the_biology_columns(demo_run):
    assert demo_run.compendium is not None, demo_run.output
    store = demo_run.out / "compendium_demo" / "compendium"
    with Compendium.open(store) as comp:
        samples = comp.table("samples")
        conditions = comp.conditions()
    for frame in (samples, conditions):
        assert set(BIOLOGY_COLUMNS) <= set(frame.columns)
        assert not frame[list(BIOLOGY_COLUMNS)].isna().any().any()
    by_dataset = samples.groupby("dataset")[list(BIOLOGY_COLUMNS)].agg(
        lambda s: float((s.astype(str) != UNKNOWN).mean())
    )
    print("\ndemo biology coverage (fraction known) per dataset:\n", by_dataset.to_string())
    print("demo overall:\n", coverage(samples).to_string())
    facts = samples.drop_duplicates("dataset").set_index("dataset")
    # the adapters' statements (the demo builds without references)
    assert facts.loc["demo_sciplex", "suspension_type"] == "nucleus"
    assert facts.loc["demo_op3", "tissue_type"] == "primary cell"
    assert facts.loc["demo_op3", "tissue"] == "blood"
    assert "suspension_type=dataset:sciplex" in facts.loc["demo_sciplex", BIOLOGY_SOURCE]
