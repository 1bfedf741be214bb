"""``perturbridge ingest <source>`` and ``perturbridge sources``.

``ingest l1000`` has named options; every other adapter gets a command made from its
declaration in :data:`perturbridge.sources.ADAPTERS` (inputs with ``--input
NAME=PATH``, other parameters with ``--set NAME=VALUE``). The declaration alone makes
the command and its help: the adapter (and pandas, AnnData with it) loads when the
command runs, not for ``perturbridge ingest --help`` nor ``perturbridge ingest <name>
--help``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from ..sources import ADAPTERS
from ._common import (
    LedgerOutArg,
    RefsArg,
    check_out_file,
    console,
    fail,
    frame_table,
    print_samples,
    user_errors,
    write_samples,
)

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from ..sources import CliParameter, IngestResult, SourceDeclaration
    from ..sources.l1000 import Genes

__all__ = ["ingest_app", "sources_app"]


ingest_app = typer.Typer(
    help="Read an upstream dataset into validated Samples.",
    no_args_is_help=True,
)
sources_app = typer.Typer()

SamplesOutArg = Annotated[Path, typer.Option("--out", help="Samples .h5ad to write.")]


#: LINCS L1000 GEO series.
L1000Phase = StrEnum("L1000Phase", [("phase1", "1"), ("phase2", "2")])


#: Which L1000 genes to read.
L1000Genes = StrEnum("L1000Genes", ["landmark", "bing", "all"])


@ingest_app.command("l1000")
def ingest_l1000(
    out: SamplesOutArg,
    level3: Annotated[
        Path | None, typer.Option("--level3", help="Level 3 .gctx or .gct file.")
    ] = None,
    inst_info: Annotated[
        Path | None, typer.Option("--inst-info", help="Sample metadata table (TSV/CSV).")
    ] = None,
    gene_info: Annotated[Path | None, typer.Option("--gene-info", help="GEO gene_info.")] = None,
    cell_info: Annotated[Path | None, typer.Option("--cell-info", help="GEO cell_info.")] = None,
    pert_info: Annotated[Path | None, typer.Option("--pert-info", help="GEO pert_info.")] = None,
    folder: Annotated[
        Path | None, typer.Option("--folder", help="A GEO series folder (files found by name).")
    ] = None,
    phase: Annotated[
        L1000Phase | None, typer.Option("--phase", help="GEO phase (1: GSE92742, 2: GSE70138).")
    ] = None,
    genes: Annotated[
        L1000Genes, typer.Option("--genes", help="landmark (978), bing or all genes.")
    ] = L1000Genes.landmark,
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset name (default: lincs_l1000, or lincs_l1000_phaseN)."),
    ] = None,
    ledger_out: LedgerOutArg = None,
    refs: RefsArg = None,
) -> None:
    """Ingest L1000 level 3 into Samples; every well ends in the ledger.

    Either one level 3 file (with column metadata or --inst-info), or the GEO layout:
    the level 3 GCTX with inst_info, gene_info, cell_info and pert_info (or --folder
    and --phase).

    Example:

        perturbridge ingest l1000 --level3 test_l1000.gct --out samples.h5ad

        perturbridge ingest l1000 --folder GSE92742 --phase 1 --out phase1.h5ad
    """
    from ..sources.l1000 import L1000Tables, read_l1000

    check_out_file(out)
    try:
        res = _annotated(
            read_l1000(
                level3,
                tables=L1000Tables(
                    inst_info=inst_info,
                    gene_info=gene_info,
                    cell_info=cell_info,
                    pert_info=pert_info,
                ),
                folder=folder,
                phase=None if phase is None else 1 if phase is L1000Phase.phase1 else 2,
                genes=cast("Genes", genes.value),
                dataset=dataset,
                progress=True,
            ),
            refs,
        )
        write_samples(res, out, ledger_out=ledger_out)
    except user_errors() as err:
        fail(err)
    print_samples(res, out, label=level3.name if level3 is not None else str(folder))
    _print_coverage(res, refs)


def _annotated(res: IngestResult, refs: Path | None) -> IngestResult:
    """Resolve identities through the reference store, when one is given, and record the
    store (its path and the SHA-256 of its manifest) in the Samples' provenance."""
    if refs is None:
        return res
    from ..ids.annotate import IdentityResolvers, annotate_samples
    from ..io import file_sha256

    samples, notes = annotate_samples(res.samples, IdentityResolvers.from_store(str(refs)))
    res.ledger.extend(notes)
    meta = dict(samples.uns.get("perturbridge", {}))
    meta["provenance"] = {
        **dict(meta.get("provenance", {})),
        "references": {
            "path": str(refs.resolve()),
            "manifest_sha256": file_sha256(refs / "manifest.json"),
        },
    }
    samples.uns["perturbridge"] = meta
    return type(res)(samples, res.ledger)


