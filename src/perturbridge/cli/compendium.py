"""Compendium commands of the ``perturbridge`` CLI: build, query, info, export, import-release.

A thin layer over :mod:`perturbridge.compendium`; the app adds the commands with
:func:`register`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from ._common import Mode, cell, console, err_console, fail, frame_table, user_errors

if TYPE_CHECKING:
    from ..compendium.plan import ExecutorKind as PlanExecutor
    from ..schema import ReplicateMode

__all__ = ["info_cmd", "register"]


#: Where the tasks of a build run.
ExecutorKind = StrEnum("ExecutorKind", ["local", "dask", "slurm"])


#: How ``query`` prints its result.
OutputFormat = StrEnum("OutputFormat", ["table", "tsv", "csv", "json"])


#: What ``export`` writes.
ExportKind = StrEnum("ExportKind", ["shards", "anndata", "release"])


def _store_errors() -> tuple[type[BaseException], ...]:
    """The user errors of the compendium commands: a bad store, plan, query or option."""
    import duckdb

    return user_errors(ImportError, duckdb.Error)


StoreArg = Annotated[Path, typer.Argument(help="Compendium store folder.")]


def _datasets_table(df: Any) -> Table:
    table = Table(title="datasets")
    for col in ("dataset", "source", "assay", "values", "samples", "contexts", "conditions"):
        table.add_column(col, justify="right" if col in ("samples", "contexts") else "left")
    table.add_column("contrasts group / separate", justify="right")
    table.add_column("DE")
    for r in df.itertuples(index=False):
        table.add_row(
            r.dataset,
            r.source,
            r.assay,
            r.value_kind,
            cell(r.n_samples),
            cell(r.n_contexts),
            cell(r.n_conditions),
            f"{cell(r.n_contrasts_group)} / {cell(r.n_contrasts_separate)}",
            r.de_method,
        )
    return table


def build_cmd(
    plan: Annotated[Path, typer.Argument(help="Build plan (TOML).")],
    executor: Annotated[
        ExecutorKind | None,
        typer.Option(help="local (processes here), dask, or slurm; default: the plan's."),
    ] = None,
    n_jobs: Annotated[
        int | None, typer.Option("--n-jobs", "-j", help="Local processes or Dask workers.")
    ] = None,
    scheduler_address: Annotated[
        str | None,
        typer.Option("--scheduler-address", help="Use a running Dask scheduler (tcp://host:8786)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="SLURM profile of the plan ([slurm.NAME]).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Write this store instead.")] = None,
    cache: Annotated[Path | None, typer.Option(help="Task cache folder.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the tasks and what is cached; run nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove datasets of the store that the plan no longer lists."),
    ] = False,
) -> None:
    """Build or update a compendium store from a plan; unchanged tasks are reused.

    Example:

        perturbridge build plan.toml --executor dask --n-jobs 8
    """
    from ..compendium import build, load_plan, plan_tasks

    try:
        p = load_plan(plan, store=store, cache=cache)
        if executor is not None or n_jobs is not None or scheduler_address or profile:
            p = p.with_overrides(
                executor=None if executor is None else cast("PlanExecutor", executor.value),
                n_jobs=n_jobs,
                scheduler_address=scheduler_address,
                slurm_profile=profile,
            )
        if dry_run:
            import pandas as pd

            console.print(frame_table(pd.DataFrame(plan_tasks(p)), f"tasks of {plan.name}"))
            return
        report = build(p, progress=True, force=force)
    except _store_errors() as err:
        fail(err)
    counts = report.manifest.get("counts", {})
    console.print(
        f"{len(report.computed)} tasks computed, {len(report.cached)} reused from the cache; "
        + ("store written" if report.store_written else "store already up to date")
        + f" ({report.wall_s:.1f} s)"
    )
    console.print(
        f"{report.store}: {counts.get('datasets', 0)} datasets, "
        f"{counts.get('samples', 0):,} samples, {counts.get('conditions', 0):,} conditions, "
        f"{counts.get('genes', 0):,} genes"
    )


def query_cmd(
    store: StoreArg,
    sql: Annotated[
        str, typer.Argument(help="One read-only DuckDB SQL statement over the catalog tables.")
    ],
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="First N rows (pushed into the query). Default: 50 in table format, "
            "all rows (streamed) in tsv/csv/json.",
        ),
    ] = None,
) -> None:
    """Run a read-only SQL query over the catalog (datasets, samples, conditions,
    contrasts, genes, compounds, contexts, ledger).

    One statement that reads: SELECT/WITH/FROM/VALUES, DESCRIBE, SHOW,
    SUMMARIZE, EXPLAIN, PRAGMA table_info('<table>'). COPY, ATTACH, INSTALL,
    LOAD, EXPORT, CREATE, INSERT, SET and other statements are refused before
    they run, and a query cannot read other files or reach the network: the
    store is read-only. Save a result with --format tsv > file (rows are
    streamed). Ctrl-C stops a running query.

    Example:

        perturbridge query compendium "SELECT dataset, count(*) FROM conditions GROUP BY 1"
    """
    try:  # Ctrl-C while the library loads is an interrupt too
        import pandas as pd

        from ..compendium import Compendium

        with Compendium.open(store) as comp:
            if fmt is OutputFormat.table:
                shown = 50 if limit is None else limit
                # one row more than shown tells whether the result has more
                frames = list(comp.sql_batches(sql, limit=shown + 1))
                df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
                console.print(frame_table(df, limit=shown))
                if len(df) > shown:
                    console.print(
                        f"(more than {shown:,} rows; {shown} shown, use --limit or --format tsv)"
                    )
            else:
                _write_frames(comp.sql_batches(sql, limit=limit), fmt)
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/] interrupted (Ctrl-C); the query was stopped")
        raise typer.Exit(code=130) from None
    except _store_errors() as err:
        fail(err)


def _write_frames(frames: Any, fmt: OutputFormat) -> None:
    """Write the frames of a query to stdout as they come (tsv, csv or one JSON array);
    a closed pipe (``| head``) ends the output quietly."""
    import os
    import sys

    try:
        if fmt is OutputFormat.json:
            sep = ""
            sys.stdout.write("[")
            for frame in frames:
                if len(frame):
                    records = frame.to_json(orient="records", indent=1)
                    sys.stdout.write(sep + records[1:-1])
                    sep = ","
            sys.stdout.write("]\n")
        else:
            delimiter = "\t" if fmt is OutputFormat.tsv else ","
            for i, frame in enumerate(frames):
                sys.stdout.write(frame.to_csv(sep=delimiter, index=False, header=i == 0))
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader has gone; point stdout at devnull so the exit flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def info_cmd(
    store: StoreArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Summarize a store: datasets, samples, compounds, contexts, conditions, genes,
    assays and ledger totals.

    Example:

        perturbridge info compendium
    """
    from ..compendium import Compendium

    try:
        with Compendium.open(store) as comp:
            s = comp.summary()
    except _store_errors() as err:
        fail(err)
    if as_json:
        out = {k: v for k, v in s.items() if k not in ("datasets", "ledger")}
        out["datasets"] = s["datasets"].to_dict(orient="records")
        out["ledger"] = s["ledger"].to_dict(orient="records")
        typer.echo(json.dumps(out, indent=1, default=str))
        return
    console.print(f"[bold]{s['path']}[/] (perturbridge {s['version']})")
    totals = Table(title="totals")
    totals.add_column("what")
    totals.add_column("n", justify="right")
    for k, v in s["counts"].items():
        totals.add_row(k, f"{v:,}")
    for mode, n in s["contrasts"].items():
        totals.add_row(f"contrasts ({mode})", f"{n:,}")
    console.print(totals)
    console.print(_datasets_table(s["datasets"]))
    console.print(f"assays: {', '.join(s['assays']) or '-'}")
    console.print(f"consolidated layers: {', '.join(s['layers'])}; modes: {', '.join(s['modes'])}")
    console.print(frame_table(s["ledger"], "ledger totals (samples, conditions, genes)"))


