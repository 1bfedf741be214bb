"""Build plans: parsing, defaults, and every bad plan failing before any work starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from perturbridge.compendium import PlanError, build, load_plan
from perturbridge.compendium.plan import (
    DEFAULT_ZARR_LAYERS,
    DESettings,
    check_store_path,
    slurm_profile_of,
)
from perturbridge.compendium.tasks import de_task

from ._fixtures import COUNTS_MODULE, write_plan


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(body)
    return path


def test_plan_reads_datasets_paths_and_defaults(tmp_path, inputs):
    path = write_plan(tmp_path, l1000=inputs["l1000"], counts=inputs["counts"])
    plan = load_plan(path)
    assert plan.dataset_names == ["sim_l1000", "sim_counts"]
    assert plan.store.path == tmp_path / "store"
    assert plan.store.cache == tmp_path / "store" / ".cache"
    assert plan.store.zarr_layers == DEFAULT_ZARR_LAYERS
    l1000 = plan.dataset("sim_l1000")
    assert l1000.source == "l1000"
    assert l1000.de.modes == ("group", "separate")
    assert l1000.ingest_kwargs() == {"level3": str(inputs["l1000"]), "dataset": "sim_l1000"}
    counts = plan.dataset("sim_counts")
    assert counts.de.modes == ("group",) and counts.de.min_cells == 30
    assert plan.imports == (COUNTS_MODULE,)
    assert plan.executor.kind == "local"
    assert plan.source_file == path.absolute()


def test_relative_inputs_resolve_against_the_plan_folder(tmp_path, inputs):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "level3.gct"
    target.write_bytes(inputs["l1000"].read_bytes())
    path = _plan(
        tmp_path,
        """
        [store]
        path = "out/store"
        [defaults.de]
        modes = ["separate"]
        [[datasets]]
        name = "a"
        source = "l1000"
        inputs = { level3 = "data/level3.gct" }
        options = { inst_info = "x" }
        """.replace("        ", ""),
    )
    plan = load_plan(path)
    d = plan.dataset("a")
    assert d.inputs["level3"] == target
    assert d.options == {"inst_info": "x"}
    assert d.de.modes == ("separate",)  # from [defaults.de]
    assert plan.store.path == tmp_path / "out" / "store"
    with pytest.raises(KeyError, match="no dataset 'b'"):
        plan.dataset("b")


def test_lists_of_input_files_are_kept_as_lists(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = ["{inputs["l1000"]}", "{inputs["counts"]}"] }}
""",
    )
    d = load_plan(path).dataset("a")
    assert d.ingest_kwargs()["level3"] == [str(inputs["l1000"]), str(inputs["counts"])]
    assert [p for _, p in d.input_paths()] == [inputs["l1000"], inputs["counts"]]


def test_unknown_source_fails_before_any_work(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "no_such_source"
inputs = {{ level3 = "{inputs["l1000"]}" }}
""",
    )
    with pytest.raises(PlanError, match=r"unknown source 'no_such_source'; known: \[.*'l1000'"):
        build(path)
    assert not (tmp_path / "store").exists()


def test_missing_input_file(tmp_path):
    path = _plan(
        tmp_path,
        """
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = { level3 = "missing.gct" }
""",
    )
    with pytest.raises(PlanError, match=r"datasets\[0\] \('a'\)\.inputs\.level3: file not found"):
        build(path)
    assert not (tmp_path / "store").exists()


def test_duplicated_dataset_name(tmp_path, inputs):
    body = f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
"""
    with pytest.raises(PlanError, match=r"dataset name 'a' is used twice \(datasets\[0\] and "):
        build(_plan(tmp_path, body))
    assert not (tmp_path / "store").exists()


def test_store_path_holding_something_else(tmp_path, inputs):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "thesis.docx").write_text("precious")
    path = write_plan(tmp_path, l1000=inputs["l1000"])
    with pytest.raises(PlanError, match=r"holds something else .*thesis\.docx.*not a perturbridge"):
        build(path)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["thesis.docx"]


def test_store_path_that_is_a_file(tmp_path, inputs):
    (tmp_path / "store").write_text("x")
    with pytest.raises(PlanError, match="is a file, not a folder"):
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"]))


