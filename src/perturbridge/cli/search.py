"""The ``search`` command of the ``perturbridge`` CLI: signature search over a store.

A thin layer over :func:`perturbridge.search.search`; the app adds the command with
:func:`register`. The search package is imported inside the command, so that
``perturbridge --help`` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._common import (
    Mode,
    cell,
    check_out_file,
    console,
    err_console,
    fail,
    frame_table,
    user_errors,
)

if TYPE_CHECKING:
    from ..search import SearchResult

__all__ = ["hits_table", "register", "search_cmd", "search_index_cmd"]

#: Which end of the scores comes first.
DirectionOption = StrEnum("DirectionOption", ["similar", "opposite"])

#: Order of the hits.
RankOption = StrEnum("RankOption", ["score", "ncs"])

_SHOWN = ("rank", "compound", "cell_context", "dataset", "assay", "dose_uM", "time_h",
          "score", "ncs", "p", "fdr")  # fmt: skip


def _list_methods(value: bool) -> None:
    if not value:
        return
    from ..search import list_methods

    console.print(frame_table(list_methods(), "search methods"))
    raise typer.Exit()


def hits_table(res: SearchResult, query: str, *, limit: int | None = None) -> Table:
    """The top hits of one query as a table."""
    sel = res.hits[res.hits["query"] == query]
    cols = [c for c in _SHOWN if c in sel.columns]
    table = Table(title=f"query {query}: top {len(sel) if limit is None else min(limit, len(sel))}"
                  f" of {int(res.info.get('n_conditions', 0)):,} conditions "
                  f"({res.info.get('method')})")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right" if col not in ("compound", "cell_context",
                         "dataset", "assay") else "left", overflow="fold")  # fmt: skip
    shown = sel if limit is None else sel.head(limit)
    for row in shown[cols].itertuples(index=False):
        table.add_row(*[cell(v) if not isinstance(v, float) else f"{v:.4g}" for v in row])
    return table


def search_cmd(
    store: Annotated[Path, typer.Argument(help="A compendium store.")],
    up: Annotated[
        Path | None, typer.Option("--up", help="Up-regulated genes: one per line (text/GRP).")
    ] = None,
    down: Annotated[
        Path | None, typer.Option("--down", help="Down-regulated genes: one per line (text/GRP).")
    ] = None,
    gmt: Annotated[
        Path | None, typer.Option("--gmt", help="GMT file: one query per gene set (up sets).")
    ] = None,
    gmt_down: Annotated[
        Path | None,
        typer.Option("--gmt-down", help="GMT file of down sets, paired with --gmt by name."),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="CSV/TSV with a gene column and a value column."),
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", help="A condition id of the store as the query (repeat)."),
    ] = None,
    method: Annotated[str, typer.Option(help="Score (see --list-methods).")] = "wtcs",
    top: Annotated[int, typer.Option(help="Conditions reported per query.")] = 50,
    n_null: Annotated[
        int, typer.Option("--n-null", help="Random queries per query for p-values (0: none).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random queries.")] = 0,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only this dataset (repeat).")
    ] = None,
    assay: Annotated[
        list[str] | None, typer.Option("--assay", help="Only this assay (repeat).")
    ] = None,
    context: Annotated[
        list[str] | None, typer.Option("--context", help="Only this cell context (repeat).")
    ] = None,
    time_h: Annotated[
        list[float] | None, typer.Option("--time", help="Only this time in hours (repeat).")
    ] = None,
    direction: Annotated[
        DirectionOption,
        typer.Option(
            help="similar: conditions that produce the change first; opposite: "
            "those that reverse it."
        ),
    ] = DirectionOption.similar,
    rank_by: Annotated[
        RankOption,
        typer.Option("--rank-by", help="Order hits by the score or by NCS (wtcs, ks)."),
    ] = RankOption.score,
    skip_unmatched: Annotated[
        bool,
        typer.Option("--skip-unmatched", help="Leave out queries with no gene in the store."),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result tables to this folder.")
    ] = None,
    figure: Annotated[
        Path | None, typer.Option("--figure", help="Write a PNG of the top hits here.")
    ] = None,
    show: Annotated[int, typer.Option(help="Rows printed per query.")] = 20,
    refs: Annotated[
        Path | None,
        typer.Option("--refs", help="Reference store: resolve gene aliases, symbols ↔ Entrez."),
    ] = None,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", "-j", help="Threads scoring (-1: every core).")
    ] = -1,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar.")
    ] = True,
    list_methods: Annotated[
        bool,
        typer.Option(
            "--list-methods",
            help="List the search methods and exit.",
            is_eager=True,
            callback=_list_methods,
        ),
    ] = False,
) -> None:
    """Which conditions of a store produce (or reverse) a signature or up/down gene sets?

    Give one kind of query: --up/--down gene files, --gmt (one query per set), --signature,
    or --condition (a condition of the store; repeat for several).

    Examples:

        perturbridge search compendium --up up.txt --down down.txt --top 20

        perturbridge search compendium --condition "cmap_l5:CPC006_A375_6H:BRD-K56343971:10"

        perturbridge search --list-methods
    """
    del list_methods  # handled by its callback
    kinds = [name for name, v in (("--up/--down", up or down), ("--gmt", gmt),
             ("--signature", signature), ("--condition", condition)) if v]  # fmt: skip
    if len(kinds) != 1:
        fail(
            "give one kind of query: --up/--down, --gmt, --signature or --condition"
            + (f" (found {', '.join(kinds)})" if kinds else "")
        )
    if gmt_down is not None and gmt is None:
        fail("--gmt-down pairs down sets with the up sets of --gmt; give --gmt too")
    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder")
    # only an earlier search result is replaced
    if (
        out is not None
        and out.is_dir()
        and any(out.iterdir())
        and not (out / "search.json").is_file()
    ):
        fail(f"--out {out} is a folder that holds no search result; give a new folder")
    if figure is not None:
        check_out_file(figure, option="--figure")
    from ..search import SearchOptions, queries_from_files, search

    try:
        options = SearchOptions(
            method=method, n_null=n_null, seed=seed, top=top,
            datasets=tuple(dataset) if dataset else None,
            assays=tuple(assay) if assay else None,
            contexts=tuple(context) if context else None,
            times=tuple(time_h) if time_h else None,
            direction=direction.value,  # type: ignore[arg-type]
            rank_by=rank_by.value,  # type: ignore[arg-type]
            skip_unmatched=skip_unmatched,
            refs=str(refs) if refs is not None else None,
            n_jobs=n_jobs,
            progress=progress,
        )  # fmt: skip
        queries: list[Any] = (
            list(condition)
            if condition
            else queries_from_files(
                up=up, down=down, gmt=gmt, gmt_down=gmt_down, signature=signature
            )
        )
        res = search(store, queries, options=options)
        if out is not None:
            res.write(out, replace=True)
        if figure is not None:
            _write_figure(res, figure)
    except user_errors() as err:
        fail(err)
    for name in res.queries.loc[res.queries["skipped"] == "", "query"]:
        console.print(hits_table(res, str(name), limit=show))
    for rec in res.queries.to_dict("records"):
        if rec["skipped"]:
            err_console.print(f"[yellow]left out:[/] {rec['skipped']}", markup=True,
                              highlight=False)  # fmt: skip
        elif rec["n_unmatched"]:
            err_console.print(
                f"[yellow]query {rec['query']}:[/] {rec['n_unmatched']} identifiers match no "
                f"gene of the store: {str(rec['unmatched'])[:200]}",
                markup=True, highlight=False,
            )  # fmt: skip
    written = [str(p) for p in (out, figure) if p is not None]
    console.print(
        f"{len(res.queries)} queries × {int(res.info['n_conditions']):,} conditions "
        f"({res.info['method']}) in {res.info['seconds']:.2f} s"
        + (f"; wrote {', '.join(written)}" if written else "")
    )


def _write_figure(res: SearchResult, path: Path) -> None:
    from ..io import atomic_file

    fig = res.figure()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, facecolor="white", metadata={"Software": None})


def search_index_cmd(
    store: Annotated[Path, typer.Argument(help="A compendium store.")],
    mode: Annotated[Mode, typer.Option(help="Replicate mode of the effects indexed.")] = Mode.group,
    layer: Annotated[str, typer.Option(help="Effects layer indexed (logFC or t).")] = "logFC",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar.")
    ] = True,
) -> None:
    """Write (or bring up to date) the search index of a store: per-condition ranks and
    values that make a search read only the genes of its queries. Datasets already
    indexed for the same state are not recomputed.

    Examples:

        perturbridge search-index compendium
    """
    from ..search import SearchIndex

    try:
        index = SearchIndex.build(store, mode=mode.value, layer=layer, progress=progress)  # type: ignore[arg-type]
    except user_errors() as err:
        fail(err)
    console.print(
        f"search index of {store}: {index.n_conditions:,} conditions × "
        f"{index.n_genes:,} genes, layer {index.layer} ({index.folder})",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``search`` and ``search-index`` commands to the ``perturbridge`` app."""
    app.command("search")(search_cmd)
    app.command("search-index")(search_index_cmd)