def export_cmd(
    store: StoreArg,
    out: Annotated[
        Path, typer.Option("--out", help="Folder (shards, release) or .h5ad (anndata).")
    ],
    to: Annotated[ExportKind, typer.Option("--to", help="shards, anndata or release.")] = (
        ExportKind.shards
    ),
    mode: Annotated[Mode, typer.Option(help="Replicate mode.")] = Mode.group,
    layer: Annotated[str, typer.Option(help="Effects layer.")] = "logFC",
    rows_per_shard: Annotated[int, typer.Option(help="Rows per Parquet shard.")] = 200_000,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only this dataset (repeatable).")
    ] = None,
) -> None:
    """Export LPM-style training shards (Parquet), an AnnData for evaluation tools, or
    the store in the layout of the public release.

    --to release writes <dataset>/group_rep/<context>_de.h5ad, <dataset>/sep_rep/
    (datasets with separate-mode contrasts) and <dataset>/<dataset>_processed.h5ad
    into a new or empty folder, with every layer and both modes (--layer, --mode and
    --rows-per-shard do not apply); import-release reads it back.

    Example:

        perturbridge export compendium --to shards --out shards/
        perturbridge export compendium --to anndata --out eval.h5ad --dataset sciplex
        perturbridge export compendium --to release --out release/
    """
    from ..compendium import Compendium, export_anndata, export_release, export_shards

    if to is ExportKind.release and (layer != "logFC" or mode is not Mode.group):
        fail("--to release writes every layer of both modes: leave out --layer and --mode")
    try:
        with Compendium.open(store) as comp:
            if to is ExportKind.release:
                path = export_release(comp, out, datasets=dataset, progress=True)
                files = sorted(p for p in path.rglob("*.h5ad"))
                n_sets = len({p.relative_to(path).parts[0] for p in files})
                console.print(f"wrote {path}: {len(files):,} .h5ad files of {n_sets} datasets")
            elif to is ExportKind.shards:
                shards = export_shards(
                    comp,
                    out,
                    mode=cast("ReplicateMode", mode.value),
                    layer=layer,
                    rows_per_shard=rows_per_shard,
                    datasets=dataset,
                    progress=True,
                )
                console.print(f"wrote {len(shards)} shards to {out}")
            else:
                conds = comp.conditions(dataset=dataset) if dataset else None
                path = export_anndata(
                    comp, out, conditions=conds, layer=layer, mode=cast("ReplicateMode", mode.value)
                )
                console.print(f"wrote {path}")
    except _store_errors() as err:
        fail(err)