def test_store_path_that_is_empty_or_a_store_is_fine(tmp_path, built):
    assert check_store_path(tmp_path / "absent") is None
    (tmp_path / "empty").mkdir()
    assert check_store_path(tmp_path / "empty") is None
    assert check_store_path(built["store"]) is None


def test_an_unknown_key_names_the_closest_known_key(tmp_path):
    path = _plan(
        tmp_path,
        """
[store]
path = "store"
cach = "cache"
[[datasets]]
name = "a"
source = "l1000"
inputs = { level3 = "missing.gct" }
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "store: unknown key(s) ['cach']; did you mean 'cache'?; allowed: " in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = _plan(
        tmp_path,
        """
[store]
path = "store"
zarr_layers = ["logFC", "nope"]
colour = "blue"
[executor]
kind = "cloud"
[[datasets]]
name = "bad name!"
source = "l1000"
inputs = { level3 = "missing.gct" }
de = { modes = ["pooled"], engine = "excel", min_cells = -1, confint = 2.0 }
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    msg = str(info.value)
    assert "nothing was built" in msg
    for expected in (
        "store: unknown key(s) ['colour']",
        "store.zarr_layers",
        "executor.kind: expected one of ['local', 'dask', 'slurm'], found 'cloud'",
        "use letters, digits",
        "modes: expected a non-empty list of ['group', 'separate'], found ('pooled',)",
        "engine: expected one of ['ours', 'r'], found 'excel'",
        "min_cells: expected an integer >= 0, found -1",
        "confint: expected a level in (0, 1), found 2.0",
        "file not found",
    ):
        assert expected in msg, expected
    assert len(info.value.problems) == 9


def test_wrong_types_and_missing_keys(tmp_path):
    path = _plan(
        tmp_path,
        """
[store]
chunk_conditions = true
[[datasets]]
source = 3
inputs = "level3.gct"
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    msg = str(info.value)
    assert "store.path: required key is missing" in msg
    assert "store.chunk_conditions: expected int, found True" in msg
    assert "datasets[0].name: required key is missing" in msg
    assert "datasets[0].source: expected str, found 3" in msg
    assert "expected a table of input files" in msg


def test_no_datasets(tmp_path):
    with pytest.raises(PlanError, match="the plan lists no datasets"):
        load_plan(_plan(tmp_path, '[store]\npath = "s"\n'))


def test_options_may_not_repeat_inputs_or_the_name(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
options = {{ level3 = "x", dataset = "y" }}
""",
    )
    with pytest.raises(PlanError, match=r"\['dataset', 'level3'\] are set elsewhere"):
        load_plan(path)


def test_not_toml_and_missing_plan(tmp_path):
    with pytest.raises(PlanError, match="plan file not found"):
        load_plan(tmp_path / "none.toml")
    with pytest.raises(PlanError, match="not valid TOML"):
        load_plan(_plan(tmp_path, "[store\n"))


def test_unimportable_plugin_module(tmp_path, inputs):
    path = write_plan(tmp_path, l1000=inputs["l1000"])
    text = path.read_text().replace(COUNTS_MODULE, "no.such.module")
    path.write_text(text)
    with pytest.raises(PlanError, match=r"build\.imports: cannot import 'no\.such\.module'"):
        load_plan(path)


SLURM = """
[executor]
kind = "slurm"
[slurm.big]
cores = 8
memory = "32GB"
walltime = "04:00:00"
queue = "normal"
jobs = 4
account = "lab"
job_extra_directives = ["--constraint=skylake"]
"""


def test_slurm_profile_maps_to_cluster_arguments(tmp_path, inputs):
    plan = load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=SLURM))
    profile = slurm_profile_of(plan)
    assert profile.jobs == 4
    assert profile.cluster_kwargs() == {
        "cores": 8,
        "memory": "32GB",
        "walltime": "04:00:00",
        "processes": 1,
        "queue": "normal",
        "account": "lab",
        "job_extra_directives": ["--constraint=skylake"],
    }


