"""edgeR count preprocessing (calcNormFactors, filterByExpr, cpm) held to R edgeR 3.40.

Three kinds of tests:

* R parity (``r_oracle``): seeded negative-binomial counts run through R edgeR and the
  port on the same data;
* golden parity, without R: R's outputs for one 40 × 300 case are stored under
  ``tests/de/golden/edger_*.tsv`` (regenerate with
  ``PYTHONPATH=src python tests/de/test_edger.py``, which needs R with edgeR);
* edge cases and every error path.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from perturbridge.de._edger import (
    FilterOptions,
    TMMOptions,
    _dqrdc2_columns,
    _hat_max,
    _r_mean,
    _r_sum,
    calc_norm_factors,
    cpm,
    filter_by_expr,
)
from perturbridge.de.r_limma import r_limma_status
from perturbridge.errors import PerturbridgeWarning

GOLDEN = Path(__file__).resolve().parent / "golden"
RTOL = 1e-12


# --- data ---------------------------------------------------------------------------


def nb_counts(
    seed: int,
    n_samples: int,
    n_genes: int,
    *,
    base_mean: float = 1.0,
    n_allzero: int = 5,
    fractional: bool = False,
) -> np.ndarray:
    """Negative-binomial counts, samples × genes.

    Library sizes vary 10×, one sample has a tiny library (2% of the smallest), gene
    means are log-normal (so many genes are low or zero and counts tie), 10% of the
    genes are 4× up in the first half of the samples, and ``n_allzero`` genes are zero
    everywhere.
    """
    rng = np.random.default_rng(seed)
    means = rng.lognormal(mean=base_mean, sigma=2.0, size=n_genes)
    lib = 10.0 ** rng.uniform(0.0, 1.0, size=n_samples)
    lib[rng.integers(n_samples)] = 0.02
    mu = np.outer(lib, means)
    de = rng.random(n_genes) < 0.1
    mu[: n_samples // 2, de] *= 4.0
    disp = 0.2
    y = rng.negative_binomial(1.0 / disp, 1.0 / (1.0 + mu * disp)).astype(float)
    y[:, rng.choice(n_genes, size=n_allzero, replace=False)] = 0.0
    y[y.sum(axis=1) == 0, 0] = 1.0  # every library non-empty
    if fractional:  # edgeR accepts non-integer counts (e.g. estimated counts)
        y = y * rng.uniform(0.5, 1.5, size=y.shape)
    return y


def plate_design(seed: int, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unbalanced groups and plates: (group codes, ``~group + plate``, ``~0 + group + plate``)."""
    rng = np.random.default_rng(seed + 1000)
    first = [0, 0, 1, 1, 1, 2, 2]  # every group at least twice (once in tiny designs)
    rest = rng.choice(3, max(n_samples - 7, 0), p=[0.55, 0.3, 0.15])
    group = np.concatenate([first, rest])[:n_samples].astype(int)
    plate = rng.choice(3, n_samples, p=[0.6, 0.3, 0.1])
    plate[:3] = [0, 1, 2]
    g = np.eye(3)[group]
    p = np.eye(3)[plate]
    additive = np.column_stack([np.ones(n_samples), g[:, 1:], p[:, 1:]])
    cell_means = np.column_stack([g, p[:, 1:]])
    return group, additive, cell_means


CASES: dict[str, tuple[int, int, int, dict[str, Any]]] = {
    # name: (seed, n_samples, n_genes, kwargs)
    "s6x200": (1, 6, 200, {}),
    "s40x300": (2, 40, 300, {}),
    "s97x2000": (3, 97, 2000, {}),
    "low12x500": (4, 12, 500, {"base_mean": -1.0, "n_allzero": 40}),
    "frac10x300": (5, 10, 300, {"fractional": True}),
}


def case_counts(name: str) -> np.ndarray:
    seed, n, g, kw = CASES[name]
    return nb_counts(seed, n, g, **kw)