#: The identity statuses of the coverage table, in its column order.
STATUSES = ("resolved", "ambiguous", "unresolved")


def identity_coverage(samples: ad.AnnData) -> pd.DataFrame:
    """How many compounds (names of treated samples), cells (cell names) and genes
    (``var`` rows) resolved, were ambiguous or stayed unresolved: counts per identity
    (rows) and status (columns), and their ``total``.

    A name whose samples got different statuses counts once, under its best status
    (resolved, then ambiguous); a gene status outside the three (e.g. ``no_ensembl``)
    counts as ``other``. Identities the reference store has no tables for (no status
    column, or no status at all) are left out.
    """
    import pandas as pd

    obs, var = samples.obs, samples.var
    treated = obs[~obs["is_control"].astype(bool)]
    parts = {
        "compounds": (treated, "perturbagen", "compound_status"),
        "cells": (obs, "cell_name", "cell_status"),
    }
    labels = dict(enumerate([*STATUSES, "other"]))
    counts: dict[str, pd.Series] = {}
    for what, (frame, name, column) in parts.items():
        if column not in frame.columns or frame[column].isna().all():
            continue
        status = frame[column].astype("string").fillna("other")
        rank = status.map({s: i for i, s in enumerate(STATUSES)}).fillna(len(STATUSES))
        best = rank.groupby(frame[name].astype(str).to_numpy()).min()
        counts[what] = best.astype(int).map(labels).value_counts()
    if "gene_status" in var.columns:
        status = var["gene_status"].astype("string").fillna("other")
        counts["genes"] = status.where(status.isin(STATUSES), "other").value_counts()
    table = pd.DataFrame(
        [[int(c.get(s, 0)) for s in labels.values()] for c in counts.values()],
        index=pd.Index(list(counts), name="identity"),
        columns=list(labels.values()),
    )
    table["total"] = table.sum(axis=1)
    return table


def _print_coverage(res: IngestResult, refs: Path | None) -> None:
    if refs is None:
        return
    table = identity_coverage(res.samples)
    if not table["other"].any():
        table = table.drop(columns=["other"])
    shown = table.copy()
    for col in shown.columns.drop("total"):
        pct = 100 * table[col] / table["total"].clip(lower=1)
        shown[col] = [f"{n:,} ({p:.1f} %)" for n, p in zip(table[col], pct, strict=True)]
    console.print(frame_table(shown.reset_index(), f"identities resolved through {refs}"))
    missing = [what for what in ("compounds", "cells", "genes") if what not in table.index]
    if missing:
        console.print(
            f"not resolved (no tables for them in {refs}): {', '.join(missing)}", highlight=False
        )


def _parse_assignments(items: list[str], option: str) -> dict[str, list[str]]:
    """``NAME=VALUE`` options as the values given for each name (``-`` in a name is ``_``)."""
    given: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        given.setdefault(name.strip().replace("-", "_"), []).append(value)
    return given


