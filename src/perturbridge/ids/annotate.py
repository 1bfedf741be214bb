"""Resolve the identities of Samples through a reference store: compounds, cells, genes.

:func:`annotate_samples` is what a source adapter (or a user, on any Samples) calls
after reading the upstream files:

- **Compounds** (rows that are not vehicles): the strongest identifier the upstream gave
  is tried first — its InChIKey (``compound_inchikey``), then SMILES (an extra
  ``compound_smiles`` column), then its compound id (``compound_id_source``: Broad ids,
  CAS, CIDs, vendor ids), then the name (``perturbagen``). The first that resolves
  decides. ``compound_parent_inchikey`` and ``pubchem_cid`` are filled in,
  ``compound_inchikey`` only where the upstream gave none (an upstream key is never
  replaced). ``compound_status`` says ``resolved``, ``ambiguous`` (with the candidates
  in the ledger) or ``unresolved``.
- **Cells**: a ``cell_context`` that is already an accession (``CVCL_…``, ``CL:…``)
  is kept; otherwise ``cell_name`` is resolved and ``cell_context`` becomes the
  Cellosaurus / Cell Ontology accession. ``cell_status`` as for compounds; an unresolved
  cell keeps its upstream name as ``cell_context``.
- **Biology** (with a ``cells`` table): the biology columns
  (:data:`~perturbridge.schema.BIOLOGY_COLUMNS`) that are still ``unknown`` are filled
  from the cell context's reference records (:class:`~perturbridge.ids.biology.CellBiology`:
  organism, tissue, disease, sex, development stage, …); values the adapter stated for
  its dataset stay. ``biology_source`` gets ``column=source`` for each filled value. A
  reference store without the biology fields (built before them) fills what it has and
  notes the rest in the ledger (stage ``ids_biology``, reason ``reference_fields_missing``).
- **Genes** (optional): ``var`` is re-keyed by current Ensembl gene id with
  :func:`~perturbridge.ids.genes.collapse_genes` (counts of one gene are summed; log
  values need an explicit ``gene_rule``). Input genes without an Ensembl id stay, under
  their upstream id, with ``var["gene_status"]`` saying why (``keep_unresolved_genes``).

Nothing is dropped: every sample stays, and the ledger gets a note (stage
``ids_compounds`` / ``ids_cells`` / ``ids_genes``, status ``kept``, reason
``unresolved`` or ``ambiguous``) for each sample or gene whose identity is not resolved.
Statuses (``compound_status``, ``cell_status``, ``var["gene_status"]``) use the one
vocabulary of :mod:`perturbridge.ids`: ``resolved``, ``ambiguous``, ``unresolved``
(``gene_status`` may also say ``no_ensembl``: a resolved gene without an Ensembl id).

Why this module is in :mod:`perturbridge.ids`
--------------------------------------------
It applies identifiers to Samples held in memory (an AnnData object and its ``obs``/``var``
frames) and never opens or writes a file: reading and writing Samples on disk stays with
the pipeline (:mod:`perturbridge.compendium`) and the CLI, which call it. It is the one
place where identities are resolved for every source alike, so it belongs with the
resolvers it drives; it depends only on the bottom of the house (:mod:`perturbridge.samples`,
:mod:`perturbridge.schema`, :mod:`perturbridge.ledger`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from ..ledger import Ledger
from ..samples import biology_values, coerce_obs
from ..schema import BIOLOGY_COLUMNS, BIOLOGY_SOURCE, UNKNOWN, validate_samples
from ._frames import missing_as_none, none_where_not
from .biology import CellBiology
from .cells import CellResolver
from .compounds import CompoundResolver
from .genes import GeneResolver, collapse_genes
from .reader import RefStoreReader

__all__ = ["ACCESSION_PATTERN", "IdentityResolvers", "annotate_samples"]

#: A cell context that is already an accession (Cellosaurus or Cell Ontology).
ACCESSION_PATTERN = re.compile(r"^(CVCL_[A-Z0-9]{4}|CL:\d{7})$")
#: Compound identifier columns of ``obs``, strongest first, with the resolver's kind.
COMPOUND_QUERIES: tuple[tuple[str, str], ...] = (
    ("compound_inchikey", "inchikey"),
    ("compound_smiles", "smiles"),
    ("compound_id_source", "auto"),
    ("perturbagen", "auto"),
)


@dataclass
class IdentityResolvers:
    """The resolvers, built once from a reference store and reused."""

    compounds: CompoundResolver | None = None
    cells: CellResolver | None = None
    genes: GeneResolver | None = None
    biology: CellBiology | None = None

    @classmethod
    def from_store(cls, store: RefStoreReader | str) -> IdentityResolvers:
        st = store if isinstance(store, RefStoreReader) else RefStoreReader.open(store)
        names = set(st.tables)
        return cls(
            compounds=CompoundResolver.from_store(st) if "compounds" in names else None,
            cells=CellResolver.from_store(st) if "cells" in names else None,
            genes=GeneResolver.from_store(st) if "genes" in names else None,
            biology=CellBiology.from_store(st) if "cells" in names else None,
        )


def _text(values: pd.Series) -> pd.Series:
    s = values.astype(object)
    return none_where_not(s, s.notna() & (s.astype(str).str.strip() != ""))


def _resolve_compounds(
    obs: pd.DataFrame, resolver: CompoundResolver, ledger: Ledger
) -> pd.DataFrame:
    obs = obs.copy()
    todo = ~obs["is_control"].to_numpy(dtype=bool)
    n = len(obs)
    status = np.full(n, None, dtype=object)
    parent = np.full(n, None, dtype=object)
    inchikey = np.full(n, None, dtype=object)
    cid = np.full(n, None, dtype=object)
    how = np.full(n, "", dtype=object)
    candidates = np.full(n, "", dtype=object)
    open_ = todo.copy()
    for col, kind in COMPOUND_QUERIES:
        if col not in obs.columns or not open_.any():
            continue
        values = _text(obs[col])
        rows = np.flatnonzero(open_ & values.notna().to_numpy())
        if not len(rows):
            continue
        uniq = pd.unique(values.iloc[rows].astype(str))
        res = resolver.resolve(list(uniq), kind=kind).set_index(pd.Index(uniq))
        got = res.reindex(values.iloc[rows].astype(str).to_numpy())
        ok = (got["status"] == "resolved").to_numpy()
        hit = rows[ok]
        status[hit] = "resolved"
        parent[hit] = got["parent_inchikey"].to_numpy()[ok]
        inchikey[hit] = got["inchikey"].to_numpy()[ok]
        cid[hit] = got["pubchem_cid"].to_numpy()[ok]
        how[hit] = [f"{col}:{m}" for m in got["match_type"].to_numpy()[ok]]
        amb = (got["status"] == "ambiguous").to_numpy() & (status[rows] != "ambiguous")
        status[rows[amb]] = "ambiguous"
        candidates[rows[amb]] = [
            f"{col} {q!r}: {c}"
            for q, c in zip(got.index[amb], got["candidates"].to_numpy()[amb], strict=True)
        ]
        open_[hit] = False
    unresolved = todo & (status == None)  # noqa: E711  (object array of None)
    status[unresolved] = "unresolved"
    given = _text(obs["compound_inchikey"]).to_numpy()
    fill = (given == None) & (inchikey != None)  # noqa: E711
    obs["compound_inchikey"] = np.where(fill, inchikey, given)
    obs["compound_parent_inchikey"] = parent
    old_cid = obs["pubchem_cid"].astype("Int64")
    new_cid = pd.array([None if c is None or pd.isna(c) else int(c) for c in cid], dtype="Int64")
    obs["pubchem_cid"] = old_cid.fillna(pd.Series(new_cid, index=obs.index))
    obs["compound_status"] = status
    obs["compound_match"] = how
    ids = obs.index.astype(str)
    for reason, mask, detail in (
        ("ambiguous", status == "ambiguous", candidates),
        (
            "unresolved",
            status == "unresolved",
            np.array(
                [f"no identifier of {p!r} resolves" for p in obs["perturbagen"].astype(str)],
                dtype=object,
            ),
        ),
    ):
        if mask.any():
            ledger.keep(ids[mask], stage="ids_compounds", reason=reason, detail=detail[mask])
    return obs


def _resolve_cells(obs: pd.DataFrame, resolver: CellResolver, ledger: Ledger) -> pd.DataFrame:
    obs = obs.copy()
    ctx = obs["cell_context"].astype(str)
    is_acc = ctx.str.match(ACCESSION_PATTERN).to_numpy()
    names = obs["cell_name"].astype(str)
    status = np.full(len(obs), None, dtype=object)
    status[is_acc] = "resolved"
    new_ctx = ctx.to_numpy(dtype=object).copy()
    rows = np.flatnonzero(~is_acc)
    if len(rows):
        uniq = pd.unique(names.iloc[rows])
        res = resolver.resolve(list(uniq)).set_index(pd.Index(uniq))
        got = res.reindex(names.iloc[rows].to_numpy())
        acc = got["accession"].astype(object).to_numpy()
        st = got["status"].to_numpy(dtype=object)
        ok = (st == "resolved") & pd.Series(acc).astype(str).str.match(ACCESSION_PATTERN).to_numpy()
        new_ctx[rows[ok]] = acc[ok]
        status[rows] = np.where(
            ok, "resolved", np.where(st == "ambiguous", "ambiguous", "unresolved")
        )
        ids = obs.index.astype(str)
        for reason in ("ambiguous", "unresolved"):
            mask = np.zeros(len(obs), dtype=bool)
            mask[rows] = status[rows] == reason
            if mask.any():
                detail = [
                    f"cell {n!r}: {c}" if c else f"cell {n!r}"
                    for n, c in zip(
                        names.to_numpy()[mask],
                        got["candidates"].fillna("").to_numpy()[mask[rows]],
                        strict=True,
                    )
                ]
                ledger.keep(ids[mask], stage="ids_cells", reason=reason, detail=detail)
    obs["cell_context"] = new_ctx
    obs["cell_status"] = status
    return obs


#: Columns filled together (a label and its ontology id).
_BIOLOGY_UNITS: tuple[tuple[str, ...], ...] = tuple(
    (c, f"{c}_ontology_term_id") if f"{c}_ontology_term_id" in BIOLOGY_COLUMNS else (c,)
    for c in BIOLOGY_COLUMNS
    if not c.endswith("_ontology_term_id")
)


def _fill_biology(obs: pd.DataFrame, biology: CellBiology, ledger: Ledger) -> pd.DataFrame:
    obs = obs.copy()
    n = len(obs)
    names = [*BIOLOGY_COLUMNS, BIOLOGY_SOURCE]
    cur = pd.DataFrame(
        {c: np.asarray(biology_values(obs.get(c), n), dtype=object) for c in names},
        index=obs.index,
    )
    cur["_ctx"] = obs["cell_context"].astype(str).to_numpy()
    keys = cur.drop_duplicates().reset_index(drop=True)
    filled = []
    for rec in keys.to_dict("records"):
        ref = biology.lookup([rec["_ctx"]]).iloc[0]
        src = biology.sources(rec["_ctx"])
        new = dict(rec)
        added: dict[str, str] = {}
        for unit in _BIOLOGY_UNITS:
            if all(rec[c] == UNKNOWN for c in unit) and ref[unit[0]] != UNKNOWN:
                new.update({c: ref[c] for c in unit})
                if unit[0] in src:
                    added[unit[0]] = src[unit[0]]
        if added:
            parts = [] if rec[BIOLOGY_SOURCE] == UNKNOWN else [rec[BIOLOGY_SOURCE]]
            new[BIOLOGY_SOURCE] = "; ".join(parts + [f"{k}={v}" for k, v in added.items()])
        filled.append(new)
    table = pd.DataFrame(filled, columns=keys.columns)
    pos = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(cur[keys.columns]))
    for c in names:
        obs[c] = pd.Categorical(table[c].to_numpy(dtype=object)[pos])
    if biology.missing_fields:
        ledger.keep(
            obs.index.astype(str),
            stage="ids_biology",
            reason="reference_fields_missing",
            detail=f"the reference store has no {', '.join(biology.missing_fields)} for cells "
            "(built before these fields): rebuild it with `perturbridge refs build` to fill "
            "them",
        )
    return obs


def _resolve_genes(
    samples: ad.AnnData,
    resolver: GeneResolver,
    ledger: Ledger,
    *,
    value_kind: str,
    rule: Literal["first", "max_mean"] | None,
    keep_unresolved: bool,
) -> ad.AnnData:
    var = samples.var
    queries = var.index.astype(str)
    mapping = resolver.resolve(list(queries))
    mapping["input"] = queries.to_numpy()
    out = collapse_genes(
        samples.X,
        var,
        mapping,
        value_kind="counts" if value_kind == "counts" else "log",
        rule=rule,
    )
    report = out.report
    new_var = out.var.copy()
    new_var["gene_status"] = "resolved"
    mats = [out.matrix]
    lost = report[
        report["action"].str.startswith("dropped_") & (report["action"] != "dropped_rule")
    ]
    if keep_unresolved and len(lost):
        pos = lost["position"].to_numpy()
        x = samples.X
        mats.append(x[:, pos])
        extra = pd.DataFrame(
            {
                "symbol": var["symbol"].astype(str).to_numpy()[pos]
                if "symbol" in var
                else queries.to_numpy()[pos],
                "hgnc_id": None,
                "n_inputs": 1,
                "gene_status": lost["action"].str.removeprefix("dropped_").to_numpy(),
            },
            index=pd.Index(queries.to_numpy()[pos], name="ensembl_gene_id"),
        )
        new_var = pd.concat([new_var, extra])
    notes = report[report["action"] != "kept"]
    for action, part in notes.groupby("action", sort=True):
        reason = str(action).removeprefix("dropped_")
        if keep_unresolved and action != "dropped_rule" and str(action).startswith("dropped_"):
            ledger.keep(part["input"], stage="ids_genes", reason=reason, detail="kept under its id")
        elif str(action).startswith("dropped_"):
            ledger.drop(
                part["input"],
                stage="ids_genes",
                reason=reason,
                detail=f"rule {part['rule'].iloc[0]}",
            )
        else:  # summed into one gene
            ledger.keep(
                part["input"],
                stage="ids_genes",
                reason=reason,
                detail=[f"into {e}" for e in part["ensembl_gene_id"]],
            )
    if new_var.index.has_duplicates:  # an upstream id that looks like an Ensembl id of another
        new_var.index = pd.Index(
            [
                f"{i}_{k}" if d else i
                for k, (i, d) in enumerate(
                    zip(new_var.index, new_var.index.duplicated(), strict=True)
                )
            ],
            name="ensembl_gene_id",
        )
    x_new = (
        sparse.hstack(cast(Any, mats), format="csr")  # blocks of one sparse type
        if sparse.issparse(mats[0])
        else np.hstack([np.asarray(m.toarray() if sparse.issparse(m) else m) for m in mats])
    )
    new_var.index = new_var.index.astype(str)
    for col in ("symbol", "hgnc_id", "gene_status"):  # text with gaps: categorical for .h5ad
        values = new_var[col].astype(object)
        new_var[col] = pd.Categorical(missing_as_none(values))
    return ad.AnnData(X=x_new, obs=samples.obs, var=new_var, uns=dict(samples.uns))


def annotate_samples(
    samples: ad.AnnData,
    resolvers: IdentityResolvers,
    *,
    genes: bool = True,
    gene_rule: Literal["first", "max_mean"] | None = None,
    keep_unresolved_genes: bool = True,
) -> tuple[ad.AnnData, Ledger]:
    """Resolve compound, cell and gene identities of Samples (see the module docs).

    Parameters
    ----------
    samples
        Validated Samples, as a source adapter returns them.
    resolvers
        Built once with :meth:`IdentityResolvers.from_store`; a resolver that is
        ``None`` leaves that identity as it is.
    genes
        Re-key ``var`` by Ensembl gene id (needs ``resolvers.genes``).
    gene_rule
        For log-expression values whose input columns map to one gene: ``first`` or
        ``max_mean`` (counts are always summed).
    keep_unresolved_genes
        Keep input genes without an Ensembl id under their upstream id.

    Returns
    -------
    The annotated Samples (a new object) and the ledger notes.
    """
    ledger = Ledger()
    obs = samples.obs
    if resolvers.compounds is not None:
        obs = _resolve_compounds(obs, resolvers.compounds, ledger)
    if resolvers.cells is not None:
        obs = _resolve_cells(obs, resolvers.cells, ledger)
    if resolvers.biology is not None:
        obs = _fill_biology(obs, resolvers.biology, ledger)
    out = ad.AnnData(
        X=samples.X, obs=coerce_obs(obs), var=samples.var.copy(), uns=dict(samples.uns)
    )
    for name, layer in samples.layers.items():
        out.layers[name] = layer
    if genes and resolvers.genes is not None:
        if samples.layers:
            raise ValueError(
                f"annotate_samples re-keys genes of X only; these Samples have layers "
                f"{list(samples.layers)}: resolve genes before adding layers, or pass "
                "genes=False"
            )
        value_kind = str(samples.uns.get("perturbridge", {}).get("value_kind", "counts"))
        out = _resolve_genes(
            out,
            resolvers.genes,
            ledger,
            value_kind=value_kind,
            rule=gene_rule,
            keep_unresolved=keep_unresolved_genes,
        )
    validate_samples(out)
    return out, ledger
