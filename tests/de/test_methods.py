"""de.run, the one DE entry point: the method registry, auto choice, engines, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from test_limma import synthetic_samples
from test_voom import count_samples

from perturbridge import de
from perturbridge.de.r_limma import limma_r
from perturbridge.errors import SchemaError
from perturbridge.schema import DE_ENGINES, DE_METHODS, VALUE_KINDS


def _same(a, b) -> None:
    assert list(a.layers) == list(b.layers)
    for name in a.layers:
        np.testing.assert_array_equal(a.layers[name], b.layers[name], err_msg=name)
    assert a.obs.equals(b.obs)
    assert a.uns["perturbridge"]["params"] == b.uns["perturbridge"]["params"]


def test_the_methods_are_listed_as_data():
    methods = de.list_methods()
    assert [m.name for m in methods] == ["trend", "voom"]
    assert {m.value_kind for m in methods} == set(VALUE_KINDS)
    assert [m.label for m in methods] == ["limma-trend", "limma-voom"]
    assert all(m.description for m in methods)
    assert set(de.METHODS) | {"auto"} == set(DE_METHODS)
    assert DE_ENGINES == ("python", "r")


def test_auto_is_trend_for_log_expression_and_voom_for_counts():
    logs = synthetic_samples(seed=1, n_genes=80)
    counts = count_samples(seed=1, n_genes=120)
    assert de.method_for(logs).name == "trend"
    assert de.method_for(counts).name == "voom"
    _same(de.run(logs).effects, de.limma_trend(logs).effects)
    _same(de.run(counts).effects, de.limma_voom(counts).effects)
    assert de.run(counts).effects.uns["perturbridge"]["params"]["method"] == "limma-voom"


def test_options_and_mode_reach_the_method():
    logs = synthetic_samples(seed=2, n_genes=60)
    opts = de.DEOptions(stdev_scaled=True, orphan_vehicles="keep", confint=0.9)
    res = de.run(logs, mode="separate", options=opts)
    assert "stdev.scaled" in res.effects.layers
    params = res.effects.uns["perturbridge"]["params"]
    assert params["mode"] == "separate" and params["confint"] == 0.9
    assert params["orphan_vehicles"] == "keep" and params["trend"] is True
    _same(res.effects, de.limma_trend(logs, mode="separate", options=opts).effects)
    counts = count_samples(seed=2, n_genes=80)
    assert de.run(counts).effects.uns["perturbridge"]["params"]["trend"] is False


def test_method_defaults_fill_only_unset_options():
    opts = de.DEOptions(trend=False)
    assert opts.with_defaults(trend=True, chunk_size=7) == de.DEOptions(trend=False, chunk_size=7)
    assert de.DEOptions().with_defaults(trend=True, chunk_size=7).trend is True


def test_sparse_samples_give_the_same_effects():
    """Each fit reads its own rows of X (dense or sparse): the same numbers either way."""
    counts = count_samples(seed=3, n_genes=100, contexts=("U2OS", "HepG2"))
    dense = de.run(counts).effects
    counts.X = sparse.csr_matrix(counts.X)
    _same(de.run(counts).effects, dense)


def test_a_named_method_must_fit_the_values():
    logs = synthetic_samples(seed=4, n_genes=40)
    with pytest.raises(ValueError, match="limma-voom needs counts"):
        de.run(logs, method="voom")
    counts = count_samples(seed=4, n_genes=60)
    with pytest.raises(ValueError, match="limma-trend needs log expression"):
        de.run(counts, method="trend")


def test_unknown_method_engine_and_value_kind_are_errors():
    logs = synthetic_samples(seed=5, n_genes=40)
    with pytest.raises(ValueError, match=r"DE method must be one of \['auto', 'trend', 'voom'\]"):
        de.run(logs, method="deseq2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"DE engine must be one of \['python', 'r'\]"):
        de.run(logs, engine="julia")  # type: ignore[arg-type]
    logs.uns["perturbridge"]["value_kind"] = "tpm"
    with pytest.raises(SchemaError, match="value_kind"):
        de.run(logs)


@pytest.mark.r_oracle
def test_the_r_engine_runs_the_auto_method_through_r(tmp_path: Path, r_oracle):
    counts = count_samples(seed=6, n_genes=80)
    res = de.run(counts, engine="r", options=de.DEOptions(stdev_scaled=True))
    ref = limma_r(counts, method="voom", options=de.DEOptions(stdev_scaled=True))
    _same(res.effects, ref.effects)
    assert res.effects.uns["perturbridge"]["params"]["engine"] == "R"