def tie_case() -> tuple[np.ndarray, np.ndarray]:
    """Two samples whose TMM log-ratios tie exactly, as R computes them.

    Both library sizes are 2**12, so ``obs/nO`` and ``ref/nR`` are exact and
    ``log2((obs/nO)/(ref/nR))`` is ``log2`` of the count ratio: 8 genes at ratio 1/4
    (ranks 1-8), 8 at 1/2 (ranks 9-16, average rank 12.5), 14 at 1 and 10 at 3. With 40
    genes the log-ratio trim keeps ranks 13-28: the ratio-1/2 group goes as a whole and
    only ratio 1 is left, so the factors are 1. Written as ``log2(obs/nO) - log2(ref/nR)``
    the ratio-1/2 values differ by an ulp, ranks 13-16 enter, and the factor drops ~12%.
    """
    pairs = (
        [(k, 4 * k) for k in range(1, 9)]
        + [(k, 2 * k) for k in range(3, 18, 2)]
        + [(k, k) for k in range(20, 34)]
        + [(3 * k, k) for k in range(2, 12)]
    )
    obs, ref = np.array(pairs, dtype=float).T
    return np.vstack([obs, ref]), np.array([2.0**12, 2.0**12])


def tmm_rewritten(obs: np.ndarray, ref: np.ndarray, n_o: float, n_r: float) -> float:
    """TMM (default trims, weighted) with logR written as a difference of logs.

    The wrong way to port edgeR, kept here only to show the test catches it.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log2(obs / n_o) - np.log2(ref / n_r)
        abs_e = (np.log2(obs / n_o) + np.log2(ref / n_r)) / 2
        v = (n_o - obs) / n_o / obs + (n_r - ref) / n_r / ref
    fin = np.isfinite(log_r) & np.isfinite(abs_e)
    log_r, abs_e, v = log_r[fin], abs_e[fin], v[fin]
    n = log_r.size
    lo_l = math.floor(n * 0.3) + 1
    lo_s = math.floor(n * 0.05) + 1
    rr = stats.rankdata(log_r)
    re = stats.rankdata(abs_e)
    keep = (rr >= lo_l) & (rr <= n + 1 - lo_l) & (re >= lo_s) & (re <= n + 1 - lo_s)
    return 2.0 ** (_r_sum(log_r[keep] / v[keep]) / _r_sum(1 / v[keep]))


# --- the R runner -------------------------------------------------------------------


@pytest.fixture(scope="session")
def edger_oracle(r_oracle) -> None:
    """Skip unless R with limma, edgeR and statmod is available (see ``r_oracle``)."""


def run_edger(code: str, workdir: Path, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Run R ``code`` with edgeR loaded; returns the named list ``out`` as arrays.

    2-D ``inputs`` are samples × genes (or samples × coefficients for a design) and
    reach R transposed, as genes × samples, except names starting with ``design``,
    which stay samples × coefficients. 1-D inputs are numeric vectors. Values travel as
    text with ``%.17g`` and come back with ``format(x, digits = 17)``; R matrices come
    back in the samples × genes orientation, logical results as 0/1.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    loads = []
    shapes: dict[str, tuple[int, ...]] = {}
    for name, value in inputs.items():
        arr = np.asarray(value, dtype=float)
        path = workdir / f"in_{name}.txt"
        if arr.ndim == 2:
            mat = arr if name.startswith("design") else arr.T
            np.savetxt(path, mat, fmt="%.17g")
            loads.append(
                f'{name} <- matrix(scan("{path}", quiet = TRUE), nrow = {mat.shape[0]}, '
                f"ncol = {mat.shape[1]}, byrow = TRUE)"
            )
            shapes[name] = arr.shape
        else:
            np.savetxt(path, np.atleast_1d(arr), fmt="%.17g")
            loads.append(f'{name} <- scan("{path}", quiet = TRUE)')
    script = "\n".join(
        [
            "suppressMessages(library(edgeR))",
            *loads,
            code,
            "for (k in names(out)) {",
            "  v <- out[[k]]",
            "  if (is.logical(v)) v <- as.integer(v)",
            "  if (is.matrix(v)) { d <- dim(v); v <- as.vector(v) } else d <- length(v)",
            f'  writeLines(paste(d, collapse = " "), file.path("{workdir}", paste0("dim_", k)))',
            f'  write(format(v, digits = 17), file.path("{workdir}", paste0("out_", k)), '
            "ncolumns = 1)",
            "}",
        ]
    )
    (workdir / "run.R").write_text(script)
    proc = subprocess.run(
        ["Rscript", str(workdir / "run.R")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"R failed:\n{proc.stderr}")
    out = {}
    for path in workdir.glob("out_*"):
        key = path.name[4:]
        dims = [int(d) for d in (workdir / f"dim_{key}").read_text().split()]
        vals = np.loadtxt(path, ndmin=1)
        # an R genes × samples matrix, column-major = samples × genes in C order
        out[key] = vals.reshape(dims[::-1]) if len(dims) == 2 else vals
    return out


R_ALL = """
out <- list(
  tmm = calcNormFactors(y),
  tmm_noweight = calcNormFactors(y, doWeighting = FALSE),
  tmm_ref0 = calcNormFactors(y, refColumn = 1),
  tmm_trim = calcNormFactors(y, logratioTrim = 0.2, sumTrim = 0.1, Acutoff = -20),
  tmm_lib = calcNormFactors(y, lib.size = lib_user),
  uq = calcNormFactors(y, method = "upperquartile", p = uq_p),
  uq75_no_tiny = calcNormFactors(y[, -which.min(colSums(y))], method = "upperquartile"),
  none = calcNormFactors(y, method = "none"),
  keep_design = filterByExpr(y, design = design_add),
  keep_design_cm = filterByExpr(y, design = design_cm),
  keep_design_int = filterByExpr(y, design = matrix(1, ncol(y), 1)),
  keep_group = filterByExpr(y, group = group),
  keep_none = suppressMessages(filterByExpr(y)),
  keep_lib = filterByExpr(y, group = group, lib.size = lib_user, min.count = 5,
                          min.total.count = 30, large.n = 3, min.prop = 0.5)
)
nf <- out$tmm
d <- DGEList(y, norm.factors = nf)
out$cpm <- cpm(y)
out$logcpm <- cpm(y, log = TRUE)
out$cpm_nf <- cpm(d)
out$logcpm_nf <- cpm(d, log = TRUE, prior.count = 0.5)
out$logcpm_lib <- cpm(y, lib.size = lib_user, log = TRUE, prior.count = 3)
"""


def python_all(y: np.ndarray, group, design_add, design_cm, lib_user, uq_p) -> dict:
    """The port's counterparts of ``R_ALL``."""
    nf = calc_norm_factors(y)
    return {
        "tmm": nf,
        "tmm_noweight": calc_norm_factors(y, tmm=TMMOptions(do_weighting=False)),
        "tmm_ref0": calc_norm_factors(y, ref_sample=0),
        "tmm_trim": calc_norm_factors(
            y, tmm=TMMOptions(logratio_trim=0.2, sum_trim=0.1, a_cutoff=-20)
        ),
        "tmm_lib": calc_norm_factors(y, lib_size=lib_user),
        "uq": calc_norm_factors(y, method="upperquartile", p=uq_p),
        "uq75_no_tiny": calc_norm_factors(
            np.delete(y, np.argmin(y.sum(axis=1)), axis=0), method="upperquartile"
        ),
        "none": calc_norm_factors(y, method="none"),
        "keep_design": filter_by_expr(y, design=design_add),
        "keep_design_cm": filter_by_expr(y, design=design_cm),
        "keep_design_int": filter_by_expr(y, design=np.ones((y.shape[0], 1))),
        "keep_group": filter_by_expr(y, group=group),
        "keep_none": filter_by_expr(y),
        "keep_lib": filter_by_expr(
            y,
            group=group,
            lib_size=lib_user,
            options=FilterOptions(min_count=5, min_total_count=30, large_n=3, min_prop=0.5),
        ),
        "cpm": cpm(y),
        "logcpm": cpm(y, log=True),
        "cpm_nf": cpm(y, norm_factors=nf),
        "logcpm_nf": cpm(y, norm_factors=nf, log=True, prior_count=0.5),
        "logcpm_lib": cpm(y, lib_size=lib_user, log=True, prior_count=3),
    }


