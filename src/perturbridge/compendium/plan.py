"""Build plans: one TOML file that says what goes into a compendium and how to build it.

A plan lists the datasets (a registered source adapter, its input files and options,
the DE settings), the output store, the reference store and the executor. Relative
paths are relative to the plan file. :func:`load_plan` reads and checks a plan
completely before any work starts: unknown keys, unknown sources, missing input files,
repeated dataset names, a store path that holds something else, bad DE settings and a
missing SLURM profile are all reported together in one :class:`PlanError`.

Example
-------
.. code-block:: toml

    [store]
    path = "compendium"

    [defaults.de]
    modes = ["group", "separate"]

    [[datasets]]
    name = "cmap_l1000"
    source = "l1000"
    inputs = { level3 = "data/level3.gctx", inst_info = "data/inst_info.tsv" }

    [[datasets]]
    name = "moabox"
    source = "drugseq_moabox"
    inputs = { metadata = "moabox/meta.txt", counts = ["moabox/p1.tsv", "moabox/p2.tsv"] }
    de = { modes = ["group"], min_cells = 0 }

See ``docs/compendium.md`` for every key.

Long because the plan's dataclasses, their parsing and their checks against the file
system and the adapter registry change together; reading TOML itself (typed values,
unknown keys, every problem at once) is :class:`perturbridge.io._toml.TomlReader`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..ids.store import RefStore
from ..io._toml import TomlReader, load_toml
from ..schema import EFFECT_LAYERS
from ..sources import get_source, list_sources, source_names
from ._common import STORE_FORMAT, STORE_MARKER, PlanError

__all__ = [
    "DEFAULT_ZARR_LAYERS",
    "ENGINES",
    "EXECUTOR_KINDS",
    "MODES",
    "QUALITY_DESIGNS",
    "BuildPlan",
    "DESettings",
    "DatasetPlan",
    "ExecutorSettings",
    "PlanError",
    "SlurmProfile",
    "StoreSettings",
    "check_store_path",
    "load_plan",
    "parse_plan",
]

ExecutorKind = Literal["local", "dask", "slurm"]
EXECUTOR_KINDS: tuple[str, ...] = ("local", "dask", "slurm")
ENGINES: tuple[str, ...] = ("ours", "r")
MODES: tuple[str, ...] = ("group", "separate")
ORPHAN_VEHICLES: tuple[str, ...] = ("drop", "keep")
#: Layers of the consolidated Zarr arrays unless the plan says otherwise.
DEFAULT_ZARR_LAYERS: tuple[str, ...] = (
    "logFC",
    "t",
    "P.Value",
    "adj.P.Value.within_one_contrast",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Longest dataset name: it becomes part of file names (255 bytes at most on Linux, with
#: the suffixes the store adds), so a longer one fails before any work, not after.
MAX_NAME = 128


@dataclass(frozen=True)
class DESettings:
    """DE settings of one dataset.

    ``modes``: replicate modes to compute (``group``: replicates pooled, ``separate``:
    one contrast per treated sample). ``engine``: ``ours`` or ``r`` (R limma through
    ``Rscript``). ``min_cells``: samples with fewer cells (``obs["n_cells"]``, pseudobulk
    sources) are left out of the fit and go to the ledger. ``robust``, ``trend``,
    ``confint``: limma's options (``trend`` unset: limma's default for the method).
    ``control_keys``: further ``obs`` columns a treated sample must share with its
    vehicle (unset: those the source adapter declares). ``orphan_vehicles``: ``drop``
    (the original pipeline's choice) or ``keep`` vehicle samples at a time (and
    control-key values) with no treated sample. ``fit_per_control_group``: one fit per
    value of the control keys instead of one per context. ``stdev_scaled``: add the
    Effects layer ``stdev.scaled``. ``quality_weights``: estimate one quality weight
    per sample in each fit (limma ``arrayWeights`` / ``voomWithQualityWeights``, see
    :mod:`perturbridge.de.quality`); ``quality_design``: ``fit`` or ``plate`` (the
    design limma-trend estimates them with).
    """

    modes: tuple[str, ...] = ("group",)
    engine: str = "ours"
    min_cells: int = 0
    robust: bool = True
    trend: bool | None = None
    confint: float = 0.95
    control_keys: tuple[str, ...] | None = None
    orphan_vehicles: str = "drop"
    fit_per_control_group: bool = False
    stdev_scaled: bool = False
    quality_weights: bool = False
    quality_design: str = "fit"

    def params(self) -> dict[str, Any]:
        """The settings that change a DE result (``modes`` select tasks, not results)."""
        return {
            "engine": self.engine,
            "min_cells": self.min_cells,
            "robust": self.robust,
            "trend": self.trend,
            "confint": self.confint,
            "control_keys": None if self.control_keys is None else list(self.control_keys),
            "orphan_vehicles": self.orphan_vehicles,
            "fit_per_control_group": self.fit_per_control_group,
            "stdev_scaled": self.stdev_scaled,
            # only when on, so that the task keys of plans without them stay as they were
            **(
                {"quality_weights": True, "quality_design": self.quality_design}
                if self.quality_weights
                else {}
            ),
        }


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset: a source adapter, its input files and options, and DE settings.

    ``inputs`` map an adapter parameter to one path or a tuple of paths (absolute);
    ``options`` are the adapter's other keyword arguments, passed as given.
    """

    name: str
    source: str
    inputs: Mapping[str, Path | tuple[Path, ...]]
    options: Mapping[str, Any] = field(default_factory=dict)
    de: DESettings = field(default_factory=DESettings)

    def input_paths(self) -> list[tuple[str, Path]]:
        """``(label, path)`` for every file or folder the ingest reads, in a fixed order.

        First the inputs (labelled by their parameter), then the files the source
        adapter finds named inside them (:meth:`SourceAdapter.declared_files`, e.g.
        ``mapping:input.expression`` for the tables a generic mapping names), then the
        options whose value is an existing path (``options.<name>``, as the adapter
        will open it). The ingest task key covers the content of each.

        Raises
        ------
        ValueError
            When the adapter cannot parse an input that names further files (e.g.
            ``MappingError`` for a malformed mapping file).
        """
        out = self._given_paths()
        seen = {p for _, p in out}
        for label, p in [*self._declared_files(), *self._option_paths()]:
            if p not in seen:
                seen.add(p)
                out.append((label, p))
        return out

    def _given_paths(self) -> list[tuple[str, Path]]:
        out = []
        for key in sorted(self.inputs):
            value = self.inputs[key]
            for p in value if isinstance(value, tuple) else (value,):
                out.append((key, p))
        return out

    def _declared_files(self) -> list[tuple[str, Path]]:
        if self.source not in source_names():  # the plan check reports it
            return []
        files = get_source(self.source).declared_files(self.ingest_kwargs())
        return [(label, Path(p).absolute()) for label, p in files]

    def _option_paths(self) -> list[tuple[str, Path]]:
        out = []
        for key in sorted(self.options):
            value = self.options[key]
            for v in value if isinstance(value, list) else (value,):
                if not isinstance(v, str) or not v.strip():
                    continue
                try:
                    p = Path(v).expanduser()
                    exists = p.exists()
                except (OSError, ValueError):  # not a path (too long, a NUL byte)
                    continue
                if exists:
                    out.append((f"options.{key}", p.absolute()))
        return out

    def ingest_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``get_source(source).ingest``."""
        kwargs: dict[str, Any] = dict(self.options)
        for key, value in self.inputs.items():
            kwargs[key] = [str(p) for p in value] if isinstance(value, tuple) else str(value)
        kwargs["dataset"] = self.name
        return kwargs


@dataclass(frozen=True)
class SlurmProfile:
    """Resources of the SLURM jobs that run Dask workers (``dask_jobqueue.SLURMCluster``).

    ``cores``, ``memory``, ``walltime`` and ``queue`` are per job; ``jobs`` is how many
    jobs to start; ``processes`` Dask worker processes share each job.
    """

    cores: int
    memory: str
    walltime: str = "01:00:00"
    queue: str | None = None
    jobs: int = 1
    processes: int = 1
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    python: str | None = None

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``dask_jobqueue.SLURMCluster`` (``jobs`` is the scale)."""
        kwargs: dict[str, Any] = {
            "cores": self.cores,
            "memory": self.memory,
            "walltime": self.walltime,
            "processes": self.processes,
        }
        optional = {
            "queue": self.queue,
            "account": self.account,
            "local_directory": self.local_directory,
            "log_directory": self.log_directory,
            "interface": self.interface,
            "python": self.python,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if self.job_extra_directives:
            kwargs["job_extra_directives"] = list(self.job_extra_directives)
        if self.job_script_prologue:
            kwargs["job_script_prologue"] = list(self.job_script_prologue)
        return kwargs


@dataclass(frozen=True)
class ExecutorSettings:
    """Where tasks run: ``local`` processes, a ``dask`` cluster, or ``slurm`` jobs.

    ``n_jobs``: local processes or LocalCluster workers (default: CPU count, at most
    the number of tasks). ``scheduler_address``: an existing Dask scheduler (``dask``).
    ``slurm_profile``: the ``[slurm.<name>]`` profile to use. ``threads_per_task``: BLAS
    threads of each task (fixed, so that results do not depend on the executor).
    """

    kind: ExecutorKind = "local"
    n_jobs: int | None = None
    scheduler_address: str | None = None
    slurm_profile: str | None = None
    threads_per_task: int = 1


@dataclass(frozen=True)
class StoreSettings:
    """The output store, the task cache and the layout of the consolidated arrays."""

    path: Path
    cache: Path
    zarr_layers: tuple[str, ...] = DEFAULT_ZARR_LAYERS
    chunk_conditions: int = 256

    def params(self) -> dict[str, Any]:
        """What changes the bytes of the store (the paths do not)."""
        return {
            "zarr_layers": list(self.zarr_layers),
            "chunk_conditions": self.chunk_conditions,
        }


@dataclass(frozen=True)
class BuildPlan:
    """A validated build plan (see :func:`load_plan`)."""

    store: StoreSettings
    datasets: tuple[DatasetPlan, ...]
    references: Path | None = None
    imports: tuple[str, ...] = ()
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    slurm: Mapping[str, SlurmProfile] = field(default_factory=dict)
    source_file: Path | None = None

    def dataset(self, name: str) -> DatasetPlan:
        """The dataset called ``name``."""
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"no dataset {name!r} in the plan; datasets: {self.dataset_names}")

    @property
    def dataset_names(self) -> list[str]:
        return [d.name for d in self.datasets]

    def with_overrides(
        self,
        *,
        store: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | None = None,
        executor: ExecutorKind | None = None,
        n_jobs: int | None = None,
        scheduler_address: str | None = None,
        slurm_profile: str | None = None,
    ) -> BuildPlan:
        """A copy with another store/cache path or executor (command-line overrides).

        A new store path without a new cache moves the cache to ``<store>/.cache``
        when the plan's cache was the default one. The result is checked again.
        """
        settings = self.store
        if store is not None:
            new_store = Path(store).absolute()
            default_cache = settings.cache == settings.path / ".cache"
            settings = dataclasses.replace(
                settings,
                path=new_store,
                cache=new_store / ".cache" if default_cache else settings.cache,
            )
        if cache is not None:
            settings = dataclasses.replace(settings, cache=Path(cache).absolute())
        ex = self.executor
        changes: dict[str, Any] = {}
        if executor is not None:
            changes["kind"] = executor
        if n_jobs is not None:
            changes["n_jobs"] = n_jobs
        if scheduler_address is not None:
            changes["scheduler_address"] = scheduler_address
        if slurm_profile is not None:
            changes["slurm_profile"] = slurm_profile
        plan = dataclasses.replace(
            self, store=settings, executor=dataclasses.replace(ex, **changes)
        )
        check_plan(plan)
        return plan