def _parse_inputs(
    items: list[str], params: Mapping[str, CliParameter], *, source: str
) -> dict[str, str]:
    """``--input NAME=PATH`` options; a name given again adds its files to the input
    when the reader takes several files for it, else it is refused (never the last
    one kept)."""
    out: dict[str, str] = {}
    for name, values in _parse_assignments(items, "--input").items():
        if len(values) > 1 and name in params and not params[name].multiple:
            raise typer.BadParameter(
                f"{source}: input {name!r} takes one file, given {len(values)} times: "
                f"{values}; pass it once",
                param_hint="--input",
            )
        out[name] = ",".join(values)
    return out


def _params_help(params: Mapping[str, CliParameter]) -> str:
    lines = []
    for p in params.values():
        default = "required" if p.required else f"default {p.default!r}"
        lines.append(f"  {p.name}  ({default})" + (f": {p.help}" if p.help else ""))
    return "\n\n".join(lines)


def _adapter_command(adapter: SourceDeclaration) -> Callable[..., None]:
    """``perturbridge ingest <name>`` of an adapter, from its declaration (the adapter is
    imported when the command runs)."""
    name = adapter.name
    params = {p.name: p for p in adapter.cli_parameters}

    def command(
        out: SamplesOutArg,
        inputs: Annotated[
            list[str] | None,
            typer.Option(
                "--input",
                "-i",
                help="An input file, NAME=PATH; repeat NAME for an input that takes several files.",
            ),
        ] = None,
        settings: Annotated[
            list[str] | None,
            typer.Option("--set", "-s", help="Another reader parameter, NAME=VALUE."),
        ] = None,
        ledger_out: LedgerOutArg = None,
        refs: RefsArg = None,
    ) -> None:
        given = {
            **_parse_inputs(inputs or [], params, source=name),
            **{k: v[-1] for k, v in _parse_assignments(settings or [], "--set").items()},
        }
        unknown = sorted(set(given) - set(params))
        if unknown:
            fail(f"{name}: unknown parameter(s) {unknown}; known: {list(params)}")
        kwargs = {}
        for key, value in given.items():
            try:
                kwargs[key] = params[key].convert(value)
            except ValueError as err:
                raise typer.BadParameter(str(err)) from err
        check_out_file(out)
        from ..sources import get_source  # the adapter, with pandas and AnnData

        try:
            res = _annotated(get_source(name).ingest(**kwargs), refs)
            write_samples(res, out, ledger_out=ledger_out)
        except user_errors(TypeError) as err:
            fail(err)
        print_samples(res, out, label=name)
        _print_coverage(res, refs)

    files = ", ".join(adapter.expected_files) or "see the parameters"
    command.__doc__ = (
        f"Ingest {adapter.description} ({adapter.assay}) into Samples.\n\n"
        f"Expected files: {files}.\n\n"
        "Parameters (give files with --input, others with --set):"
        f"\n\n{_params_help(params)}\n\n"
        "Example:\n\n"
        f"    perturbridge ingest {name} --input "
        f"{next(iter(params), 'path')}=FILE --out samples.h5ad"
    )
    return command


for _declared in ADAPTERS.values():
    if _declared.cli_parameters:  # l1000 has its own command, above
        ingest_app.command(_declared.name)(_adapter_command(_declared))


@sources_app.callback(invoke_without_command=True)
def sources(ctx: typer.Context) -> None:
    """List the source adapters (same as ``perturbridge sources list``).

    Example:

        perturbridge sources list
    """
    if ctx.invoked_subcommand is None:
        sources_list()


@sources_app.command("list")
def sources_list() -> None:
    """List the source adapters: name, assay, value kind, expected files.

    Example:

        perturbridge sources list
    """
    from ..sources import list_sources

    listing = list_sources()
    table = Table(title=f"{len(listing)} source adapters")
    for col in ("name", "assay", "value kind", "description"):
        table.add_column(col, overflow="fold")
    for row in listing.itertuples(index=False):
        table.add_row(str(row.name), str(row.assay), str(row.value_kind), str(row.description))
    console.print(table)
    console.print("[bold]expected files[/] (perturbridge ingest NAME --help for the parameters)")
    for row in listing.itertuples(index=False):
        console.print(f"  [bold]{row.name!s}[/]: {row.expected_files or '-'!s}")