def case_inputs(name: str) -> dict[str, np.ndarray]:
    y = case_counts(name)
    seed, n, _, _ = CASES[name]
    group, design_add, design_cm = plate_design(seed, n)
    rng = np.random.default_rng(seed + 2000)

    def uq(p: float) -> np.ndarray:
        return np.quantile(y[:, y.sum(axis=0) > 0], p, axis=1)

    return {
        "y": y,
        "group": group,
        "design_add": design_add,
        "design_cm": design_cm,
        "lib_user": np.round(y.sum(axis=1) * rng.uniform(0.8, 1.2, n), 3),
        # the tiny library has a zero upper quartile in some cases; a higher one then
        "uq_p": np.array([next(p for p in (0.75, 0.9, 0.95, 0.99) if np.all(uq(p) > 0))]),
    }


def assert_matches(key: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    if key.startswith("keep"):
        np.testing.assert_array_equal(ours.astype(int), theirs.astype(int), err_msg=key)
    elif key.startswith("logcpm"):  # logs near 0: absolute
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=RTOL, err_msg=key)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0, err_msg=key)


# --- R parity -----------------------------------------------------------------------


@pytest.mark.r_oracle
@pytest.mark.parametrize("name", list(CASES))
def test_matches_r(tmp_path: Path, edger_oracle, name: str):
    inp = case_inputs(name)
    r = run_edger(R_ALL, tmp_path, **inp)
    ours = python_all(
        inp["y"],
        inp["group"],
        inp["design_add"],
        inp["design_cm"],
        inp["lib_user"],
        float(inp["uq_p"][0]),
    )
    assert set(ours) == set(r)
    for key, val in ours.items():
        assert_matches(key, val, r[key])
    # the filters are not trivial on these data
    assert 0 < r["keep_design"].sum() < inp["y"].shape[1]
    assert not np.array_equal(r["tmm"], r["tmm_noweight"])