# --------------------------------------------------------------------------- parsing


_DE_KEYS = (
    "modes",
    "engine",
    "min_cells",
    "robust",
    "trend",
    "confint",
    "control_keys",
    "orphan_vehicles",
    "fit_per_control_group",
    "stdev_scaled",
    "quality_weights",
    "quality_design",
)

#: Values of ``quality_design`` (see :class:`perturbridge.de.DEOptions`).
QUALITY_DESIGNS: tuple[str, ...] = ("fit", "plate")


def _de_settings(
    r: TomlReader, data: Mapping[str, Any], base: DESettings, where: str
) -> DESettings:
    r.known(data, _DE_KEYS, where)
    modes = r.strings(data, "modes", base.modes, where)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        r.problem(f"{where}.modes: expected a non-empty list of {list(MODES)}, found {modes!r}")
    if len(set(modes)) != len(modes):
        r.problem(f"{where}.modes: a mode is listed twice: {list(modes)}")
    engine = r.get(data, "engine", str, base.engine, where)
    if engine not in ENGINES:
        r.problem(f"{where}.engine: expected one of {list(ENGINES)}, found {engine!r}")
    min_cells = r.get(data, "min_cells", int, base.min_cells, where)
    if min_cells < 0:
        r.problem(f"{where}.min_cells: expected an integer >= 0, found {min_cells}")
    confint = r.get(data, "confint", (float, int), base.confint, where)
    if not 0 < confint < 1:
        r.problem(f"{where}.confint: expected a level in (0, 1), found {confint}")
    control_keys = r.strings(data, "control_keys", base.control_keys, where)
    orphans = r.get(data, "orphan_vehicles", str, base.orphan_vehicles, where)
    if orphans not in ORPHAN_VEHICLES:
        r.problem(
            f"{where}.orphan_vehicles: expected one of {list(ORPHAN_VEHICLES)}, found {orphans!r}"
        )
    quality_design = r.get(data, "quality_design", str, base.quality_design, where)
    if quality_design not in QUALITY_DESIGNS:
        r.problem(
            f"{where}.quality_design: expected one of {list(QUALITY_DESIGNS)}, "
            f"found {quality_design!r}"
        )
    return DESettings(
        modes=tuple(m for m in MODES if m in modes),  # fixed order
        engine=engine,
        min_cells=min_cells,
        robust=r.get(data, "robust", bool, base.robust, where),
        trend=r.get(data, "trend", bool, base.trend, where),
        confint=float(confint),
        control_keys=control_keys,
        orphan_vehicles=orphans,
        fit_per_control_group=r.get(
            data, "fit_per_control_group", bool, base.fit_per_control_group, where
        ),
        stdev_scaled=r.get(data, "stdev_scaled", bool, base.stdev_scaled, where),
        quality_weights=r.get(data, "quality_weights", bool, base.quality_weights, where),
        quality_design=quality_design,
    )