def import_cmd(
    release: Annotated[Path, typer.Argument(help="Folder of the original release.")],
    store: Annotated[
        Path, typer.Option("--store", help="Store folder to write (new, or a store to join).")
    ],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only this dataset (repeatable).")
    ] = None,
) -> None:
    """Import DE files of the original release into a store.

    Reads <dataset>/group_rep/<cell_type>_de.h5ad and sep_rep/ (or the older deep
    layout with group_rep/ and separate_rep/ folders) and records
    <dataset>/<dataset>_processed.h5ad. Datasets already in STORE that the release does
    not hold are kept; a dataset of the same name is updated only when it was imported
    from the same release folder.

    Example:

        perturbridge import-release release/ --store compendium
    """
    from ..compendium import import_release

    try:
        manifest = import_release(release, store, datasets=dataset, progress=True)
    except _store_errors() as err:
        fail(err)
    c = manifest["counts"]
    console.print(
        f"{store}: {c['datasets']} datasets, {c['conditions']:,} conditions, {c['genes']:,} genes"
    )
    root = str(release.absolute())
    names: dict[bool, list[str]] = {True: [], False: []}
    for d in manifest["datasets"]:
        names[d.get("source") == "release_import" and d.get("root") == root].append(d["name"])
    console.print(
        f"imported: {', '.join(names[True]) or '-'}; kept: {', '.join(names[False]) or '-'}",
        highlight=False,
    )