@pytest.mark.r_oracle
def test_tmm_reference_choice_and_tiny_library_match_r(tmp_path: Path, edger_oracle):
    """Median upper quartile below 1e-20 (mostly-zero counts): ref = max sum of sqrt counts."""
    y = nb_counts(11, 8, 400) * (np.random.default_rng(11).random((8, 400)) < 0.2)
    nonzero = y[:, y.sum(axis=0) > 0]
    assert np.median(np.quantile(nonzero, 0.75, axis=1) / y.sum(axis=1)) < 1e-20
    r = run_edger("out <- list(f = calcNormFactors(y))", tmp_path, y=y)
    np.testing.assert_allclose(calc_norm_factors(y), r["f"], rtol=RTOL, atol=0)


@pytest.mark.r_oracle
def test_upperquartile_zero_quantile_matches_r(tmp_path: Path, edger_oracle):
    y = nb_counts(12, 6, 300, base_mean=-2.0)
    r = run_edger(
        'out <- list(f = suppressWarnings(calcNormFactors(y, method = "upperquartile")))',
        tmp_path,
        y=y,
    )
    with pytest.warns(PerturbridgeWarning, match="quantiles are zero"):
        ours = calc_norm_factors(y, method="upperquartile")
    assert not np.isfinite(r["f"]).all()
    np.testing.assert_array_equal(ours, r["f"])  # NaN and Inf where R has them


@pytest.mark.r_oracle
def test_tmm_logratio_literal_port_matches_r_rewrite_does_not(tmp_path: Path, edger_oracle):
    y, lib = tie_case()
    r = run_edger(
        "out <- list(f = calcNormFactors(y, lib.size = lib), "
        "f1 = calcNormFactors(y, lib.size = lib, refColumn = 2))",
        tmp_path,
        y=y,
        lib=lib,
    )
    np.testing.assert_allclose(calc_norm_factors(y, lib_size=lib), r["f"], rtol=RTOL, atol=0)
    ours = calc_norm_factors(y, lib_size=lib, ref_sample=1)
    np.testing.assert_allclose(ours, r["f1"], rtol=RTOL, atol=0)
    np.testing.assert_array_equal(r["f1"], [1.0, 1.0])
    f = tmm_rewritten(y[0], y[1], lib[0], lib[1])
    rewritten = np.array([f, 1.0]) / math.sqrt(f)
    assert np.max(np.abs(rewritten / r["f1"] - 1)) > 0.05


