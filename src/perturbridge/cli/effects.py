"""``perturbridge effects``: effect values of a store's conditions × genes, printed or
written, and limma's top table of one condition.

A thin layer over :meth:`perturbridge.compendium.Compendium.conditions`,
:meth:`~perturbridge.compendium.Compendium.effects` and
:func:`perturbridge.de.top_table`; the app adds the command with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from ._common import (
    CompoundFilter,
    ContextFilter,
    DatasetFilter,
    DoseFilter,
    Mode,
    TimeFilter,
    check_out_file,
    console,
    fail,
    frame_table,
    user_errors,
)

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from ..compendium import Compendium
    from ..schema import ReplicateMode

__all__ = ["effects_cmd", "register"]

#: What ``--out`` writes, by suffix.
OUT_SUFFIXES = (".csv", ".tsv", ".parquet")
#: The condition columns each row of the table starts with (those the store has).
ROW_COLUMNS = (
    "dataset",
    "cell_context",
    "cell_name",
    "perturbagen",
    "compound_inchikey",
    "pert_dose_uM",
    "pert_time_h",
    "replicate",
    "condition_id",
    "contrast_id",
)
#: Columns written with --out but not printed.
PRINT_HIDDEN = ("cell_name", "compound_inchikey", "condition_id", "contrast_id")
#: Printed column names.
PRINT_NAMES = {
    "cell_context": "context",
    "perturbagen": "compound",
    "pert_dose_uM": "dose µM",
    "pert_time_h": "time h",
}
#: The layers limma's top table reads.
TOP_TABLE_LAYERS = ("logFC", "AveExpr", "t", "P.Value", "B")

#: limma's ``sort.by`` of ``--top``.
SortBy = StrEnum("SortBy", ["p", "B", "logFC", "t", "AveExpr", "none"])


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated options, each possibly comma-separated, as one list (``None`` if none)."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _store_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    return user_errors(ImportError, duckdb.Error)


def effects_cmd(
    store: Annotated[Path, typer.Argument(help="Compendium store folder.")],
    compound: CompoundFilter = None,
    context: ContextFilter = None,
    dataset: DatasetFilter = None,
    dose: DoseFilter = None,
    time: TimeFilter = None,
    genes: Annotated[
        list[str] | None,
        typer.Option(
            "--genes",
            "-g",
            help="Gene symbols or ids, comma-separated or repeated (default: every gene).",
        ),
    ] = None,
    layer: Annotated[str, typer.Option(help="Effects layer (logFC, t, P.Value, ...).")] = "logFC",
    mode: Annotated[Mode, typer.Option(help="Replicate mode.")] = Mode.group,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write every row and gene here (.csv, .tsv or .parquet)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows printed (without --out).", min=1)] = 40,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            help="limma's top table of the one matching condition: its N top genes.",
            min=1,
        ),
    ] = None,
    sort_by: Annotated[SortBy, typer.Option(help="Order of --top (limma's sort.by).")] = SortBy.p,
    refs: Annotated[
        Path | None,
        typer.Option("--refs", help="Reference store: also match compound aliases (PLX4032)."),
    ] = None,
) -> None:
    """Effect values of the matching conditions × genes: a table, or a file with --out.

    Conditions match every filter given (compound, context, dataset, dose, time) and
    come in the store's order: dataset, cell context, compound, dose (numerically),
    time. One row per condition (per replicate contrast with --mode separate) and gene,
    genes in the order given; a gene is selected by its id and by its symbol (every gene
    id that carries it). Pairs a dataset did not measure are left out (and counted).
    With --top N, limma's top table (logFC, AveExpr, t, P.Value, adj.P.Val, B) of the
    one matching condition.

    Example:

        perturbridge effects compendium --compound bortezomib --genes TP53,MDM2,CDKN1A

        perturbridge effects compendium --dataset sciplex --genes TP53 --out tp53.tsv

        perturbridge effects compendium --compound bortezomib --context A549 --top 20
    """
    if out is not None:
        if out.suffix.lower() not in OUT_SUFFIXES:
            fail(f"--out {out}: write a {', '.join(OUT_SUFFIXES)} file, found {out.suffix!r}")
        check_out_file(out)
    gene_list = _split(genes)
    filters = {
        "compound": compound or None,
        "context": context or None,
        "dataset": dataset or None,
        "dose": dose or None,
        "time": time or None,
    }
    given = {k: v for k, v in filters.items() if v is not None}
    if not given and gene_list is None and top is None:
        fail(
            "give --compound, --context, --dataset, --dose, --time or --genes "
            "(a whole store is written by `perturbridge export`)"
        )
    from ..compendium import Compendium

    try:
        with Compendium.open(store) as comp:
            conds = comp.conditions(**given, refs=refs)  # type: ignore[arg-type]
            if conds.empty:
                fail(_no_match(store, given))
            if top is not None:
                if gene_list is not None or mode is not Mode.group:
                    fail("--top ranks every gene of one condition in group mode: leave out "
                         "--genes and --mode")  # fmt: skip
                table, title = condition_top_table(comp, conds, n=top, sort_by=sort_by.value)
                _show(table, title, out=out, limit=top)
                return
            gene_ids = None if gene_list is None else select_genes(comp.genes(), gene_list)
            conds, skipped = _with_contrasts(comp, conds, mode)
            eff = comp.effects(
                conds, genes=gene_ids, layer=layer, mode=cast("ReplicateMode", mode.value)
            )
    except _store_errors() as err:
        fail(err)
    table, unmeasured = effects_frame(eff, layer=layer)
    notes = [f"{eff.n_obs:,} {_rows(mode)} × {eff.n_vars:,} genes: {len(table):,} values"]
    if unmeasured:
        notes.append(f"{unmeasured:,} pairs not measured by their dataset left out")
    if skipped:
        notes.append(f"{skipped:,} matching conditions without {mode.value}-mode contrasts")
    _show(
        table,
        f"{layer} ({mode.value} mode)",
        out=out,
        limit=limit,
        notes=notes,
        hidden=[*PRINT_HIDDEN, *(["replicate"] if mode is Mode.group else [])],
    )


def _show(
    table: pd.DataFrame,
    title: str,
    *,
    out: Path | None,
    limit: int,
    notes: list[str] | None = None,
    hidden: Sequence[str] = (),
) -> None:
    """Write ``table`` to ``out``, or print its first ``limit`` rows (without the
    ``hidden`` columns, short column names, numbers to 4 digits); then the notes."""
    notes = list(notes or [])
    if out is not None:
        _write(table, out)
        console.print(f"wrote {out}: {len(table):,} rows; " + "; ".join(notes), highlight=False)
        return
    shown = table.drop(columns=[c for c in hidden if c in table.columns]).head(limit)
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = [f"{v:.4g}" for v in shown[col]]
    console.print(frame_table(shown.rename(columns=PRINT_NAMES), title))
    if len(table) > limit:
        notes.append(f"{limit:,} shown (--limit); --out FILE writes them all")
    if notes:
        console.print("; ".join(notes), highlight=False)


def _with_contrasts(comp: Compendium, conds: pd.DataFrame, mode: Mode) -> tuple[pd.DataFrame, int]:
    """The conditions of ``conds`` that have contrasts of ``mode`` (a dataset's DE may
    not have run in both modes), and how many do not; none is an error."""
    have = comp.sql(
        "SELECT DISTINCT condition_id FROM contrasts WHERE mode = ? "
        "AND condition_id IN (SELECT unnest(?::VARCHAR[]))",
        [mode.value, conds["condition_id"].astype(str).tolist()],
    )["condition_id"]
    kept = conds[conds["condition_id"].isin(have)]
    if kept.empty:
        fail(
            f"none of the {len(conds):,} matching conditions has {mode.value}-mode contrasts "
            f"(their datasets: {sorted(set(conds['dataset']))}); try --mode "
            f"{'group' if mode is Mode.separate else 'separate'}"
        )
    return kept, len(conds) - len(kept)


def _rows(mode: Mode) -> str:
    return "conditions" if mode is Mode.group else "replicate contrasts"


def _no_match(store: Path, given: dict[str, Any]) -> str:
    shown = " ".join(f"--{k} {','.join(map(str, v))}" for k, v in given.items())
    return (
        f"no condition of {store} matches {shown}; list them with "
        f'`perturbridge query {store} "SELECT DISTINCT dataset, cell_context, perturbagen, '
        f'pert_dose_uM FROM conditions"`'
    )


def select_genes(table: pd.DataFrame, wanted: list[str]) -> list[str]:
    """The gene ids of the store's gene table that ``wanted`` names: each name selects
    the gene of that id and every gene whose symbol it is (a symbol can be carried by an
    Entrez and an Ensembl id of two datasets). A ``KeyError`` lists every name that
    selects none."""
    names = list(dict.fromkeys(wanted))
    ids = table["gene_id"].astype(str)
    symbols = table["symbol"].astype("string").fillna("")
    hit = (ids.isin(names) | symbols.isin(names)).to_numpy()
    by_name: dict[str, list[str]] = {}
    for gene_id, symbol in zip(ids[hit], symbols[hit], strict=True):
        by_name.setdefault(gene_id, []).append(gene_id)
        if symbol and symbol != gene_id:
            by_name.setdefault(str(symbol), []).append(gene_id)
    unknown = [g for g in names if g not in by_name]
    if unknown:
        raise KeyError(
            f"{len(unknown)} of {len(names)} genes are not in the store (neither gene id "
            f"nor symbol): {', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''}"
        )
    return list(dict.fromkeys(i for g in names for i in by_name[g]))


def effects_frame(eff: ad.AnnData, *, layer: str) -> tuple[pd.DataFrame, int]:
    """``eff`` as a long table: one row per contrast × gene that was measured, the
    contrast's :data:`ROW_COLUMNS` (those it has), ``gene_id``, ``symbol`` and the value
    (column ``layer``), in the order of the contrasts, then of the genes; and the number
    of contrast × gene pairs left out because the contrast's dataset did not measure
    the gene (NaN)."""
    import numpy as np

    obs = eff.obs.reset_index()
    meta = obs[[c for c in ROW_COLUMNS if c in obs.columns]]
    x = np.asarray(eff.X)
    rows, cols = np.nonzero(~np.isnan(x))  # row-major: contrast by contrast
    table = meta.iloc[rows].reset_index(drop=True)
    table["gene_id"] = eff.var_names.to_numpy()[cols]
    table["symbol"] = eff.var["symbol"].to_numpy()[cols]
    table[layer] = x[rows, cols]
    return table, int(x.size - len(rows))


def _write(table: pd.DataFrame, out: Path) -> None:
    from ..io import atomic_file

    with atomic_file(out) as tmp:
        suffix = out.suffix.lower()
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False)


def condition_top_table(
    comp: Compendium, conds: pd.DataFrame, *, n: int, sort_by: str
) -> tuple[pd.DataFrame, str]:
    """limma's top table of the one condition in ``conds`` (group mode, every gene of
    its dataset), with the genes' symbols, and a title that names the condition."""
    import anndata as ad

    from ..de import top_table

    if len(conds) > 1:
        cols = ["dataset", "cell_context", "perturbagen", "pert_dose_uM", "pert_time_h"]
        listed = "; ".join(" ".join(map(str, r)) for r in conds[cols].head(5).to_numpy())
        fail(
            f"--top needs one condition, {len(conds):,} match; narrow them with --dataset, "
            f"--context, --dose or --time (first: {listed})"
        )
    slices = {layer: comp.effects(conds, layer=layer) for layer in TOP_TABLE_LAYERS}
    first = slices["logFC"]
    fit = ad.AnnData(
        X=first.X, obs=first.obs, var=first.var, layers={k: v.X for k, v in slices.items()}
    )
    table = top_table(fit, 0, sort_by=sort_by, n=n)
    table.insert(0, "symbol", fit.var["symbol"].reindex(table.index).to_numpy())
    row = conds.iloc[0]
    title = (
        f"{row['perturbagen']} {row['pert_dose_uM']:g} µM {row['pert_time_h']:g} h in "
        f"{row['cell_context']} ({row['dataset']}): top {len(table)} genes by {sort_by}"
    )
    return table.reset_index(names="gene_id"), title


def register(app: typer.Typer) -> None:
    """Add the ``effects`` command to the ``perturbridge`` app."""
    app.command("effects")(effects_cmd)