def verify_cmd(
    store: StoreArg,
) -> None:
    """Check every file of a store against the checksums of its manifest.

    Reads the whole store; prints each bad file and exits with 1 when there is any.

    Example:

        perturbridge verify compendium
    """
    from ..compendium.store import verify_store

    try:
        problems = verify_store(store, progress=True)
    except _store_errors() as err:
        fail(err)
    for p in problems:
        err_console.print(f"[bold red]bad:[/] {p}", markup=True, highlight=False)
    if problems:
        err_console.print(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}; run "
            f"`perturbridge repair {store}`",
            highlight=False,
        )
        raise typer.Exit(code=1)
    console.print(f"{store}: every file matches the manifest", highlight=False)


def repair_cmd(
    store: StoreArg,
    cache: Annotated[
        Path | None, typer.Option(help="Task cache to restore files from (default: STORE/.cache).")
    ] = None,
) -> None:
    """Bring a store back to a consistent state, and say what needs a rebuild.

    Finishes an update interrupted while it was committed, removes unfinished updates
    and temporary files, restores damaged Samples and Effects files from the task
    cache; what is left (catalog, Zarr shards) is listed and the next build rewrites it.
    Exits with 1 when something needs a rebuild.

    Example:

        perturbridge repair compendium
    """
    from ..compendium.store import repair_store

    try:
        report = repair_store(store, cache=cache, progress=True)
    except _store_errors() as err:
        fail(err)
    for action in report.actions:
        console.print(f"- {action}", highlight=False)
    if report.needs_rebuild:
        for p in report.needs_rebuild:
            err_console.print(f"[bold red]needs a rebuild:[/] {p}", markup=True, highlight=False)
        err_console.print(
            "run the build (`perturbridge build PLAN`) or the import that wrote the store "
            "again: it rewrites the store",
            highlight=False,
        )
        raise typer.Exit(code=1)
    console.print(f"{store}: consistent, every file matches the manifest", highlight=False)


def prune_cmd(
    store: StoreArg,
    apply: Annotated[
        bool, typer.Option("--apply", help="Remove the entries (default: only list them).")
    ] = False,
    cache: Annotated[
        Path | None, typer.Option(help="The task cache (default: STORE/.cache).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Entries listed.", min=0)] = 20,
) -> None:
    """Remove the task cache entries the store's current build does not use.

    A dry run unless --apply: lists what would go (outputs of earlier plans, temporary
    folders of interrupted tasks, work files of finished updates) and the bytes it
    would free. The store's own task outputs stay, so building the same plan again
    computes nothing. Do not prune a cache that several stores share.

    Example:

        perturbridge prune compendium

        perturbridge prune compendium --apply
    """
    from ..compendium import prune

    try:
        report = prune(store, dry_run=not apply, cache=cache)
    except _store_errors() as err:
        fail(err)
    entries = report.entries
    if entries.empty:
        console.print(f"{store}: nothing to prune", highlight=False)
        return
    by_reason = entries.groupby("reason", sort=True)["bytes"].agg(["size", "sum"]).reset_index()
    by_reason.columns = ["reason", "entries", "bytes"]
    by_reason["size"] = [_size(b) for b in by_reason["bytes"]]
    console.print(frame_table(by_reason, "cache entries the store does not use"))
    listed = entries.head(limit).assign(size=[_size(b) for b in entries["bytes"].head(limit)])
    console.print(frame_table(listed[["path", "size", "reason"]]))
    if len(entries) > limit:
        console.print(f"({limit} of {len(entries):,} entries listed; --limit)", highlight=False)
    n = f"{len(entries):,} entr{'y' if len(entries) == 1 else 'ies'}"
    if report.dry_run:
        console.print(
            f"would free {_size(report.bytes_freed)} ({n}); run with --apply to remove them",
            highlight=False,
        )
    else:
        console.print(f"freed {_size(report.bytes_freed)} ({n} removed)", highlight=False)


def _size(n_bytes: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KB``, ``2.3 GB`` (powers of 1000)."""
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def register(app: typer.Typer) -> None:
    """Add the compendium commands to the ``perturbridge`` app."""
    app.command("build")(build_cmd)
    app.command("query")(query_cmd)
    app.command("info")(info_cmd)
    app.command("export")(export_cmd)
    app.command("import-release")(import_cmd)
    app.command("verify")(verify_cmd)
    app.command("repair")(repair_cmd)
    app.command("prune")(prune_cmd)