@pytest.mark.r_oracle
def test_hat_and_qr_columns_match_r(tmp_path: Path, edger_oracle):
    """``hat(design)`` and the columns R's ``qr`` keeps, incl. collinear and wide designs."""
    _, add, cm = plate_design(2, 40)
    rng = np.random.default_rng(5)
    near = np.column_stack([add, add[:, 1] + 1e-9 * rng.standard_normal(40)])  # below 1e-7
    designs = {"add": add, "cm": cm, "near": near, "wide": np.eye(40)[:, :39], "one": add[:, :1]}
    code = "out <- list(" + ", ".join(
        f"hat_{k} = max(hat(design_{k})), "
        f"piv_{k} = {{q <- qr(cbind(1, design_{k})); q$pivot[seq_len(q$rank)] - 1}}"
        for k in designs
    )
    r = run_edger(code + ")", tmp_path, **{f"design_{k}": v for k, v in designs.items()})
    for k, d in designs.items():
        x = np.column_stack([np.ones(d.shape[0]), d])
        np.testing.assert_array_equal(_dqrdc2_columns(x), r[f"piv_{k}"], err_msg=k)
        np.testing.assert_allclose(_hat_max(d), r[f"hat_{k}"], rtol=1e-12, err_msg=k)


@pytest.mark.r_oracle
def test_golden_files_are_r_output(tmp_path: Path, edger_oracle):
    """The stored golden outputs are what R gives today (guards against stale files)."""
    golden = read_golden()
    fresh = r_golden(tmp_path)
    for key, val in golden.items():
        want = fresh[key][:, GOLDEN_GENES] if key.startswith(("cpm", "logcpm")) else fresh[key]
        np.testing.assert_array_equal(val, want, err_msg=key)


# --- golden parity (no R needed) ----------------------------------------------------

GOLDEN_CASE = "s40x300"
GOLDEN_GENES = np.arange(0, 300, 20)  # the genes whose cpm are stored


