"""Samples and Effects schema validation: each rule has a test that checks the message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbridge.errors import SchemaError
from perturbridge.samples import build_samples, coerce_obs
from perturbridge.schema import (
    BIOLOGY_COLUMNS,
    SAMPLE_COLUMNS,
    empty_samples_obs,
    validate_samples,
)


def good_obs(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "d", "assay": "L1000", "plate": "P1",
            "well": [f"A{i:02d}" for i in range(n)], "replicate": "X1",
            "cell_context": "A375", "cell_name": "A375",
            "perturbagen": ["DMSO"] + ["drug"] * (n - 1),
            "compound_id_source": ["DMSO"] + ["BRD-1"] * (n - 1),
            "pert_type": ["vehicle"] + ["compound"] * (n - 1),
            "is_control": [True] + [False] * (n - 1),
            "pert_dose_uM": [0.0] + [1.0] * (n - 1),
            "pert_time_h": 24.0,
        },
        index=[f"s{i}" for i in range(n)],
    )  # fmt: skip


def make(obs: pd.DataFrame, **kw):
    var = pd.DataFrame({"symbol": ["A", "B"]}, index=["1", "2"])
    return build_samples(np.zeros((len(obs), 2)), obs, var, value_kind="log_expression", **kw)


def test_good_samples_validate_and_are_typed():
    ad = make(good_obs())
    obs = ad.obs
    assert list(obs.columns[: len(SAMPLE_COLUMNS)]) == [c.name for c in SAMPLE_COLUMNS]
    assert isinstance(obs["plate"].dtype, pd.CategoricalDtype)
    assert obs["pert_dose_uM"].dtype == float
    assert str(obs["pubchem_cid"].dtype) == "Int64"
    assert ad.uns["perturbridge"]["value_kind"] == "log_expression"


def test_duplicate_sample_ids():
    obs = good_obs()
    obs.index = ["s0", "s1", "s1", "s3"]
    with pytest.raises(SchemaError, match=r"'index'.*unique.*s1"):
        make(obs)


def test_vehicle_dose_must_be_zero():
    obs = good_obs()
    obs.loc["s0", "pert_dose_uM"] = 5.0
    with pytest.raises(SchemaError, match=r"'pert_dose_uM'.*0 for vehicle.*s0=5\.0"):
        make(obs)


def test_negative_or_missing_dose():
    obs = good_obs()
    obs.loc["s2", "pert_dose_uM"] = np.nan
    with pytest.raises(SchemaError, match=r"'pert_dose_uM'.*must not be missing.*s2"):
        make(obs)
    obs.loc["s2", "pert_dose_uM"] = -1.0
    with pytest.raises(SchemaError, match=r"finite and >= 0.*s2=-1\.0"):
        make(obs)


def test_is_control_must_match_pert_type():
    obs = good_obs()
    obs.loc["s1", "is_control"] = True
    with pytest.raises(SchemaError, match=r"'is_control'.*s1"):
        make(obs)


def test_unknown_pert_type():
    obs = good_obs()
    obs.loc["s3", "pert_type"] = "mystery"
    with pytest.raises(SchemaError, match=r"'pert_type'.*one of.*s3='mystery'"):
        make(obs)


def test_categorical_required():
    adata = make(good_obs())
    adata.obs["plate"] = adata.obs["plate"].astype(str)
    with pytest.raises(SchemaError, match=r"'plate'.*must be categorical"):
        validate_samples(adata)


def test_missing_column_and_value_kind():
    adata = make(good_obs())
    del adata.obs["pert_time_h"]
    with pytest.raises(SchemaError, match=r"'pert_time_h'.*required column is missing"):
        validate_samples(adata)
    adata = make(good_obs())
    adata.uns["perturbridge"]["value_kind"] = "tpm"
    with pytest.raises(SchemaError, match=r"value_kind.*counts.*tpm"):
        validate_samples(adata)


def test_var_needs_unique_ids_and_symbol():
    obs = good_obs()
    var = pd.DataFrame({"symbol": ["A", "B"]}, index=["1", "1"])
    with pytest.raises(SchemaError, match=r"gene ids must be unique.*'1'"):
        build_samples(np.zeros((len(obs), 2)), obs, var, value_kind="counts")
    adata = make(good_obs())
    del adata.var["symbol"]
    with pytest.raises(SchemaError, match=r"'symbol'"):
        validate_samples(adata)


def test_empty_obs_has_every_column_and_coerce_keeps_extras():
    obs = empty_samples_obs(3)
    assert set(c.name for c in SAMPLE_COLUMNS) <= set(obs.columns)
    extra = good_obs().assign(custom="x")
    assert "custom" in coerce_obs(extra).columns


def test_identifier_status_vocabulary() -> None:
    import anndata as ad

    obs = empty_samples_obs(3)
    for col, val in {
        "dataset": "d",
        "assay": "a",
        "plate": "p",
        "well": "w",
        "replicate": "1",
        "cell_context": "CVCL_0023",
        "cell_name": "A549",
        "perturbagen": "x",
        "pert_type": "compound",
    }.items():
        obs[col] = pd.Categorical([val] * 3)
    obs["pert_dose_uM"] = 1.0
    obs["pert_time_h"] = 24.0
    obs["compound_status"] = pd.Categorical(["resolved", None, "unresolved"])
    obs["cell_status"] = pd.Categorical(["resolved", "ambiguous", None])
    adata = ad.AnnData(np.zeros((3, 1)), obs=obs, var=pd.DataFrame({"symbol": ["G"]}, index=["g"]))
    adata.uns["perturbridge"] = {"value_kind": "counts"}
    validate_samples(adata)
    adata.obs["cell_status"] = pd.Categorical(["resolved", "maybe", None])
    with pytest.raises(SchemaError, match=r"cell_status.*1='maybe'"):
        validate_samples(adata)


def test_the_vocabularies_are_the_values_of_their_types():
    from typing import get_args

    from perturbridge import schema

    pairs = {
        "ValueKind": "VALUE_KINDS",
        "ReplicateMode": "REPLICATE_MODES",
        "OrphanVehicles": "ORPHAN_VEHICLES",
        "DEMethod": "DE_METHODS",
        "DEEngine": "DE_ENGINES",
        "IdStatus": "ID_STATUSES",
    }
    for literal, values in pairs.items():
        assert getattr(schema, values) == get_args(getattr(schema, literal)), literal
    assert schema.REPLICATE_MODES == ("group", "separate")
    assert schema.ID_STATUSES == ("resolved", "ambiguous", "unresolved")


def test_biology_columns_are_added_as_unknown_and_checked():
    obs = make(good_obs()).obs
    assert list(obs.columns[len(SAMPLE_COLUMNS) : len(SAMPLE_COLUMNS) + len(BIOLOGY_COLUMNS)]) == [
        *BIOLOGY_COLUMNS
    ]
    assert (obs[list(BIOLOGY_COLUMNS)] == "unknown").all().all()
    given = good_obs().assign(sex="female", development_stage="54-year-old stage")
    assert set(make(given).obs["sex"]) == {"female"}


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("sex", "F", r"'sex'.*must be one of \('female', 'male', 'unknown'\).*s0='F'"),
        ("tissue_type", "cells", r"'tissue_type'.*must be one of"),
        ("suspension_type", "nuclei", r"'suspension_type'.*must be one of"),
        ("development_stage", "54 years", r"'development_stage'.*'<age>-year-old stage'"),
        ("disease_ontology_term_id", "melanoma", r"'disease_ontology_term_id'.*ontology id"),
    ],
)
def test_biology_vocabularies(column, value, rule):
    adata = make(good_obs())
    adata.obs[column] = value
    with pytest.raises(SchemaError, match=rule):
        validate_samples(adata)


def test_biology_values_must_not_be_missing():
    adata = make(good_obs())
    adata.obs["tissue"] = pd.Categorical([None, "skin", "skin", "skin"])
    with pytest.raises(SchemaError, match=r"'tissue'.*must not be missing \(use 'unknown'\)"):
        validate_samples(adata)