def test_slurm_needs_a_profile(tmp_path, inputs):
    path = write_plan(tmp_path, l1000=inputs["l1000"], extra='[executor]\nkind = "slurm"\n')
    with pytest.raises(PlanError, match=r"kind 'slurm' needs a profile, e\.g\. \[slurm\.default\]"):
        load_plan(path)
    two = SLURM + '[slurm.small]\ncores = 1\nmemory = "4GB"\n'
    with pytest.raises(PlanError, match=r"several profiles \['big', 'small'\]; name one"):
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=two))
    bad = SLURM.replace('kind = "slurm"', 'kind = "slurm"\nslurm_profile = "huge"')
    with pytest.raises(PlanError, match=r"no profile 'huge'; profiles: \['big'\]"):
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=bad))
    bad_profile = '[slurm.x]\nmemory = "1GB"\ncores = 0\ngpus = 1\n'
    with pytest.raises(PlanError) as info:
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=bad_profile))
    assert "slurm.x: unknown key(s) ['gpus']" in str(info.value)
    assert "slurm.x.cores: expected an integer >= 1, found 0" in str(info.value)


def test_overrides_move_the_store_and_check_again(tmp_path, inputs):
    plan = load_plan(write_plan(tmp_path, l1000=inputs["l1000"]))
    moved = plan.with_overrides(store=tmp_path / "other", executor="dask", n_jobs=3)
    assert moved.store.path == tmp_path / "other"
    assert moved.store.cache == tmp_path / "other" / ".cache"
    assert moved.executor.kind == "dask" and moved.executor.n_jobs == 3
    assert plan.with_overrides(cache=tmp_path / "c").store.cache == tmp_path / "c"
    with pytest.raises(PlanError, match="scheduler_address is only used with kind 'dask'"):
        plan.with_overrides(scheduler_address="tcp://x:1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.txt").write_text("x")
    with pytest.raises(PlanError, match="holds something else"):
        plan.with_overrides(store=tmp_path / "full")
    again = load_plan(write_plan(tmp_path, l1000=inputs["l1000"]), store=tmp_path / "s2")
    assert again.store.path == tmp_path / "s2"


def test_inputs_and_options_are_checked_against_the_adapter(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level_3 = "{inputs["l1000"]}" }}
options = {{ colour = "red" }}
[[datasets]]
name = "b"
source = "vcpi"
inputs = {{ metadata = "{inputs["l1000"]}" }}
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    msg = str(info.value)
    assert "source 'l1000' takes no parameter(s) ['colour', 'level_3']; its parameters:" in msg
    assert "'level3'" in msg
    assert "source 'vcpi' needs input(s) ['counts']" in msg


def test_references_must_be_a_reference_store(tmp_path, inputs):
    (tmp_path / "refs").mkdir()
    extra = '[references]\npath = "refs"\n'
    with pytest.raises(PlanError, match=r"references\.path: .* is not a reference store"):
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=extra))
    with pytest.raises(PlanError, match="reference store not found"):
        load_plan(write_plan(tmp_path, l1000=inputs["l1000"], extra=extra.replace("refs", "no")))


def test_the_documented_example_plan_is_valid_but_for_its_files(tmp_path):
    import re
    import tomllib

    from perturbridge.compendium.plan import parse_plan

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compendium.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert example is not None
    data = tomllib.loads(example.group(1))
    with pytest.raises(PlanError) as info:
        parse_plan(data, base_dir=tmp_path)
    for problem in info.value.problems:
        assert "file not found" in problem or "reference store not found" in problem, problem
    assert len(info.value.problems) == 7  # 2 + 3 + 1 inputs, and the reference store