def input_sha256(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()[:16]


def r_golden(workdir: Path) -> dict[str, np.ndarray]:
    """R's outputs for the golden case, plus the tie case."""
    inp = case_inputs(GOLDEN_CASE)
    r = run_edger(R_ALL, workdir / "main", **inp)
    y, lib = tie_case()
    t = run_edger(
        "out <- list(f = calcNormFactors(y, lib.size = lib, refColumn = 2))",
        workdir / "tie",
        y=y,
        lib=lib,
    )
    r["tie"] = t["f"]
    return r


def _write_table(path: Path, header: str, columns: Mapping[str, Sequence[float]]) -> None:
    """A TSV with a ``#`` header line; masks and indices as integers, values round-trip."""
    names = list(columns)
    is_int = [k.startswith("keep") or k in ("sample", "gene") for k in names]
    lines = [f"# {header}", "\t".join(names)]
    for row in zip(*(columns[k] for k in names), strict=True):
        lines.append(
            "\t".join(
                str(int(v)) if i else repr(float(v)) for v, i in zip(row, is_int, strict=True)
            )
        )
    path.write_text("\n".join(lines) + "\n")


def write_golden(workdir: Path) -> None:
    """Write ``tests/de/golden/edger_*.tsv`` from R (needs R with edgeR)."""
    why = r_limma_status()
    if why is not None:
        raise RuntimeError(why)
    r = r_golden(workdir)
    inp = case_inputs(GOLDEN_CASE)
    sha = input_sha256(*inp.values())
    GOLDEN.mkdir(exist_ok=True)
    header = f"R edgeR output for case {GOLDEN_CASE} (inputs sha256 {sha}); see test_edger.py"
    factor_keys = ["tmm", "tmm_noweight", "tmm_ref0", "tmm_trim", "tmm_lib", "uq", "none"]
    cols = {k: [float(v) for v in r[k]] for k in factor_keys}
    cols["uq75_no_tiny"] = [*(float(v) for v in r["uq75_no_tiny"]), math.nan]
    _write_table(GOLDEN / "edger_norm_factors.tsv", header, cols)
    keep_keys = [k for k in r if k.startswith("keep")]
    _write_table(
        GOLDEN / "edger_filter_by_expr.tsv",
        header,
        {k: [float(v) for v in r[k]] for k in keep_keys},
    )
    n = inp["y"].shape[0]
    cpm_keys = ["cpm", "logcpm", "cpm_nf", "logcpm_nf", "logcpm_lib"]
    cpm_cols = {
        "sample": [float(s) for s in np.repeat(np.arange(n), GOLDEN_GENES.size)],
        "gene": [float(g) for g in np.tile(GOLDEN_GENES, n)],
    }
    for k in cpm_keys:
        cpm_cols[k] = [float(v) for v in r[k][:, GOLDEN_GENES].ravel()]
    _write_table(GOLDEN / "edger_cpm.tsv", header, cpm_cols)
    y, lib = tie_case()
    tie_sha = input_sha256(y, lib)
    _write_table(
        GOLDEN / "edger_tmm_ties.tsv",
        f"R edgeR calcNormFactors(y, lib.size = lib, refColumn = 2) of tie_case() "
        f"(inputs sha256 {tie_sha})",
        {"tie": [float(v) for v in r["tie"]]},
    )


def _read_table(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    lines = path.read_text().splitlines()
    names = lines[1].split("\t")
    data = np.loadtxt(lines[2:], delimiter="\t", ndmin=2)
    return lines[0], {k: data[:, i] for i, k in enumerate(names)}


def read_golden() -> dict[str, np.ndarray]:
    """The golden outputs, in the layout ``python_all`` returns."""
    out: dict[str, np.ndarray] = {}
    inp = case_inputs(GOLDEN_CASE)
    n = inp["y"].shape[0]
    for stem in ("norm_factors", "filter_by_expr", "cpm"):
        header, cols = _read_table(GOLDEN / f"edger_{stem}.tsv")
        sha = input_sha256(*inp.values())
        if sha not in header:
            pytest.fail(
                f"the generated inputs of {GOLDEN_CASE} changed (sha256 {sha} not in the golden "
                f"header {header!r}); regenerate with: PYTHONPATH=src python {__file__}"
            )
        for k, v in cols.items():
            if k in ("sample", "gene"):
                continue
            if stem == "cpm":
                v = v.reshape(n, GOLDEN_GENES.size)
            elif k == "uq75_no_tiny":  # one sample fewer, padded with NaN
                v = v[:-1]
            out[k] = v
    header, cols = _read_table(GOLDEN / "edger_tmm_ties.tsv")
    assert input_sha256(*tie_case()) in header
    out["tie"] = cols["tie"]
    return out


def test_golden_files_are_small():
    files = sorted(GOLDEN.glob("edger_*"))
    assert files
    for f in files:
        assert f.stat().st_size < 100_000, f


def test_matches_golden_r_output():
    golden = read_golden()
    inp = case_inputs(GOLDEN_CASE)
    ours = python_all(
        inp["y"],
        inp["group"],
        inp["design_add"],
        inp["design_cm"],
        inp["lib_user"],
        float(inp["uq_p"][0]),
    )
    for key, val in ours.items():
        if key.startswith(("cpm", "logcpm")):
            val = val[:, GOLDEN_GENES]
        assert_matches(key, val, golden[key])
    y, lib = tie_case()
    assert_matches("tie", calc_norm_factors(y, lib_size=lib, ref_sample=1), golden["tie"])


def test_tie_case_is_sensitive_to_the_logratio_expression():
    """Without R: the literal port keeps the ties, the rewrite breaks them and moves f."""
    y, lib = tie_case()
    with np.errstate(divide="ignore"):
        literal = np.log2((y[0] / lib[0]) / (y[1] / lib[1]))
        rewritten = np.log2(y[0] / lib[0]) - np.log2(y[1] / lib[1])
    ratio = y[0] / y[1]
    for r in np.unique(ratio):  # literal: one value per count ratio
        assert np.unique(literal[ratio == r]).size == 1
    assert np.unique(rewritten).size > np.unique(literal).size
    np.testing.assert_array_equal(calc_norm_factors(y, lib_size=lib, ref_sample=1), [1.0, 1.0])
    assert tmm_rewritten(y[0], y[1], lib[0], lib[1]) < 0.9


# --- kernels and edge cases ---------------------------------------------------------


def test_factors_multiply_to_one_and_zero_genes_do_not_matter():
    y = case_counts("s6x200")
    for method in ("TMM", "upperquartile", "none"):
        f = calc_norm_factors(y, method=method, p=0.9)
        assert f.shape == (6,)
        assert math.isclose(float(np.prod(f)), 1.0, rel_tol=1e-14)
    nonzero = y[:, y.sum(axis=0) > 0]
    assert nonzero.shape[1] < y.shape[1]
    np.testing.assert_array_equal(calc_norm_factors(y), calc_norm_factors(nonzero))


def test_degenerate_inputs_give_unit_factors():
    y = case_counts("s6x200")
    np.testing.assert_array_equal(calc_norm_factors(y[:1]), [1.0])
    np.testing.assert_array_equal(calc_norm_factors(np.vstack([y[0], y[0], y[0]])), np.ones(3))
    # no gene non-zero in any sample: all-zero genes go, "none" remains
    lib = np.array([5.0, 7.0])
    np.testing.assert_array_equal(calc_norm_factors(np.zeros((2, 4)), lib_size=lib), np.ones(2))


def test_counts_need_not_be_integers_and_input_is_not_changed():
    y = case_counts("frac10x300")
    copy = y.copy()
    calc_norm_factors(y)
    filter_by_expr(y)
    cpm(y, log=True)
    np.testing.assert_array_equal(y, copy)
    ints = case_counts("s6x200").astype(np.int64)
    np.testing.assert_array_equal(calc_norm_factors(ints), calc_norm_factors(ints.astype(float)))


def test_cpm_against_naive_formulas():
    y = case_counts("s6x200")
    lib = y.sum(axis=1)
    nf = calc_norm_factors(y)
    np.testing.assert_allclose(cpm(y), y / lib[:, None] * 1e6, rtol=1e-14)
    eff = lib * nf
    prior = 2 * eff / eff.mean()
    naive = np.log2((y + prior[:, None]) / (eff + 2 * prior)[:, None] * 1e6)
    np.testing.assert_allclose(cpm(y, norm_factors=nf, log=True), naive, rtol=0, atol=1e-12)
    zero = cpm(np.array([[0.0, 2.0], [1.0, 1.0]]), log=True, prior_count=0)
    assert np.isnan(zero[0, 0])
    assert np.isfinite(zero[1]).all()
    assert cpm(np.zeros((3, 0))).shape == (3, 0)


def test_filter_by_expr_group_takes_precedence_and_thresholds():
    # libraries 100, 60, 30, 30: CPM cutoff 10 / 45 * 1e6; R gives the same masks
    y = np.array([[10.0, 0, 50, 40], [10, 0, 50, 0], [10, 20, 0, 0], [10, 20, 0, 0]])
    group = np.array(["a", "a", "b", "b"])
    design = np.eye(4)  # hat values 1: one sample suffices
    np.testing.assert_array_equal(filter_by_expr(y, group=group), [True, True, True, False])
    np.testing.assert_array_equal(
        filter_by_expr(y, group=group, design=design), filter_by_expr(y, group=group)
    )
    np.testing.assert_array_equal(filter_by_expr(y, design=design), [True, True, True, True])
    np.testing.assert_array_equal(filter_by_expr(y), [False, False, False, False])


def test_r_reductions():
    x = np.array([1e16, 1.0, -1e16, 1.0, 3.5])
    assert _r_sum(x) == 5.5  # long double keeps the 1s that a double sum loses
    assert _r_mean([0.1, 0.2, 0.4]) == 0.23333333333333334  # R: format(mean(...), digits=17)
    assert math.isnan(_r_mean([]))


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("func", [calc_norm_factors, filter_by_expr, cpm])
def test_count_errors(func):
    y = np.ones((3, 4))
    bad = y.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"finite; found NaN/inf at \(sample 1, gene 2\): nan"):
        func(bad)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"\(sample 1, gene 2\): inf"):
        func(bad)
    neg = y.copy()
    neg[2, 0] = -1.5
    neg[2, 3] = -2
    with pytest.raises(ValueError, match=r"non-negative.*\(sample 2, gene 0\): -1.5.*gene 3"):
        func(neg)
    with pytest.raises(ValueError, match=r"2-D array \(samples × genes\); found 1"):
        func(np.ones(4))
    with pytest.raises(TypeError, match="numeric"):
        func(np.array([["1", "2"]]))
    with pytest.raises(ValueError, match=r"lib_size must have one value per sample, shape \(3,\)"):
        func(y, lib_size=np.ones(4))
    with pytest.raises(ValueError, match=r"lib_size must be finite and positive; found sample 1"):
        func(y, lib_size=np.array([1.0, 0.0, 2.0]))
    empty = y.copy()
    empty[0] = 0
    with pytest.raises(ValueError, match=r"library sizes .* positive; found sample 0: 0.0"):
        func(empty)


