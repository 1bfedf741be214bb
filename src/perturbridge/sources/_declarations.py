"""What each of the package's source adapters is, as data: the source registry.

:data:`ADAPTERS` declares every adapter of the package (its name, assay, value kind,
description, expected files and the parameters ``perturbridge ingest <name>`` takes) and
the module that implements it. This module imports nothing but the standard library, so
that listing the adapters and writing the help of ``perturbridge ingest <name>`` import
no adapter (nor pandas, AnnData and SciPy, which the adapters use); an adapter's module
loads when the adapter is used. :func:`~perturbridge.sources.register_source` gives the
adapter class its declaration, which the class does not repeat.

A declared parameter's ``default`` is what the help shows; it must be the reader's own
default (``tests/sources/test_declarations.py`` checks every declaration against its
reader's signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

__all__ = ["ADAPTERS", "CliParameter", "SourceDeclaration"]


@dataclass(frozen=True)
class CliParameter:
    """A parameter of an adapter's reader as ``perturbridge ingest <name>`` takes it:
    files with ``--input NAME=PATH``, other values with ``--set NAME=VALUE``.

    ``type`` is what the value becomes (``Path``, ``str``, ``int``, ``float`` or
    ``bool``); a ``multiple`` parameter takes several values (a name repeated in
    ``--input``, or comma-separated) and becomes a tuple of strings. ``default`` is shown
    in the help; the reader's own default applies when the parameter is not given.
    """

    name: str
    type: type[Path] | type[str] | type[int] | type[float] | type[bool] = str
    help: str = ""
    default: object = None
    required: bool = False
    multiple: bool = False

    def convert(self, value: str) -> object:
        """The command-line string ``value`` as the reader takes it; a ``ValueError``
        names the parameter and the value when it is not of the parameter's type."""
        if self.multiple:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if self.type is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        if self.type is int or self.type is float:
            try:
                return self.type(value)
            except ValueError:
                kind = "a whole number" if self.type is int else "a number"
                raise ValueError(f"{self.name} must be {kind}, got {value!r}") from None
        return self.type(value)


@dataclass(frozen=True)
class SourceDeclaration:
    """One adapter of the package: ``name`` (``perturbridge ingest <name>``, plans), the
    ``assay`` of its datasets, its ``value_kind`` (what its Samples ``X`` holds), a
    one-line ``description``, the upstream files it reads (names or patterns, for
    ``perturbridge sources list``) and the parameters of its command; ``module`` (relative
    to :mod:`perturbridge.sources`) defines and registers the adapter."""

    name: str
    assay: str
    value_kind: str
    description: str
    expected_files: tuple[str, ...]
    cli_parameters: tuple[CliParameter, ...] = ()

    @property
    def module(self) -> str:
        """The adapter's module (a module or package named as the adapter)."""
        return f".{self.name}"


def _dataset(default: str) -> CliParameter:
    """The ``dataset`` parameter: the dataset's name in the Samples and the store."""
    return CliParameter("dataset", str, "Dataset name.", default)


def _h5ad(what: str) -> tuple[CliParameter, CliParameter]:
    """The ``h5ad`` input (``what`` it holds) and the ``layer`` holding its counts."""
    return CliParameter("h5ad", Path, what, required=True), _LAYER


_LAYER = CliParameter("layer", str, "Layer holding the counts (default: X).")
_PROGRESS = CliParameter("progress", bool, "Show progress.", False)
_MIN_CELLS = CliParameter("min_cells", int, "Drop pseudobulks with fewer cells.", 1)
_DOSE_UNIT = CliParameter("default_dose_unit", str, "Unit of doses given without one.", "nM")


def _chunk(what: str, default: int) -> CliParameter:
    return CliParameter("chunk_size", int, f"{what} read per chunk.", default)


def _controls(*names: str) -> CliParameter:
    return CliParameter("positive_controls", str, "Controls.", names, multiple=True)


def _cigs_subset(library: str, cells: str, dose: str) -> str:
    """The two workbooks of a CIGS subset (those of :data:`~.cigs.SUBSETS`)."""
    stem = f"{library}_{cells}_{dose}"
    return f"{stem}_Counts.xlsx + {stem}_MetaData.xlsx"