def test_de_options_of_the_original_pipeline(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[defaults.de]
orphan_vehicles = "keep"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
[[datasets]]
name = "b"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
de = {{ orphan_vehicles = "drop", fit_per_control_group = true, stdev_scaled = true }}
""",
    )
    plan = load_plan(path)
    a, b = plan.dataset("a").de, plan.dataset("b").de
    assert (a.orphan_vehicles, a.fit_per_control_group, a.stdev_scaled) == ("keep", False, False)
    assert (b.orphan_vehicles, b.fit_per_control_group, b.stdev_scaled) == ("drop", True, True)
    assert b.params()["orphan_vehicles"] == "drop" and b.params()["stdev_scaled"] is True
    # the defaults: the original's orphan rule, our one fit per context, no extra layer
    default = DESettings()
    assert (default.orphan_vehicles, default.fit_per_control_group) == ("drop", False)
    assert default.stdev_scaled is False


def test_each_de_option_is_part_of_the_de_task_key():
    def key(settings: DESettings) -> str:
        return de_task(
            dataset="a",
            ingest_key="k",
            samples="/cache/samples.h5ad",
            context={"context": "A375", "start": 0, "stop": 10},
            mode="group",
            value_kind="log_expression",
            de_params=settings.params(),
            imports=(),
        ).key

    base = DESettings()
    changed = [
        dataclasses.replace(base, orphan_vehicles="keep"),
        dataclasses.replace(base, fit_per_control_group=True),
        dataclasses.replace(base, stdev_scaled=True),
    ]
    keys = {key(base), *(key(s) for s in changed)}
    assert len(keys) == 4


def test_bad_de_options_are_reported(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
de = {{ orphan_vehicles = "discard", fit_per_control_group = "yes", stdev_scaled = 1 }}
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(path)
    msg = str(info.value)
    for expected in (
        "orphan_vehicles: expected one of ['drop', 'keep'], found 'discard'",
        "fit_per_control_group: expected bool, found 'yes'",
        "stdev_scaled: expected bool, found 1",
    ):
        assert expected in msg, expected


def test_de_options_reach_the_engines(tmp_path):
    """A DE task with each orphan setting: the ledger, the fit and the extra layer."""
    import anndata as ad

    from perturbridge.compendium.tasks import EFFECTS_FILE, LEDGER_FILE, run_task
    from perturbridge.io import write_h5ad
    from perturbridge.simulate import simulate_counts

    kw = {"n_genes": 60, "n_plates": 2, "conditions_per_plate": 4, "vehicles_per_plate": 4}
    at24 = simulate_counts(**kw, seed=1).samples
    at6 = simulate_counts(**kw, time_h=6.0, seed=2).samples
    at6 = at6[at6.obs["is_control"].to_numpy()].copy()  # vehicles only at 6 h
    at6.obs_names = [f"t6_{x}" for x in at6.obs_names]
    samples = ad.concat([at24, at6], merge="same")
    samples.uns["perturbridge"] = {"kind": "samples", "value_kind": "counts", "provenance": {}}
    for col in ("dataset", "assay", "plate", "well", "cell_context", "cell_name"):
        samples.obs[col] = pd.Categorical(samples.obs[col].astype(str))
    orphans = at6.obs_names
    ctx = samples.obs["cell_context"].astype(str).to_numpy()
    assert len(set(ctx)) == 1 and len(orphans) == 8
    path = tmp_path / "samples.h5ad"
    write_h5ad(samples, path)
    out = {}
    for setting in ("drop", "keep"):
        settings = DESettings(orphan_vehicles=setting, stdev_scaled=True)
        task = de_task(
            dataset="sim",
            ingest_key="k",
            samples=str(path),
            context={"context": ctx[0], "start": 0, "stop": samples.n_obs},
            mode="group",
            value_kind="counts",
            de_params=settings.params(),
            imports=(),
        )
        result = run_task(task, str(tmp_path / "cache"))["result"]
        assert result["n_samples"] == samples.n_obs
        folder = tmp_path / "cache" / "tasks" / "de" / task.key
        ledger = pd.read_parquet(folder / LEDGER_FILE)
        lost = ledger.loc[ledger["reason"] == "vehicle_without_treated", "id"]
        assert sorted(lost) == (sorted(orphans) if setting == "drop" else [])
        effects = ad.read_h5ad(folder / EFFECTS_FILE)
        assert "stdev.scaled" in effects.layers
        out[setting] = effects
    drop, keep = out["drop"], out["keep"]
    assert (keep.obs["df_residual"] > drop.obs["df_residual"]).all()


def test_a_store_being_created_by_another_build_is_not_something_else(tmp_path):
    """Two first builds race into a new folder: the second sees the first's lock and its
    marker being written; the store lock decides, not a 'holds something else' error."""
    from perturbridge.compendium.plan import check_store_path

    store = tmp_path / "store"
    store.mkdir()
    (store / ".lock").write_text("{}")
    (store / "..perturbridge-store.x1y2z3.part").write_text("")
    assert check_store_path(store) is None
    (store / "notes.txt").write_text("mine")
    assert "holds something else" in (check_store_path(store) or "")


def test_the_old_executor_key_names_its_new_name(tmp_path, inputs):
    """``executor.n_workers`` is ``executor.n_jobs`` (the glossary's one name)."""
    path = write_plan(
        tmp_path,
        l1000=inputs["l1000"],
        counts=inputs["counts"],
        extra="[executor]\nn_workers = 2\n",
    )
    with pytest.raises(PlanError, match=r"executor\.n_workers: renamed executor\.n_jobs"):
        load_plan(path)
    path.write_text(path.read_text().replace("n_workers", "n_jobs"))
    assert load_plan(path).executor.n_jobs == 2


def test_quality_weight_options_are_read_checked_and_keyed(tmp_path, inputs):
    path = _plan(
        tmp_path,
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
[[datasets]]
name = "b"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
de = {{ quality_weights = true, quality_design = "plate" }}
""",
    )
    plan = load_plan(path)
    a, b = plan.dataset("a").de, plan.dataset("b").de
    assert (a.quality_weights, a.quality_design) == (False, "fit")
    assert (b.quality_weights, b.quality_design) == (True, "plate")
    # off: the parameters (and so the task keys of existing plans) do not change
    assert "quality_weights" not in a.params()
    assert b.params()["quality_weights"] is True and b.params()["quality_design"] == "plate"
    (tmp_path / "bad").mkdir()
    bad = _plan(
        tmp_path / "bad",
        f"""
[store]
path = "store"
[[datasets]]
name = "a"
source = "l1000"
inputs = {{ level3 = "{inputs["l1000"]}" }}
de = {{ quality_weights = "yes", quality_design = "genes" }}
""",
    )
    with pytest.raises(PlanError) as info:
        load_plan(bad)
    msg = str(info.value)
    assert "quality_weights: expected bool, found 'yes'" in msg
    assert "quality_design: expected one of ['fit', 'plate'], found 'genes'" in msg


def test_quality_weight_options_are_part_of_the_de_task_key():
    def key(settings: DESettings) -> str:
        return de_task(
            dataset="a",
            ingest_key="k",
            samples="/cache/samples.h5ad",
            context={"context": "A375", "start": 0, "stop": 10},
            mode="group",
            value_kind="log_expression",
            de_params=settings.params(),
            imports=(),
        ).key

    base = DESettings()
    on = dataclasses.replace(base, quality_weights=True)
    plate = dataclasses.replace(on, quality_design="plate")
    assert len({key(base), key(on), key(plate)}) == 3


def test_quality_weight_options_reach_the_engine(tmp_path):
    import anndata as ad

    from perturbridge.compendium.tasks import EFFECTS_FILE, run_task
    from perturbridge.io import write_h5ad
    from perturbridge.simulate import simulate_counts

    samples = simulate_counts(
        n_genes=60, n_plates=2, conditions_per_plate=4, vehicles_per_plate=4, seed=1
    ).samples
    path = tmp_path / "samples.h5ad"
    write_h5ad(samples, path)
    settings = DESettings(quality_weights=True)
    task = de_task(
        dataset="sim",
        ingest_key="k",
        samples=str(path),
        context={
            "context": str(samples.obs["cell_context"].iloc[0]),
            "start": 0,
            "stop": samples.n_obs,
        },
        mode="group",
        value_kind="counts",
        de_params=settings.params(),
        imports=(),
    )
    run_task(task, str(tmp_path / "cache"))
    effects = ad.read_h5ad(tmp_path / "cache" / "tasks" / "de" / task.key / EFFECTS_FILE)
    assert "quality_weights" in effects.uns