def test_calc_norm_factors_errors():
    y = case_counts("s6x200")
    with pytest.raises(ValueError, match=r"method must be one of .*found 'RLE'"):
        calc_norm_factors(y, method="RLE")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ref_sample must be a sample index in \[0, 5\]"):
        calc_norm_factors(y, ref_sample=6)
    with pytest.raises(ValueError, match="ref_sample"):
        calc_norm_factors(y, ref_sample=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"logratio_trim must lie in \[0.0, 0.5\]"):
        calc_norm_factors(y, tmm=TMMOptions(logratio_trim=0.6))
    with pytest.raises(ValueError, match=r"p must lie in \[0.0, 1.0\]"):
        calc_norm_factors(y, method="upperquartile", p=1.5)


def test_filter_by_expr_errors():
    y = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"group must have one label per sample, shape \(3,\)"):
        filter_by_expr(y, group=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"missing labels; found NaN at samples \[1\]"):
        filter_by_expr(y, group=np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match=r"missing labels; found None at samples \[2\]"):
        filter_by_expr(y, group=np.array(["a", "b", None], dtype=object))
    with pytest.raises(ValueError, match=r"one row per sample, \(3, p\); found shape \(2, 2\)"):
        filter_by_expr(y, design=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"design must be finite; found NaN/inf in rows \[0\]"):
        filter_by_expr(y, design=np.array([[np.nan], [1.0], [1.0]]))


