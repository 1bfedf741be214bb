"""``perturbridge refs``: fetch upstream reference files, build a reference store,
describe it, resolve identifiers against it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import PerturbridgeError
from ._common import check_out_file, console, fail, user_errors

__all__ = ["refs_app"]

refs_app = typer.Typer(
    help="Reference tables for identifiers: fetch upstream files, build a store, resolve.",
    no_args_is_help=True,
)


#: What ``refs resolve`` resolves.
RefKind = StrEnum("RefKind", ["compound", "cell", "gene"])


@refs_app.command("build")
def refs_build(
    source: Annotated[
        Path, typer.Option("--from", help="Folder of upstream reference files (recursive).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Reference store folder to write.")],
    online_pubchem: Annotated[
        bool,
        typer.Option("--online-pubchem", help="Allow online PubChem lookups (off: no network)."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing reference store at --out.")
    ] = False,
    packages: Annotated[
        str,
        typer.Option(
            "--packages",
            help="Reference files of installed packages to read too: 'auto' (every one "
            "installed: FDA substance names, Cellosaurus and Cell Ontology builds), 'none', "
            "or source names separated by commas (fda_unii_names, cellosaurus_cxg, "
            "cell_ontology_cxg).",
        ),
    ] = "auto",
) -> None:
    """Build a reference store from local upstream files; never touches the network.

    Example:

        perturbridge refs build --from upstream/ --out refs
        perturbridge refs build --from upstream/ --out refs --packages none
    """
    from ..ids.store import RefStore

    choice = packages.strip()
    sources: list[str] | str = (
        "auto" if choice == "auto" else [] if choice == "none" else
        [p.strip() for p in choice.split(",") if p.strip()]
    )  # fmt: skip
    try:
        store = RefStore.build(
            source_dir=source, out=out, online_pubchem=online_pubchem, package_sources=sources,
            progress=True, overwrite=force,
        )  # fmt: skip
    except user_errors(OSError) as err:
        fail(err)
    console.print(_refs_inputs_table(store.manifest))
    console.print(
        f"wrote {out}: "
        + ", ".join(f"{t} {store.manifest['tables'][t]['rows']:,}" for t in store.tables)
    )


def _refs_inputs_table(manifest: dict) -> Table:
    table = Table(title="reference inputs")
    for col in ("parser", "file", "version", "rows"):
        table.add_column(col)
    for inp in manifest.get("inputs", []):
        rows = ", ".join(f"{k} {v:,}" for k, v in inp.get("rows", {}).items())
        version = inp.get("version") or "-"
        if inp.get("package"):
            version = f"{version} ({inp['package']} {inp.get('package_version')})"
        table.add_row(inp["parser"], inp.get("path") or "(built in)", version, rows)
    for un in manifest.get("unmatched_files", []):
        table.add_row("-", un["path"], "-", f"not read: {un['reason']}")
    for note in manifest.get("notes", []):
        table.add_row("-", "-", "-", note)
    return table


@refs_app.command("fetch")
def refs_fetch(
    out: Annotated[Path, typer.Option("--out", help="Folder for the downloaded files.")],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Mirror holding every file by its name.")
    ] = None,
    url: Annotated[
        list[str] | None, typer.Option("--url", help="Override one file: NAME=URL (repeatable).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML/JSON file with base_url and urls.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Fetch only this file (repeatable).")
    ] = None,
    include_all: Annotated[
        bool, typer.Option("--all", help="Also fetch the large PubChem extracts.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Download even if up to date.")] = False,
    retries: Annotated[int, typer.Option(help="Retries per file after transient errors.")] = 3,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be fetched from where.")
    ] = False,
) -> None:
    """Download upstream reference files (HGNC, Cellosaurus, DepMap, LINCS, Repurposing Hub).

    Example:

        perturbridge refs fetch --out upstream/
        perturbridge refs fetch --out upstream/ --url depmap_sample_info=https://host/Model.csv
    """
    from ..ids.fetch import REMOTE_FILES, FetchOptions, fetch_references, resolve_urls

    overrides: dict[str, str] = {}
    for item in url or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail(f"--url expects NAME=URL, found {item!r}")
        overrides[name.strip()] = value.strip()
    try:
        if dry_run:
            plan = resolve_urls(
                names=only or None,
                base_url=base_url,
                urls=overrides,
                config=config,
                include_all=include_all,
            )
            table = Table(title="reference files")
            for col in ("name", "url", "description"):
                table.add_column(col)
            for name, u in plan.items():
                table.add_row(name, u, REMOTE_FILES[name].description)
            console.print(table)
            return
        res = fetch_references(
            out,
            names=only or None,
            base_url=base_url,
            urls=overrides,
            config=config,
            include_all=include_all,
            options=FetchOptions(force=force, retries=retries),
            progress=True,
        )
    except user_errors(OSError) as err:
        fail(err)
    table = Table(title=f"fetched into {out}")
    for col in ("name", "file", "status", "bytes", "sha256"):
        table.add_column(col)
    for f in res.files:
        table.add_row(f.name, f.path, f.status, f"{f.size:,}", f.sha256[:12])
    console.print(table)
    console.print(f"wrote {res.manifest_path}")


@refs_app.command("info")
def refs_info(refs: Annotated[Path, typer.Argument(help="Reference store folder.")]) -> None:
    """Describe a reference store: inputs, versions, tables, derived steps.

    Example:

        perturbridge refs info refs
    """
    from ..ids.cells import CELL_LOOKUP_STEP, cell_lookup_params
    from ..ids.compound_lookup import REBUILD_HINT, lookup_problem
    from ..ids.genes import GENE_LOOKUP_STEP, gene_lookup_params
    from ..ids.keyed import step_problem
    from ..ids.store import RefStore

    try:
        store = RefStore.open(refs)
    except user_errors(OSError) as err:
        fail(err)
    m = store.manifest
    console.print(
        f"reference store {refs} (format {m['store_format']}, perturbridge "
        f"{m.get('package_version')}, built {m.get('created_utc')})"
    )
    console.print(_refs_inputs_table(m))
    table = Table(title="tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name in store.tables:
        table.add_row(name, f"{m['tables'][name]['rows']:,}")
    console.print(table)
    for step in m.get("derived", []):
        details = ", ".join(
            f"{k}={[*v[:5], '…'] if isinstance(v, list) and len(v) > 5 else v}"
            for k, v in step.items()
            if k not in ("step", "status")
        )
        console.print(
            f"derived {step['step']}: {step['status']}" + (f" ({details})" if details else "")
        )
    problem = lookup_problem(m)
    if problem:
        console.print(f"note: {problem}: compound resolvers build it at every load; {REBUILD_HINT}")
    saved = {
        "cell": ("cells", CELL_LOOKUP_STEP, cell_lookup_params("Homo sapiens")),
        "gene": ("genes", GENE_LOOKUP_STEP, gene_lookup_params()),
    }
    for what, (needs, step_name, params) in saved.items():
        has = needs in m.get("tables", {})
        problem = step_problem(m, step_name, params=params) if has else None
        if problem:
            console.print(
                f"note: {problem}: {what} resolvers build it at every load; {REBUILD_HINT}"
            )
    for note in m.get("notes", []):
        console.print(f"note: {note}")


def _read_values(path: Path, column: str | None) -> list[str]:
    import pandas as pd

    if column is None:
        with path.open(encoding="utf-8-sig") as fh:
            return [line.strip() for line in fh if line.strip()]
    name = path.name.lower().removesuffix(".gz")
    sep = "," if name.endswith(".csv") else "\t"
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    if column not in df.columns:
        raise KeyError(f"{path}: no column {column!r}; columns are {list(df.columns)[:20]}")
    return df[column].tolist()


@refs_app.command("resolve")
def refs_resolve(
    file: Annotated[
        Path, typer.Argument(help="Values to resolve: one per line, or a table with --column.")
    ],
    kind: Annotated[RefKind, typer.Option("--kind", help="compound, cell or gene.")],
    refs: Annotated[Path, typer.Option("--refs", help="Reference store folder.")],
    out: Annotated[Path, typer.Option("--out", help="TSV to write: input → resolution.")],
    column: Annotated[
        str | None, typer.Option("--column", help="Column of a CSV/TSV table to resolve.")
    ] = None,
) -> None:
    """Resolve compound, cell or gene identifiers against a reference store.

    Writes one row per input value with the match type and status, and prints coverage.

    Example:

        perturbridge refs resolve --kind gene --refs refs genes.txt --out genes.tsv
    """
    import pandas as pd

    from ..ids.store import RefStore
    from ..io import atomic_file

    check_out_file(out)
    try:
        values = _read_values(file, column)
        store = RefStore.open(refs)
        if kind is RefKind.gene:
            from ..ids.genes import GeneResolver

            res = GeneResolver.from_store(store).resolve(values)
        elif kind is RefKind.cell:
            from ..ids.cells import CellResolver

            res = CellResolver.from_store(store).resolve(values)
        else:
            try:
                from ..ids.compounds import CompoundResolver
            except ImportError as err:
                raise PerturbridgeError(f"compound resolution is not available ({err})") from err
            res = CompoundResolver.from_store(store).resolve(values)
        if "input" not in res.columns:
            res.insert(0, "input", pd.Series(values, index=res.index, dtype=object))
        with atomic_file(out) as tmp:
            res.to_csv(tmp, sep="\t", index=False)
    except user_errors(OSError) as err:
        fail(err)
    n = len(res)
    table = Table(title=f"{kind.value} resolution of {file.name}")
    table.add_column("status")
    table.add_column("n", justify="right")
    if "status" in res.columns:
        for status, cnt in res["status"].value_counts().items():
            table.add_row(str(status), f"{cnt:,}")
        # a value the resolver found: "resolved" (the identity vocabulary; genes and
        # cells said "mapped" before it)
        found = res["status"].isin(["resolved", "mapped"])
        mapped = int(found.sum())
    else:
        mapped = int(res.iloc[:, 1].notna().sum()) if res.shape[1] > 1 else 0
    console.print(table)
    pct = 100 * mapped / n if n else 0.0
    line = f"coverage: {mapped:,} of {n:,} mapped ({pct:.1f}%)"
    if kind is RefKind.gene and n:
        ens = int((found & res["ensembl_gene_id"].notna()).sum())
        line += f"; {ens:,} to an Ensembl id ({100 * ens / n:.1f}%)"
    console.print(line)
    console.print(f"wrote {out}")