_DECLARATIONS = (
    SourceDeclaration(
        "cigs",
        assay="HTS2 / HiMAP-seq",
        value_kind="counts",
        description=(
            "CIGS: MCE bioactive (HTS2) and TCM (HiMAP-seq) compounds, 3,407 targeted genes, "
            "HEK293T and MDA-MB-231, six subsets with fixed dose and 24 h"
        ),
        expected_files=(
            _cigs_subset("MCE_Bioactive_Compounds", "HEK293T", "10μM"),
            _cigs_subset("MCE_Bioactive_Compounds", "MDA_MB_231", "10μM"),
            _cigs_subset("TCM_Compounds", "HEK293T", "10"),
            _cigs_subset("TCM_Compounds", "HEK293T", "20"),
            _cigs_subset("TCM_Compounds", "MDA_MB_231", "10"),
            _cigs_subset("TCM_Compounds", "MDA_MB_231", "20"),
            "41592_2025_2781_MOESM3_ESM.xlsx (optional compound table)",
        ),
        cli_parameters=(
            CliParameter("folder", Path, "Folder of the CIGS subsets.", required=True),
            CliParameter("subsets", str, "Subsets to read (default: all).", multiple=True),
            CliParameter("compounds", Path, "Compound table (optional)."),
            _dataset("cigs"),
            CliParameter(
                "exclude_plates",
                str,
                "Plates left out.",
                ("MCE4_293T_24H_X1", "MCE4_293T_24H_X2", "MCE4_293T_24H_X3"),
                multiple=True,
            ),
            CliParameter("iqr_factor", float, "IQR factor of the sample QC.", 1.5),
            _controls("JQ1"),
        ),
    ),
    SourceDeclaration(
        "dilimap",
        assay="SMART-seq bulk RNA-seq",
        value_kind="counts",
        description=(
            "DILImap: ~300 compounds at four doses in primary human hepatocytes (24 h), "
            "with LDH, total-RNA, mitochondrial and cross-replicate QC"
        ),
        expected_files=(
            "training_data_counts.h5ad / validation_data_counts.h5ad (obs: COMPOUND, "
            "CONCENTRATION_UM, TIMEPOINT_HOURS, PLATE_NAME, WELL_ID, DOSE_LEVEL, LDH_QC, …; "
            "var: symbols with gene_id)",
        ),
        cli_parameters=(
            *_h5ad("The DILImap .h5ad."),
            _dataset("dilimap"),
            CliParameter("vehicle", str, "Vehicle compound.", "DMSO"),
            CliParameter("dose_merge_log10", float, "Doses this close (log10) are one.", 0.05),
            CliParameter("total_rna_sd", float, "Sample QC: total RNA SDs.", 2.5),
            CliParameter("max_mito_percent", float, "Sample QC: largest mito %.", 9.0),
            CliParameter("min_rep_corr", float, "Sample QC: least replicate correlation.", 0.99),
            CliParameter("rep_corr_sd", float, "Sample QC: replicate correlation SDs.", 3.0),
        ),
    ),
    SourceDeclaration(
        "drugseq_moabox",
        assay="DRUG-seq",
        value_kind="counts",
        description="Novartis DRUG-seq U2OS MoA Box UMI counts + plate-well metadata",
        expected_files=(
            "DRUGseq_U2OS_MoABox_plate_wells_metadata_public.txt",
            "UMI count tables, genes (SYMBOL,grch38_<chr>) × <plate_barcode>_<well_index>",
            "MoABox_compounds_metadata.txt (optional)",
            "robust_RC_ReferenceControl_DMSO_wells.txt (optional)",
            "gene.ID → Ensembl v98 table (optional)",
        ),
        cli_parameters=(
            CliParameter("metadata", Path, "Sample metadata table.", required=True),
            CliParameter("counts", Path, "Count table(s).", required=True, multiple=True),
            CliParameter("compounds", Path, "Compound table (optional)."),
            CliParameter("robust_controls", Path, "Robust-control table (optional)."),
            CliParameter("gene_mapping", Path, "Gene mapping table (optional)."),
            _controls("EA-18-FP00", "SE-15-AV21", "BD-11-DV28"),
            _dataset("novartis_drugseq_u2os_moabox"),
            _chunk("Genes", 256),
        ),
    ),
    SourceDeclaration(
        "gdpx2",
        assay="DRUG-seq",
        value_kind="counts",
        description="Ginkgo GDPx2 DRUG-seq, four primary human cell types",
        expected_files=(
            "Metadata.csv",
            "GDPx2-GeneCounts.h5",
            "or: curated <gdpx2>.h5ad (obs pert_name, pert_dose, pert_time, sample_type, …)",
        ),
        cli_parameters=(
            CliParameter("metadata", Path, "Sample metadata table."),
            CliParameter("counts", Path, "Count table."),
            CliParameter("h5ad", Path, "An .h5ad instead of the tables."),
            _dataset("ginkgo_gdpx2"),
            _chunk("Genes", 256),
        ),
    ),
    SourceDeclaration(
        "generic",
        assay="any (declared in the mapping)",
        value_kind="declared: counts or log_expression",
        description="any .h5ad or count/expression table + metadata, via a TOML mapping",
        expected_files=(
            "mapping.toml (see docs/generic.md)",
            ".h5ad, or a CSV/TSV/parquet table (genes × samples or samples × genes)",
            "metadata table (CSV/TSV/parquet; optional for .h5ad)",
        ),
        cli_parameters=(
            CliParameter("mapping", Path, "The mapping file (TOML).", required=True),
            _chunk("Rows", 256),
        ),
    ),
    SourceDeclaration(
        "op3",
        assay="scRNA-seq pseudobulk",
        value_kind="counts",
        description="Open Problems NeurIPS 2023 PBMC pseudobulk counts (.h5ad)",
        expected_files=(
            "<pseudobulk>.h5ad (obs: cell_type, sm_name, sm_lincs_id, SMILES, control, dose_uM, "
            "timepoint_hr, plate_name, well, donor_id, …; var index: gene symbols)",
        ),
        cli_parameters=(*_h5ad("The OP3 .h5ad."), _dataset("op3_neurips2023")),
    ),
    SourceDeclaration(
        "sciplex",
        assay="sci-Plex pseudobulk",
        value_kind="counts",
        description=(
            "sci-Plex3 (A549, K562, MCF7; 188 compounds × 4 doses) single cells, "
            "pseudobulked per plate × well hash × cell line × condition"
        ),
        expected_files=(
            "<sciplex3>.h5ad (cells × Ensembl genes, raw counts CSR; obs: cell line, "
            "product_name/perturbation/pert_compound, dose (+dose_unit), time, replicate, "
            "top_oligo_P/plate_oligo, top_oligo_W/well_oligo)",
        ),
        cli_parameters=(
            *_h5ad("Cells × genes counts (.h5ad)."),
            _dataset("sciplex3"),
            CliParameter("min_counts", float, "Drop cells with fewer counts.", 100),
            CliParameter("min_genes", int, "Drop cells with fewer detected genes.", 50),
            CliParameter("max_mito_fraction", float, "Drop cells above this mito fraction.", 0.1),
            CliParameter("quality_gene", str, "Nucleus-quality gene, e.g. MALAT1."),
            CliParameter("quality_min_fraction", float, "Least fraction on the quality gene.", 0.0),
            _MIN_CELLS,
            _DOSE_UNIT,
            _chunk("Cells", 100_000),
            _PROGRESS,
        ),
    ),
    SourceDeclaration(
        "tahoe",
        assay="Tahoe-100M pseudobulk",
        value_kind="counts",
        description=(
            "Tahoe-100M (50 cancer cell lines pooled per well, 379 drugs × 3 doses, 14 plates), "
            "pseudobulked per plate × sample well × cell line"
        ),
        expected_files=(
            "<folder>/plate<N>_filt_Vevo_Tahoe100M_WServicesFrom_ParseGigalab.h5ad (one per "
            "plate; obs: drug, drugname_drugconc, cell_line/Cell_ID_Cellosaur, plate, sample, "
            "BARCODE)",
            "obs_metadata.parquet (optional manifest: BARCODE_SUB_LIB_ID, plate, …)",
        ),
        cli_parameters=(
            CliParameter(
                "folder", Path, "Folder of the Tahoe-100M plate .h5ad files.", required=True
            ),
            CliParameter("obs_parquet", Path, "Cell metadata Parquet (optional)."),
            CliParameter("pattern", str, "File name pattern of the plates.", "*.h5ad"),
            _LAYER,
            _dataset("tahoe100m"),
            CliParameter("vehicle", str, "Vehicle compound.", "DMSO_TF"),
            CliParameter("time_h", float, "Treatment time (h).", 24.0),
            CliParameter("min_counts", float, "Drop cells with fewer counts.", 0),
            CliParameter("min_genes", int, "Drop cells with fewer detected genes.", 0),
            _MIN_CELLS,
            _chunk("Cells", 100_000),
            _PROGRESS,
        ),
    ),
    SourceDeclaration(
        "vcpi",
        assay="DRUG-seq",
        value_kind="counts",
        description="VCPI-0001/0002 DRUG-seq in THP-1 (Ginkgo Datapoints)",
        expected_files=(
            "metadata-<job>.csv",
            "vcpi_<job>_counts.parquet (gene_id × sequenced_id)",
            "chemistry-<job>.csv (optional)",
        ),
        cli_parameters=(
            CliParameter("metadata", Path, "Sample metadata table.", required=True),
            CliParameter("counts", Path, "Count table.", required=True),
            CliParameter("chemistry", Path, "Compound chemistry table (optional)."),
            _dataset("vcpi"),
            _DOSE_UNIT,
            _chunk("Genes", 256),
        ),
    ),
    SourceDeclaration(  # ``perturbridge ingest l1000`` is a command of its own
        "l1000",
        assay="L1000",
        value_kind="log_expression",
        description="LINCS L1000 level 3 GCTX/GCT + inst_info; GEO GSE92742/GSE70138",
        expected_files=(
            "level 3 *.gctx or *.gct (GEO: *_Level3_INF_mlr12k_n*x12328*.gctx)",
            "inst_info (optional when the GCT(X) has column metadata)",
            "gene_info, cell_info, pert_info (GEO series; optional)",
        ),
    ),
)

#: Each adapter of the package by name, in the order the registry lists them; an adapter
#: registered elsewhere (a plug-in, a test) follows these.
ADAPTERS = MappingProxyType({d.name: d for d in _DECLARATIONS})