def _inputs(r: TomlReader, data: Any, where: str) -> dict[str, Path | tuple[Path, ...]]:
    if not isinstance(data, Mapping) or not data:
        r.problem(
            f"{where}: expected a table of input files, e.g. "
            '{ level3 = "data/level3.gctx" }, found ' + repr(data)
        )
        return {}
    out: dict[str, Path | tuple[Path, ...]] = {}
    for key, value in data.items():
        if isinstance(value, str):
            out[key] = r.path(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = tuple(r.path(v) for v in value)
        else:
            r.problem(f"{where}.{key}: expected a path or a list of paths, found {value!r}")
    return out


def _slurm_profile(r: TomlReader, data: Any, where: str) -> SlurmProfile | None:
    if not isinstance(data, Mapping):
        r.problem(f"{where}: expected a table, found {data!r}")
        return None
    fields = [f.name for f in dataclasses.fields(SlurmProfile)]
    r.known(data, fields, where)
    cores = r.get(data, "cores", int, 1, where, required=True)
    memory = r.get(data, "memory", str, "", where, required=True)
    jobs = r.get(data, "jobs", int, 1, where)
    processes = r.get(data, "processes", int, 1, where)
    for name, v in (("cores", cores), ("jobs", jobs), ("processes", processes)):
        if v < 1:
            r.problem(f"{where}.{name}: expected an integer >= 1, found {v}")
    return SlurmProfile(
        cores=cores,
        memory=memory,
        walltime=r.get(data, "walltime", str, "01:00:00", where),
        queue=r.get(data, "queue", str, None, where),
        jobs=jobs,
        processes=processes,
        account=r.get(data, "account", str, None, where),
        job_extra_directives=r.strings(data, "job_extra_directives", (), where),
        job_script_prologue=r.strings(data, "job_script_prologue", (), where),
        local_directory=r.get(data, "local_directory", str, None, where),
        log_directory=r.get(data, "log_directory", str, None, where),
        interface=r.get(data, "interface", str, None, where),
        python=r.get(data, "python", str, None, where),
    )


_TOP_KEYS = ("version", "store", "references", "build", "executor", "slurm", "defaults", "datasets")


def parse_plan(
    data: Mapping[str, Any], *, base_dir: str | os.PathLike[str], where: str = "build plan"
) -> BuildPlan:
    """Build a :class:`BuildPlan` from parsed TOML and check it (see :func:`load_plan`)."""
    r = TomlReader(Path(base_dir).absolute())
    r.known(data, _TOP_KEYS, "plan")
    version = r.get(data, "version", int, 1, "plan")
    if version != 1:
        r.problem(f"plan.version: this perturbridge reads plan version 1, found {version}")
    # store
    store_t = r.table(data, "store", "plan")
    r.known(store_t, ("path", "cache", "zarr_layers", "chunk_conditions"), "store")
    store_path_s = r.get(store_t, "path", str, "", "store", required=True)
    store_path = r.path(store_path_s) if store_path_s else r.base_dir / "compendium"
    cache_s = r.get(store_t, "cache", str, None, "store")
    layers = r.strings(store_t, "zarr_layers", DEFAULT_ZARR_LAYERS, "store")
    bad_layers = [x for x in layers if x not in EFFECT_LAYERS]
    if bad_layers or not layers:
        r.problem(
            f"store.zarr_layers: expected a non-empty list of Effects layers "
            f"{list(EFFECT_LAYERS)}, found {list(layers)}"
        )
    chunk_conditions = r.get(store_t, "chunk_conditions", int, 256, "store")
    if chunk_conditions < 1:
        r.problem(f"store.chunk_conditions: expected an integer >= 1, found {chunk_conditions}")
    store = StoreSettings(
        path=store_path,
        cache=r.path(cache_s) if cache_s else store_path / ".cache",
        zarr_layers=tuple(dict.fromkeys(layers)),
        chunk_conditions=chunk_conditions,
    )
    # references, build
    refs_t = r.table(data, "references", "plan")
    r.known(refs_t, ("path",), "references")
    refs_s = r.get(refs_t, "path", str, None, "references")
    build_t = r.table(data, "build", "plan")
    r.known(build_t, ("imports", "threads_per_task"), "build")
    imports = r.strings(build_t, "imports", (), "build")
    threads = r.get(build_t, "threads_per_task", int, 1, "build")
    if threads < 1:
        r.problem(f"build.threads_per_task: expected an integer >= 1, found {threads}")
    # executor and SLURM profiles
    ex_t = r.table(data, "executor", "plan")
    if "n_workers" in ex_t:  # the name before the glossary's one name, n_jobs
        r.problem("executor.n_workers: renamed executor.n_jobs (see docs/glossary.md)")
        ex_t = {k: v for k, v in ex_t.items() if k != "n_workers"}
    r.known(ex_t, ("kind", "n_jobs", "scheduler_address", "slurm_profile"), "executor")
    kind = r.get(ex_t, "kind", str, "local", "executor")
    if kind not in EXECUTOR_KINDS:
        r.problem(f"executor.kind: expected one of {list(EXECUTOR_KINDS)}, found {kind!r}")
        kind = "local"
    n_jobs = r.get(ex_t, "n_jobs", int, None, "executor")
    if n_jobs is not None and n_jobs < 1:
        r.problem(f"executor.n_jobs: expected an integer >= 1, found {n_jobs}")
    executor = ExecutorSettings(
        kind=kind,
        n_jobs=n_jobs,
        scheduler_address=r.get(ex_t, "scheduler_address", str, None, "executor") or None,
        slurm_profile=r.get(ex_t, "slurm_profile", str, None, "executor"),
        threads_per_task=threads,
    )
    slurm: dict[str, SlurmProfile] = {}
    for name, prof in r.table(data, "slurm", "plan").items():
        parsed = _slurm_profile(r, prof, f"slurm.{name}")
        if parsed is not None:
            slurm[name] = parsed
    # datasets
    defaults_t = r.table(data, "defaults", "plan")
    r.known(defaults_t, ("de",), "defaults")
    default_de = _de_settings(r, r.table(defaults_t, "de", "defaults"), DESettings(), "defaults.de")
    raw = data.get("datasets", [])
    if not isinstance(raw, list) or not raw:
        r.problem(
            "datasets: the plan lists no datasets; add [[datasets]] tables with "
            "name, source and inputs"
        )
        raw = []
    datasets = []
    for i, d in enumerate(raw):
        where_d = f"datasets[{i}]"
        if not isinstance(d, Mapping):
            r.problem(f"{where_d}: expected a table, found {d!r}")
            continue
        name = r.get(d, "name", str, "", where_d, required=True)
        if name:
            where_d = f"datasets[{i}] ({name!r})"
        r.known(d, ("name", "source", "inputs", "options", "de"), where_d)
        if name and not _NAME.match(name):
            r.problem(
                f"{where_d}.name: use letters, digits, '_', '.', '-' (it names files), "
                f"found {name!r}"
            )
        elif len(name) > MAX_NAME:
            r.problem(
                f"{where_d}.name: at most {MAX_NAME} characters (it names files and folders), "
                f"found {len(name)}"
            )
        source = r.get(d, "source", str, "", where_d, required=True)
        inputs = _inputs(r, d.get("inputs"), f"{where_d}.inputs")
        options = r.table(d, "options", where_d)
        clash = sorted(set(options) & (set(inputs) | {"dataset"}))
        if clash:
            r.problem(
                f"{where_d}.options: {clash} are set elsewhere (inputs, or the dataset "
                "name, which is passed as 'dataset')"
            )
        de = _de_settings(r, r.table(d, "de", where_d), default_de, f"{where_d}.de")
        datasets.append(
            DatasetPlan(name=name, source=source, inputs=inputs, options=dict(options), de=de)
        )
    plan = BuildPlan(
        store=store,
        datasets=tuple(datasets),
        references=r.path(refs_s) if refs_s else None,
        imports=imports,
        executor=executor,
        slurm=slurm,
    )
    _check(plan, r)
    if r.problems:
        raise PlanError(r.problems, where=where)
    return plan


def load_plan(
    path: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> BuildPlan:
    """Read a TOML build plan and check it completely before any work starts.

    Parameters
    ----------
    path
        The plan file; relative paths in it are relative to its folder.
    store, cache
        Override the plan's store path and cache folder.

    Raises
    ------
    PlanError
        Listing every problem: unknown keys, unknown sources (after the plan's
        ``build.imports``), missing input files, repeated dataset names, a store path
        that holds something else, invalid DE or executor settings.

    Examples
    --------
    >>> plan = load_plan("plan.toml")  # doctest: +SKIP
    >>> [d.name for d in plan.datasets]  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise PlanError([f"plan file not found: {path}"], where=str(path))
    try:
        data = load_toml(path)
    except ValueError as err:  # not valid TOML, not UTF-8
        raise PlanError([str(err)], where=str(path)) from err
    if store is not None:
        data = {**data, "store": {**data.get("store", {}), "path": str(Path(store).absolute())}}
    if cache is not None:
        data = {**data, "store": {**data.get("store", {}), "cache": str(Path(cache).absolute())}}
    plan = parse_plan(data, base_dir=path.parent, where=str(path))
    return dataclasses.replace(plan, source_file=path.absolute())


# --------------------------------------------------------------------------- checks


def check_store_path(path: Path) -> str | None:
    """``None`` when ``path`` can hold a store (absent, empty, or a store), else why not."""
    if not path.exists():
        return None
    if not path.is_dir():
        return f"store path {path} is a file, not a folder"
    if (path / STORE_MARKER).is_file():
        return None
    # a store another build is creating right now (its lock, its marker being written)
    # counts as a store: that build's lock decides, not this check
    entries = sorted(
        p.name
        for p in path.iterdir()
        if p.name != ".lock"
        and not (p.name.startswith(f".{STORE_MARKER}.") and p.name.endswith(".part"))
    )
    if not entries:
        return None
    manifest = path / "manifest.json"
    if manifest.is_file():
        try:
            fmt = json.loads(manifest.read_text(encoding="utf-8")).get("format")
        except (ValueError, OSError):
            fmt = None
        if fmt == STORE_FORMAT:
            return None
    return (
        f"store path {path} holds something else ({len(entries)} entries, e.g. "
        f"{entries[:5]}) and is not a perturbridge store; choose a new or empty folder"
    )


def _check(plan: BuildPlan, r: TomlReader) -> None:
    """Checks against the file system and the adapter registry."""
    for module in plan.imports:
        try:
            importlib.import_module(module)
        except ImportError as err:
            r.problem(f"build.imports: cannot import {module!r}: {err}")
    known = set(list_sources()["name"])
    seen: dict[str, int] = {}
    for i, d in enumerate(plan.datasets):
        where = f"datasets[{i}] ({d.name!r})"
        if d.name in seen:
            r.problem(
                f"{where}.name: dataset name {d.name!r} is used twice "
                f"(datasets[{seen[d.name]}] and datasets[{i}]); names must be unique"
            )
        seen.setdefault(d.name, i)
        if d.source and d.source not in known:
            r.problem(f"{where}.source: unknown source {d.source!r}; known: {sorted(known)}")
        elif d.source:
            _check_parameters(r, d, where)
        try:
            paths = d.input_paths()
        except (ValueError, OSError) as err:  # e.g. a malformed generic mapping file
            r.problem(f"{where}.inputs: cannot list the files the ingest reads: {err}")
            paths = d._given_paths()
        for key, p in paths:
            if not p.exists():
                r.problem(f"{where}.inputs.{key}: file not found: {p}")
    why = check_store_path(plan.store.path)
    if why is not None:
        r.problem(f"store.path: {why}")
    if plan.references is not None:
        if not plan.references.is_dir():
            r.problem(f"references.path: reference store not found: {plan.references}")
        else:
            try:
                RefStore.open(plan.references)
            except ValueError as err:  # StoreError
                r.problem(f"references.path: {err}")
    ex = plan.executor
    if ex.kind == "slurm":
        if not plan.slurm:
            r.problem(
                "executor: kind 'slurm' needs a profile, e.g. [slurm.default] with cores, "
                "memory, walltime, queue and jobs"
            )
        elif ex.slurm_profile is not None and ex.slurm_profile not in plan.slurm:
            r.problem(
                f"executor.slurm_profile: no profile {ex.slurm_profile!r}; "
                f"profiles: {sorted(plan.slurm)}"
            )
        elif ex.slurm_profile is None and len(plan.slurm) > 1:
            r.problem(
                f"executor.slurm_profile: the plan has several profiles {sorted(plan.slurm)}; "
                "name one"
            )
    if ex.scheduler_address is not None and ex.kind != "dask":
        r.problem(f"executor.scheduler_address is only used with kind 'dask' (kind is {ex.kind!r})")


def _check_parameters(r: TomlReader, d: DatasetPlan, where: str) -> None:
    """Inputs and options against the parameters of the adapter's reader."""
    params = type(get_source(d.source)).parameter_names()
    if params is None:
        return
    names, required, var_kw = params
    given = set(d.inputs) | set(d.options)
    unknown = sorted(given - names)
    if unknown and not var_kw:
        r.problem(
            f"{where}: source {d.source!r} takes no parameter(s) {unknown}; its parameters: "
            f"{sorted(names - {'dataset'})}"
        )
    missing = sorted(required - given - {"dataset"})
    if missing:
        r.problem(f"{where}: source {d.source!r} needs input(s) {missing}")


def check_plan(plan: BuildPlan) -> None:
    """Check a plan against the file system and the adapter registry; raise
    :class:`PlanError` listing every problem."""
    r = TomlReader(Path.cwd())
    _check(plan, r)
    if r.problems:
        raise PlanError(r.problems)


def slurm_profile_of(plan: BuildPlan) -> SlurmProfile:
    """The SLURM profile the plan's executor uses."""
    name = plan.executor.slurm_profile
    if name is None:
        if len(plan.slurm) != 1:
            raise PlanError(
                [f"executor.slurm_profile: name one of the profiles {sorted(plan.slurm)}"]
            )
        return next(iter(plan.slurm.values()))
    return plan.slurm[name]