def test_cpm_errors():
    y = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"norm_factors must have one value per sample"):
        cpm(y, norm_factors=np.ones(2))
    with pytest.raises(
        ValueError,
        match=r"lib_size \* norm_factors must be finite and positive; found sample 2: -4.0",
    ):
        cpm(y, norm_factors=np.array([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match=r"prior_count must be finite and non-negative"):
        cpm(y, log=True, prior_count=-1)


def test_upperquartile_zero_quantile_warns():
    y = np.array([[0.0, 0, 0, 0, 5], [1, 2, 3, 4, 5]])
    with pytest.warns(PerturbridgeWarning, match="One or more quantiles are zero"):
        f = calc_norm_factors(y, method="upperquartile")
    assert not np.isfinite(f).all()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_golden(Path(tmp))
    print(f"wrote {sorted(p.name for p in GOLDEN.glob('edger_*'))}", file=sys.stderr)


def test_average_rank_within_matches_ranking() -> None:
    """TMM's trimming by average ranks without ranking equals rank-then-compare,
    including ties at the trimming boundaries and out-of-range bounds."""
    from scipy import stats

    from perturbridge.de._edger import _average_rank_within

    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(1, 60))
        x = rng.integers(0, rng.integers(1, 10), n).astype(float)
        lo = int(rng.integers(-2, n + 3))
        hi = int(rng.integers(lo - 2, n + 4))
        r = stats.rankdata(x, method="average")
        np.testing.assert_array_equal(_average_rank_within(x, lo, hi), (r >= lo) & (r <= hi))
