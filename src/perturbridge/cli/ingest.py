"""The ``perturbridge`` command line: a thin layer over the public API."""

from __future__ import annotations

import errno
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from ._version import __version__
from .errors import PerturbridgeError
from .ledger import Ledger

if TYPE_CHECKING:
    from .sources import IngestResult

app = typer.Typer(
    name="perturbridge",
    help="Harmonize small-molecule perturbation transcriptomics and compute limma effects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(
    help="Read an upstream dataset into validated Samples.", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")
refs_app = typer.Typer(
    help="Reference tables for identifiers: fetch upstream files, build a store, resolve.",
    no_args_is_help=True,
)
app.add_typer(refs_app, name="refs")
console = Console(stderr=False)
err_console = Console(stderr=True)


class Mode(StrEnum):
    """Replicate modes of the DE step."""

    group = "group"
    separate = "separate"


class Engine(StrEnum):
    """Who computes the statistics."""

    ours = "ours"
    r = "r"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def _ledger_table(ledger: Ledger, title: str) -> Table:
    table = Table(title=title)
    for col in ("stage", "status", "reason", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for row in ledger.summary().itertuples(index=False):
        table.add_row(row.stage, row.status, row.reason or "-", f"{row.n:,}")
    return table


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=2) from err


def _check_out_file(out: Path, *, option: str = "--out") -> None:
    """Refuse an output path that cannot be written, before any computation: a folder,
    a file name longer than the file system allows, a missing or read-only folder."""
    import os

    if len(out.name.encode()) > 255:  # first: stat() of such a name raises
        _fail(ValueError(f"{option}: the file name is too long ({len(out.name)} characters)"))
    if out.is_dir():
        _fail(ValueError(f"{option} {out} is a folder; give the path of the file to write"))
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        _fail(ValueError(f"{option} {out}: the folder {parent} is not writable"))


def _read_samples(path: Path) -> Any:
    """A Samples .h5ad for ``de``, or a ValueError saying what the file is instead."""
    import anndata as ad

    if not path.is_file():
        raise FileNotFoundError(f"Samples file not found: {path}")
    try:
        adata = ad.read_h5ad(path)
    except OSError as err:
        raise ValueError(
            f"{path} is not an .h5ad (AnnData) file ({err}); `de` reads Samples written by "
            "`perturbridge ingest` or `perturbridge pseudobulk` (a GCT/GCTX file is ingested "
            "first: perturbridge ingest l1000 --level3 FILE --out samples.h5ad)"
        ) from err
    kind = adata.uns.get("perturbridge", {}).get("kind")
    if kind == "effects" or "logFC" in adata.layers:
        raise ValueError(
            f"{path} holds Effects (the output of `de`: one row per contrast), not Samples; "
            "run `de` on the Samples file it was computed from"
        )
    return adata


def _print_version(value: bool) -> None:
    if value:
        console.print(f"perturbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    _setup_logging(verbose)


REFS_OPTION = typer.Option(
    "--refs",
    help="Reference store (perturbridge refs build): resolve compounds, cells and genes.",
)


class L1000Phase(StrEnum):
    """LINCS L1000 GEO series."""

    phase1 = "1"
    phase2 = "2"


class L1000Genes(StrEnum):
    """Which L1000 genes to read."""

    landmark = "landmark"
    bing = "bing"
    all = "all"


@ingest_app.command("l1000")
def ingest_l1000(
    out: Annotated[Path, typer.Option("--out", help="Samples .h5ad to write.")],
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
    ledger_out: Annotated[
        Path | None, typer.Option("--ledger", help="Also write the ledger as TSV here.")
    ] = None,
    refs: Annotated[Path | None, REFS_OPTION] = None,
) -> None:
    """Ingest L1000 level 3 into Samples; every well ends in the ledger.

    Either one level 3 file (with column metadata or --inst-info), or the GEO layout:
    the level 3 GCTX with inst_info, gene_info, cell_info and pert_info (or --folder
    and --phase).

    Example:

        perturbridge ingest l1000 --level3 test_l1000.gct --out samples.h5ad

        perturbridge ingest l1000 --folder GSE92742 --phase 1 --out phase1.h5ad
    """
    from .io import write_h5ad
    from .sources import read_l1000

    _check_out_file(out)
    try:
        res = _annotated(
            read_l1000(
                level3,
                inst_info=inst_info,
                gene_info=gene_info,
                cell_info=cell_info,
                pert_info=pert_info,
                folder=folder,
                phase=None if phase is None else int(phase.value),  # type: ignore[arg-type]
                genes=genes.value,  # type: ignore[arg-type]
                dataset=dataset,
                progress=True,
            ),
            refs,
        )
        res.samples.uns["ledger"] = res.ledger.to_frame()
        write_h5ad(res.samples, out)
        if ledger_out is not None:
            res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError) as err:
        _fail(err)
    label = level3.name if level3 is not None else str(folder)
    console.print(_ledger_table(res.ledger, f"ledger of {label}"))
    console.print(
        f"wrote {out}: {res.samples.n_obs:,} samples × {res.samples.n_vars:,} genes "
        f"({int(res.samples.obs['is_control'].sum()):,} vehicle controls)"
    )


def _annotated(res: IngestResult, refs: Path | None) -> IngestResult:
    """Resolve identities through the reference store, when one is given."""
    if refs is None:
        return res
    from .ids.annotate import IdentityResolvers, annotate_samples

    samples, notes = annotate_samples(res.samples, IdentityResolvers.from_store(str(refs)))
    res.ledger.extend(notes)
    return type(res)(samples, res.ledger)


def _parse_assignments(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        out[name.strip().replace("-", "_")] = value
    return out


def _takes_several(param: inspect.Parameter) -> bool:
    """Whether a reader parameter accepts several values (a sequence of files)."""
    ann = str(param.annotation)
    return "Sequence" in ann or "list[" in ann or "tuple[" in ann


def _parse_inputs(
    items: list[str], params: Mapping[str, inspect.Parameter], *, source: str
) -> dict[str, str]:
    """``--input NAME=PATH`` options; a name given again adds its files to the input
    when the reader takes several files for it, else it is refused (never the last
    one kept)."""
    given: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--input")
        given.setdefault(name.strip().replace("-", "_"), []).append(value)
    out: dict[str, str] = {}
    for name, values in given.items():
        if len(values) > 1 and name in params and not _takes_several(params[name]):
            raise typer.BadParameter(
                f"{source}: input {name!r} takes one file, given {len(values)} times: "
                f"{values}; pass it once",
                param_hint="--input",
            )
        out[name] = ",".join(values)
    return out


def _convert_parameter(param: inspect.Parameter, value: str) -> object:
    """A command-line string as the reader's parameter expects it (by its annotation)."""
    ann = str(param.annotation)
    if _takes_several(param):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if "PathLike" in ann or "Path" in ann:
        return Path(value)
    if ann.startswith("bool"):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise typer.BadParameter(f"{param.name} must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if ann.startswith("int"):
        return int(value)
    if ann.startswith("float"):
        return float(value)
    return value


def _reader_params_help(reader: Callable[..., object]) -> str:
    sig = inspect.signature(reader)
    lines = []
    for p in sig.parameters.values():
        default = "required" if p.default is inspect.Parameter.empty else f"default {p.default!r}"
        lines.append(f"  {p.name}  ({default})")
    return "\n\n".join(lines)


def _make_ingest_command(name: str) -> None:
    from .sources import get_source

    adapter = get_source(name)
    reader = adapter.reader()
    params = inspect.signature(reader).parameters

    def command(
        out: Annotated[Path, typer.Option("--out", help="Samples .h5ad to write.")],
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
        ledger_out: Annotated[
            Path | None, typer.Option("--ledger", help="Also write the ledger as TSV here.")
        ] = None,
        refs: Annotated[Path | None, REFS_OPTION] = None,
    ) -> None:
        from .io import write_h5ad

        given = {
            **_parse_inputs(inputs or [], params, source=name),
            **_parse_assignments(settings or [], "--set"),
        }
        unknown = sorted(set(given) - set(params))
        if unknown:
            _fail(ValueError(f"{name}: unknown parameter(s) {unknown}; known: {list(params)}"))
        kwargs = {k: _convert_parameter(params[k], v) for k, v in given.items()}
        _check_out_file(out)
        try:
            res = _annotated(adapter.ingest(**kwargs), refs)
            res.samples.uns["ledger"] = res.ledger.to_frame()
            write_h5ad(res.samples, out)
            if ledger_out is not None:
                res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
        except (PerturbridgeError, ValueError, KeyError, FileNotFoundError, TypeError) as err:
            _fail(err)
        console.print(_ledger_table(res.ledger, f"ledger of {name}"))
        console.print(
            f"wrote {out}: {res.samples.n_obs:,} samples × {res.samples.n_vars:,} genes "
            f"({int(res.samples.obs['is_control'].sum()):,} vehicle controls)"
        )

    files = ", ".join(adapter.expected_files) or "see the parameters"
    command.__doc__ = (
        f"Ingest {adapter.description} ({adapter.assay}) into Samples.\n\n"
        f"Expected files: {files}.\n\n"
        f"Parameters of {reader.__name__} (give files with --input, others with --set):"
        f"\n\n{_reader_params_help(reader)}\n\n"
        "Example:\n\n"
        f"    perturbridge ingest {name} --input "
        f"{next(iter(params), 'path')}=FILE --out samples.h5ad"
    )
    ingest_app.command(name)(command)


def _register_ingest_commands() -> None:
    from .sources import source_names

    for name in source_names():
        if name != "l1000":  # has its own command with named options
            _make_ingest_command(name)


_register_ingest_commands()


@app.command("de")
def de(
    samples: Annotated[Path, typer.Argument(help="Samples .h5ad (log expression or counts).")],
    out: Annotated[Path, typer.Option("--out", help="Effects .h5ad to write.")],
    mode: Annotated[
        Mode, typer.Option(help="group: pool replicate wells; separate: one contrast per well.")
    ] = Mode.group,
    engine: Annotated[
        Engine, typer.Option(help="ours (default) or r: the same analysis run by R limma/edgeR.")
    ] = Engine.ours,
    no_robust: Annotated[bool, typer.Option("--no-robust", help="eBayes without robust.")] = False,
    no_trend: Annotated[
        bool, typer.Option("--no-trend", help="limma-trend: eBayes without the trend.")
    ] = False,
    keep_orphan_vehicles: Annotated[
        bool,
        typer.Option(
            "--keep-orphan-vehicles",
            help="Keep vehicles at times with no treated sample in the fit (default: drop "
            "them to the ledger, as the original pipeline did).",
        ),
    ] = False,
    fit_per_control_group: Annotated[
        bool,
        typer.Option(
            "--fit-per-control-group",
            help="One fit per value of the control-matching columns (the original fitted "
            "GDPx2 per cell type x DMSO %), not one per context.",
        ),
    ] = False,
    stdev_scaled: Annotated[
        bool, typer.Option("--stdev-scaled", help="Also write the release's stdev.scaled layer.")
    ] = False,
) -> None:
    """Effects of each treated condition against its matched vehicle.

    Log expression (L1000) gets limma-trend; counts get limma-voom (edgeR filterByExpr,
    TMM, voom). One fit per dataset × cell context.

    Example:

        perturbridge de samples.h5ad --mode group --out effects.h5ad
    """

    from .de import limma_trend
    from .de.voom import limma_voom

    _check_out_file(out)
    from .io import provenance, write_h5ad

    choices: dict[str, Any] = {
        "orphan_vehicles": "keep" if keep_orphan_vehicles else "drop",
        "fit_per_control_group": fit_per_control_group,
        "stdev_scaled": stdev_scaled,
    }
    try:
        adata = _read_samples(samples)
        adata.uns.pop("ledger", None)
        kind = adata.uns.get("perturbridge", {}).get("value_kind")
        method: Literal["trend", "voom"] = "voom" if kind == "counts" else "trend"
        if engine is Engine.r:
            from .de.r_limma import limma_r

            res = limma_r(adata, method=method, mode=mode.value, progress=True, **choices)
        elif method == "voom":
            res = limma_voom(adata, mode=mode.value, robust=not no_robust, progress=True, **choices)
        else:
            res = limma_trend(
                adata, mode=mode.value, robust=not no_robust, trend=not no_trend,
                progress=True, **choices,
            )  # fmt: skip
        res.effects.uns["ledger"] = res.ledger.to_frame()
        res.effects.uns["perturbridge"]["provenance"] = provenance(
            step="de", inputs=[samples], params=res.effects.uns["perturbridge"]["params"]
        )
        write_h5ad(res.effects, out)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError, RuntimeError) as err:
        _fail(err)
    if len(res.ledger):
        console.print(_ledger_table(res.ledger, "conditions and genes"))
    console.print(
        f"wrote {out}: limma-{method} ({engine.value}), {res.effects.n_obs:,} contrasts × "
        f"{res.effects.n_vars:,} genes"
    )


@app.command("pseudobulk")
def pseudobulk_cmd(
    cells: Annotated[Path, typer.Argument(help="Cells × genes raw counts (.h5ad, CSR).")],
    out: Annotated[Path, typer.Option("--out", help="Pseudobulk .h5ad to write.")],
    groupby: Annotated[
        str, typer.Option(help="Comma-separated obs columns that define a pseudobulk.")
    ] = "plate,well,cell_line,condition",
    min_counts: Annotated[float, typer.Option(help="Drop cells with fewer counts.")] = 0,
    min_genes: Annotated[int, typer.Option(help="Drop cells with fewer detected genes.")] = 0,
    quality_gene: Annotated[
        str | None, typer.Option(help="Nucleus-quality gene, e.g. MALAT1 (var name).")
    ] = None,
    quality_min_fraction: Annotated[
        float, typer.Option(help="Minimum fraction of a cell's counts on the quality gene.")
    ] = 0.0,
    min_cells: Annotated[int, typer.Option(help="Drop pseudobulks with fewer cells.")] = 1,
    chunk_size: Annotated[int, typer.Option(help="Cells read per chunk.")] = 100_000,
    ledger_out: Annotated[
        Path | None, typer.Option("--ledger", help="Also write the per-cell ledger (TSV).")
    ] = None,
) -> None:
    """Sum single-cell counts per plate × well × cell line × condition, streaming.

    Every cell ends in the ledger: kept (with its pseudobulk) or dropped with a reason.

    Example:

        perturbridge pseudobulk plate1.h5ad --out plate1_pb.h5ad --min-cells 10
    """
    from .io import write_h5ad
    from .pseudobulk import pseudobulk

    _check_out_file(out)
    try:
        res = pseudobulk(
            cells,
            groupby=[g.strip() for g in groupby.split(",") if g.strip()],
            min_counts=min_counts,
            min_genes=min_genes,
            quality_gene=quality_gene,
            quality_min_fraction=quality_min_fraction,
            min_cells=min_cells,
            chunk_size=chunk_size,
            progress=True,
        )
        write_h5ad(res.counts, out)
        if ledger_out is not None:
            res.ledger.to_frame().to_csv(ledger_out, sep="\t", index=False)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError) as err:
        _fail(err)
    console.print(_ledger_table(res.ledger, f"cells of {cells.name}"))
    console.print(f"wrote {out}: {res.counts.n_obs:,} pseudobulks × {res.counts.n_vars:,} genes")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's files.")] = Path("demo_out"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 0,
    l1000_only: Annotated[
        bool, typer.Option("--l1000-only", help="Only the detailed L1000 demo.")
    ] = False,
    compendium: Annotated[
        bool,
        typer.Option(
            "--compendium/--no-compendium",
            help="Also build a compendium of every family through a plan file.",
        ),
    ] = True,
    agreement: Annotated[
        bool,
        typer.Option(
            "--agreement/--no-agreement",
            help="End with agreement diagnostics and the HTML report of a simulated "
            "multi-assay compendium.",
        ),
    ] = True,
) -> None:
    """Simulate every assay family in its upstream format, ingest, compute effects, score.

    First a detailed L1000 run (ledger and recovery metrics), then one small dataset per
    source adapter (L1000, OP3, DRUG-seq MoA Box, VCPI, GDPx2, sci-Plex3, Tahoe-100M,
    CIGS, DILImap, generic) written in its upstream layout, ingested, analysed with
    limma-voom or limma-trend, with per-source ledger counts and recovery; then a
    compendium of every family built from a plan file; last, agreement diagnostics of a
    simulated multi-assay compendium (a planted shared effect seen through assay
    distortions) and the HTML report (``<out>/report.html``).

    Example:

        perturbridge demo --out demo_out
    """
    from .demo import run_demo
    from .demo_all import run_demo_all, summary_table

    with console.status("simulating, ingesting and fitting ..."):
        res = run_demo(out, seed=seed, progress=False)
    console.print(_ledger_table(res.ledger, "ledger (every simulated well and condition)"))
    table = Table(title="recovery of the planted effects (group mode)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in res.metrics.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else f"{v:,}")
    console.print(table)
    console.print(
        f"files in {res.out_dir}/: " + ", ".join(sorted(p.name for p in res.files.values()))
    )
    if l1000_only:
        return
    with console.status("every source family: simulating upstream files, ingesting, fitting ..."):
        fam = summary_table(run_demo_all(out / "families", seed=seed))
    table = Table(title="one simulated dataset per source (ledger counts and recovery)")
    cols = ["source", "assay", "samples", "genes", "contrasts", "recovery_r"]
    for col in [*cols, "kept", "dropped (stage/reason: n)"]:
        table.add_column(col, overflow="fold")
    for row in fam.itertuples(index=False):
        table.add_row(
            *(str(getattr(row, c)) for c in cols),
            f"{row.ledger_kept:,}",
            row.skipped or row.dropped_reasons,
        )
    console.print(table)
    console.print(
        "recovery_r: Pearson r of estimated vs planted logFC over matched contrasts × genes; "
        f"files in {out / 'families'}/<source>/ and {out / 'families' / 'families.tsv'}"
    )
    if not compendium:
        return
    from .cli_compendium import info_cmd
    from .compendium.demo import run_demo_compendium

    with console.status("building a compendium of every family from a plan file ..."):
        run_demo_compendium(out / "compendium_demo", seed=seed)
    console.print(
        f"plan: {out / 'compendium_demo' / 'plan.toml'}; "
        f"store: {out / 'compendium_demo' / 'compendium'} (perturbridge info summarizes it):"
    )
    info_cmd(out / "compendium_demo" / "compendium")
    if agreement:
        _demo_agreement(out, seed=seed)


def _demo_agreement(out: Path, *, seed: int) -> None:
    """The demo's last step: agreement diagnostics and the report."""
    from .agreement import run_agreement
    from .agreement.report import write_report
    from .cli_agreement import _summary_table
    from .simulate import simulate_agreement_store

    folder = out / "agreement_demo"
    with console.status("a multi-assay compendium with a planted shared effect ..."):
        store = simulate_agreement_store(folder / "compendium", seed=seed)
    with console.status("agreement diagnostics (2,000 bootstrap draws) ..."):
        res = run_agreement(store, out=folder / "agreement", seed=seed, progress=False)
    with console.status("writing the report ..."):
        html = write_report(store, out / "report.html", result=res)
    console.print(_summary_table(res))
    console.print(
        "The published pattern: direction agreement above the source-centroid baseline, "
        "DEG-restricted Spearman below it. "
        f"Tables in {folder / 'agreement'}/; the report: {html} (open it in a browser)."
    )


sources_app = typer.Typer()
app.add_typer(sources_app, name="sources")


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
    from .sources import list_sources

    listing = list_sources()
    table = Table(title=f"{len(listing)} source adapters")
    for col in ("name", "assay", "value kind", "description"):
        table.add_column(col, overflow="fold")
    for row in listing.itertuples(index=False):
        table.add_row(row.name, row.assay, row.value_kind, row.description)
    console.print(table)
    console.print("[bold]expected files[/] (perturbridge ingest NAME --help for the parameters)")
    for row in listing.itertuples(index=False):
        console.print(f"  [bold]{row.name}[/]: {row.expected_files or '-'}")


class RefKind(StrEnum):
    """What ``refs resolve`` resolves."""

    compound = "compound"
    cell = "cell"
    gene = "gene"


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
) -> None:
    """Build a reference store from local upstream files; never touches the network.

    Example:

        perturbridge refs build --from upstream/ --out refs
    """
    from .ids.store import RefStore

    try:
        store = RefStore.build(
            source_dir=source, out=out, online_pubchem=online_pubchem, progress=True,
            overwrite=force,
        )  # fmt: skip
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError, OSError) as err:
        _fail(err)
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
        table.add_row(
            inp["parser"], inp.get("path") or "(built in)", inp.get("version") or "-", rows
        )
    for un in manifest.get("unmatched_files", []):
        table.add_row("-", un["path"], "-", f"not read: {un['reason']}")
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
    from .ids.fetch import REMOTE_FILES, fetch_references, resolve_urls

    overrides: dict[str, str] = {}
    for item in url or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            _fail(ValueError(f"--url expects NAME=URL, found {item!r}"))
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
            force=force,
            retries=retries,
            progress=True,
        )
    except (PerturbridgeError, ValueError, KeyError, OSError) as err:
        _fail(err)
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
    from .ids.store import RefStore

    try:
        store = RefStore.open(refs)
    except (PerturbridgeError, ValueError, OSError) as err:
        _fail(err)
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

    from .ids.store import RefStore
    from .io import atomic_path

    _check_out_file(out)
    try:
        values = _read_values(file, column)
        store = RefStore.open(refs)
        if kind is RefKind.gene:
            from .ids.genes import GeneResolver

            res = GeneResolver.from_store(store).resolve(values)
        elif kind is RefKind.cell:
            from .ids.cells import CellResolver

            res = CellResolver.from_store(store).resolve(values)
        else:
            try:
                from .ids.compounds import CompoundResolver
            except ImportError as err:
                raise PerturbridgeError(f"compound resolution is not available ({err})") from err
            res = CompoundResolver.from_store(store).resolve(values)
        if "input" not in res.columns:
            res.insert(0, "input", pd.Series(values, index=res.index, dtype=object))
        with atomic_path(out) as tmp:
            res.to_csv(tmp, sep="\t", index=False)
    except (PerturbridgeError, ValueError, KeyError, FileNotFoundError, OSError) as err:
        _fail(err)
    n = len(res)
    table = Table(title=f"{kind.value} resolution of {file.name}")
    table.add_column("status")
    table.add_column("n", justify="right")
    if "status" in res.columns:
        for status, cnt in res["status"].value_counts().items():
            table.add_row(str(status), f"{cnt:,}")
        # genes and cells say "mapped", the compound resolver "resolved"
        mapped = int(res["status"].isin(["mapped", "resolved"]).sum())
    else:
        mapped = int(res.iloc[:, 1].notna().sum()) if res.shape[1] > 1 else 0
    console.print(table)
    pct = 100 * mapped / n if n else 0.0
    line = f"coverage: {mapped:,} of {n:,} mapped ({pct:.1f}%)"
    if kind is RefKind.gene and n:
        ens = int(((res["status"] == "mapped") & res["ensembl_gene_id"].notna()).sum())
        line += f"; {ens:,} to an Ensembl id ({100 * ens / n:.1f}%)"
    console.print(line)
    console.print(f"wrote {out}")


from .cli_compendium import register as _register_compendium  # noqa: E402

_register_compendium(app)

from .cli_agreement import register as _register_agreement  # noqa: E402

_register_agreement(app)


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free space (or point --out elsewhere) and run again",
    errno.EDQUOT: "the disk quota is exceeded; free space and run again",
    errno.EROFS: "the file system is read-only; write the output elsewhere",
    errno.EACCES: "permission denied; write the output elsewhere or fix the permissions",
    errno.EPERM: "operation not permitted; check the permissions",
    errno.ENAMETOOLONG: "a file name is too long; use shorter names (e.g. dataset names)",
}


def main() -> None:
    """Entry point of the ``perturbridge`` command.

    Mistakes a user can make are reported by the commands themselves; what the operating
    system refuses (a full disk, a read-only file system, a name that is too long, no
    permission) is reported here as one line with what to do, not as a traceback. Any
    other exception is a bug and keeps its traceback.
    """
    try:
        app()
    except OSError as err:
        if err.errno not in _OS_ADVICE:
            raise
        where = f" ({err.filename})" if err.filename else ""
        err_console.print(
            f"[bold red]error:[/] {err.strerror or err}{where}: {_OS_ADVICE[err.errno]}",
            markup=True,
            highlight=False,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
