"""top_table / decide_tests: R limma's topTable / decideTests on the same fit, and the
edge cases (untested genes, filters, bad arguments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_limma import synthetic_samples

from conftest import run_r
from perturbridge.de import limma_trend
from perturbridge.de.toptable import decide_tests, p_adjust, top_table


@pytest.fixture(scope="module")
def effects():
    """A small limma-trend fit: 4 contrasts × 150 genes, some strong effects."""
    samples = synthetic_samples(
        seed=3, n_genes=150, n_plates=2, n_compounds=2, doses=(0.1, 1.0), times=(24.0,)
    )
    return limma_trend(samples).effects


def _fit_code(effects) -> tuple[str, dict[str, np.ndarray]]:
    """R code building an MArrayLM of ``effects``' layers (genes × contrasts; rownames
    are gene positions 1..G), and the vectors it reads."""
    vectors = {
        name: np.asarray(effects.layers[layer], dtype=float).T.ravel(order="F")
        for name, layer in (("M", "logFC"), ("T", "t"), ("P", "P.Value"), ("B", "B"))
    }
    vectors["A"] = np.asarray(effects.layers["AveExpr"], dtype=float)[0]
    code = (
        "g <- length(A)\n"
        "mk <- function(v) { m <- matrix(v, g); rownames(m) <- seq_len(g); m }\n"
        "fit <- new('MArrayLM', list(coefficients = mk(M), t = mk(T), p.value = mk(P), "
        "lods = mk(B), Amean = A))\n"
    )
    return code, vectors


#: (our sort_by, R's sort.by, number, adjust, p.value, lfc)
_TOP_CASES = [
    ("B", "B", 10, "BH", 1.0, 0.0),
    ("p", "P", 25, "BH", 1.0, 0.0),
    ("logFC", "logFC", 15, "BH", 1.0, 0.0),
    ("t", "t", 15, "holm", 1.0, 0.0),
    ("AveExpr", "AveExpr", 12, "BH", 1.0, 0.0),
    ("none", "none", 30, "BY", 1.0, 0.0),
    ("B", "B", None, "BH", 0.05, 0.0),
    ("p", "P", None, "BH", 0.2, 0.5),
    ("p", "P", 8, "bonferroni", 0.5, 0.3),
]


@pytest.mark.r_oracle
def test_top_table_matches_r(tmp_path: Path, r_oracle, effects):
    """Every case × contrast in one R run (one R start-up)."""
    code, vectors = _fit_code(effects)
    lines = ["out <- list()"]
    for c, (_, r_sort, n, adjust, p_value, lfc) in enumerate(_TOP_CASES):
        for j in range(effects.n_obs):
            lines.append(
                f"tt <- topTable(fit, coef = {j + 1}, number = {'Inf' if n is None else n}, "
                f"sort.by = '{r_sort}', adjust.method = '{adjust}', p.value = {p_value}, "
                f"lfc = {lfc})"
            )
            # a leading sentinel keeps every vector non-empty
            lines.append(
                f"out$idx_{c}_{j} <- c(-1, as.integer(rownames(tt))); "
                f"out$adj_{c}_{j} <- c(-1, tt$adj.P.Val); out$B_{c}_{j} <- c(-1, tt$B)"
            )
    r = run_r(code + "\n".join(lines), tmp_path, **vectors)
    n_rows = 0
    for c, (sort_by, _, n, adjust, p_value, lfc) in enumerate(_TOP_CASES):
        for j in range(effects.n_obs):
            case = f"case {_TOP_CASES[c]}, contrast {j}"
            ours = top_table(
                effects, j, sort_by=sort_by, n=n, adjust=adjust, p_value=p_value, lfc=lfc
            )
            positions = effects.var_names.get_indexer(ours.index) + 1
            assert positions.tolist() == r[f"idx_{c}_{j}"][1:].astype(int).tolist(), case
            np.testing.assert_allclose(
                ours["adj.P.Val"], r[f"adj_{c}_{j}"][1:], rtol=1e-12, atol=0, err_msg=case
            )
            np.testing.assert_allclose(ours["B"], r[f"B_{c}_{j}"][1:], rtol=1e-12, err_msg=case)
            assert list(ours.columns) == ["logFC", "AveExpr", "t", "P.Value", "adj.P.Val", "B"]
            n_rows += len(ours)
    assert n_rows > 200


@pytest.mark.r_oracle
@pytest.mark.parametrize(
    ("method", "adjust", "p_value", "lfc"),
    [("separate", "BH", 0.05, 0.0), ("global", "BH", 0.05, 0.0), ("separate", "holm", 0.1, 0.5)],
)
def test_decide_tests_matches_r(tmp_path: Path, r_oracle, effects, method, adjust, p_value, lfc):
    code, vectors = _fit_code(effects)
    r = run_r(
        code + f"d <- decideTests(fit, method = '{method}', adjust.method = '{adjust}', "
        f"p.value = {p_value}, lfc = {lfc})\nout <- list(d = as.vector(unclass(d)))",
        tmp_path,
        **vectors,
    )
    ours = decide_tests(effects, method=method, adjust=adjust, p_value=p_value, lfc=lfc)
    assert ours.shape == (effects.n_vars, effects.n_obs)
    expected = r["d"].reshape(effects.n_obs, effects.n_vars).T
    assert (ours.to_numpy(dtype=float) == expected).all()
    assert (expected != 0).sum() > 3  # the case calls genes both ways


@pytest.mark.r_oracle
@pytest.mark.parametrize("method", ["BH", "BY", "holm", "bonferroni", "none"])
def test_p_adjust_matches_r(tmp_path: Path, r_oracle, method):
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 1, 60), rng.uniform(0, 1e-4, 10), [0.5, 0.5, 1.0]])
    r = run_r(f"out <- list(q = p.adjust(p, method = '{method}'))", tmp_path, p=p)
    np.testing.assert_allclose(p_adjust(p, method), r["q"], rtol=1e-14, atol=0)


def test_limma_column_names_and_layers_agree(effects):
    tab = top_table(effects, effects.obs_names[1], n=None, sort_by="none")
    row = effects.obs_names.get_loc(effects.obs_names[1])
    assert list(tab.index) == list(effects.var_names)
    np.testing.assert_array_equal(tab["logFC"], effects.layers["logFC"][row])
    # BH over the contrast is the Effects' within-one-contrast adjustment
    np.testing.assert_allclose(
        tab["adj.P.Val"], effects.layers["adj.P.Value.within_one_contrast"][row], rtol=1e-12
    )
    ci = top_table(effects, 0, n=3, confint=True)
    expected = ["logFC", "CI.L", "CI.R", "AveExpr", "t", "P.Value", "adj.P.Val", "B"]
    assert list(ci.columns) == expected


def test_untested_genes_are_left_out_and_not_counted():
    """Hand-made Effects: gene g2 was not tested (NaN) in contrast c1."""
    import anndata as ad

    p = np.array([[0.01, 0.02, np.nan, 0.04], [0.01, 0.5, 0.03, 0.9]])
    layers = {
        "logFC": np.array([[1.0, -2.0, np.nan, 0.5], [0.2, -0.1, 3.0, 0.0]]),
        "t": np.array([[3.0, -4.0, np.nan, 2.0], [3.0, -0.5, 2.5, 0.1]]),
        "P.Value": p,
        "AveExpr": np.full((2, 4), 5.0),
        "B": np.array([[1.0, 2.0, np.nan, -1.0], [1.0, -3.0, 0.5, -4.0]]),
    }
    eff = ad.AnnData(
        X=layers["logFC"],
        obs=pd.DataFrame(index=["c1", "c2"]),
        var=pd.DataFrame(index=["g0", "g1", "g2", "g3"]),
        layers=layers,
    )
    tab = top_table(eff, "c1", n=None)
    assert list(tab.index) == ["g0", "g1", "g3"]  # by p; g2 not tested
    # BH over the 3 tested genes: 0.01*3/1, 0.02*3/2, 0.04*3/3
    np.testing.assert_allclose(tab["adj.P.Val"], [0.03, 0.03, 0.04])
    assert list(top_table(eff, "c1", sort_by="logFC", n=2).index) == ["g1", "g0"]
    assert list(top_table(eff, "c2", sort_by="B", n=None).index) == ["g0", "g2", "g1", "g3"]
    assert top_table(eff, "c1", p_value=0.001).empty
    calls = decide_tests(eff, p_value=0.05)
    assert calls.loc["g2", "c1"] is pd.NA
    assert calls["c1"].dropna().tolist() == [1, -1, 1]
    assert calls["c2"].tolist() == [1, 0, 0, 0]  # c2: BH 0.04, 0.667, 0.06, 0.9
    assert decide_tests(eff, lfc=1.5)["c1"].dropna().tolist() == [0, -1, 0]


def test_bad_arguments_are_named(effects):
    with pytest.raises(KeyError, match="contrast 'nope' not in these Effects"):
        top_table(effects, "nope")
    with pytest.raises(KeyError, match="out of range"):
        top_table(effects, 99)
    with pytest.raises(ValueError, match="sort_by must be one of"):
        top_table(effects, 0, sort_by="pvalue")
    with pytest.raises(ValueError, match="adjust must be one of"):
        decide_tests(effects, adjust="qvalue")
    with pytest.raises(ValueError, match="method must be 'separate' or 'global'"):
        decide_tests(effects, method="nestedF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lfc must be >= 0"):
        top_table(effects, 0, lfc=-1)
    no_b = effects.copy()
    del no_b.layers["B"]
    with pytest.raises(KeyError, match="no layer 'B'"):
        top_table(no_b, 0)
