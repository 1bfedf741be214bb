"""``perturbridge split``, ``train``, ``evaluate`` and ``embed``: compound representations
pretrained on a store, and an evaluation with the trivial baselines beside.

``train``, ``evaluate`` and ``embed`` need the optional extra ``[models]`` (torch); they
say so in one line when it is missing. ``split`` does not.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import check_out_file, console, fail, frame_table, user_errors

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["register"]

#: Split kinds (the names of ``perturbridge.models.splits.SPLIT_KINDS``).
SplitKind = StrEnum("SplitKind", ["pair", "compound", "molecule", "context"])

INSTALL_HINT = "pip install 'perturbridge[models]'"

StructuresArg = Annotated[
    Path | None,
    typer.Option(
        "--structures",
        help="Compound structures (CSV/TSV/Parquet: smiles and compound/inchikey/"
        "pubchem_cid/name): Morgan encoders and the Tanimoto baseline.",
    ),
]


def _need_torch(command: str) -> None:
    if importlib.util.find_spec("torch") is None:
        fail(f"perturbridge {command} needs torch, which is not installed: {INSTALL_HINT}")


def _check_store(store: Path) -> None:
    if not store.exists():
        fail(f"no store or shards folder at {store}")


def _structures(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    from ..models.data import read_structures

    return read_structures(path)


def split(
    store: Annotated[Path, typer.Argument(help="Compendium store or training-shards folder.")],
    kind: Annotated[SplitKind, typer.Option("--kind", help="What is held out.")],
    out: Annotated[Path, typer.Option("--out", help="Split folder to write.")],
    target: Annotated[
        str | None,
        typer.Option("--target", help="Target dataset (compound hold-out: required)."),
    ] = None,
    contexts: Annotated[
        list[str] | None,
        typer.Option("--context", help="Context to hold out (context hold-out; repeatable)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random choices.")] = 0,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Share held out for testing.")
    ] = 0.1,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share held out for validation.")
    ] = 0.1,
) -> None:
    """Make a train/val/test split of a store's conditions and save it (with a manifest).

    Example:

        perturbridge split store --kind compound --target lincs --out split
    """
    from ..models.data import load_training_data
    from ..models.splits import SplitOptions, make_split, save_split

    _check_store(store)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"--out {out} exists; choose another folder or remove it")
    try:
        opts = SplitOptions(
            seed=seed,
            target_dataset=target,
            test_fraction=test_fraction,
            val_fraction=val_fraction,
            contexts=tuple(contexts) if contexts else None,
        )
        data = load_training_data(store)
        made = make_split(data, kind=kind.value, options=opts)
        save_split(made, out)
    except user_errors() as err:
        fail(err)
    counts = made.assignment.value_counts().reindex(["train", "val", "test"]).fillna(0)
    console.print(
        f"wrote {out}: {kind.value} split, "
        + ", ".join(f"{part} {int(n):,}" for part, n in counts.items())
        + " conditions"
    )


def train_cmd(
    store: Annotated[Path, typer.Argument(help="Compendium store or training-shards folder.")],
    config: Annotated[Path, typer.Option("--config", help="Model configuration (TOML).")],
    split_dir: Annotated[Path, typer.Option("--split", help="Split folder (perturbridge split).")],
    out: Annotated[Path, typer.Option("--out", help="Training folder to write.")],
    family: Annotated[
        str | None,
        typer.Option("--family", help="Model family (all, target_only, finetune_frozen, ...)."),
    ] = None,
    pretrained: Annotated[
        Path | None,
        typer.Option("--pretrained", help="Embeddings table (perturbridge embed) to start from."),
    ] = None,
    structures: StructuresArg = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from last.pt.")
    ] = False,
) -> None:
    """Train a model on the split's training rows, early stopping on its validation rows.

    Example:

        perturbridge train store --config model.toml --split split --out model
    """
    _need_torch("train")
    _check_store(store)
    from ..models.data import load_training_data
    from ..models.options import FAMILIES, ModelConfig
    from ..models.splits import load_split
    from ..models.training import train

    try:
        cfg = ModelConfig.from_toml(config)
        if family is not None and family not in FAMILIES:
            raise KeyError(f"unknown model family {family!r}; known: {list(FAMILIES)}")
        if family is not None and FAMILIES[family].needs_pretrained:
            cfg = FAMILIES[family].configure(
                cfg, pretrained=str(pretrained) if pretrained else None
            )
        elif pretrained is not None:
            cfg = replace(cfg, compound_encoder="pretrained", pretrained=str(pretrained))
        sp = load_split(split_dir)
        st = _structures(structures)
        data = load_training_data(store)
        model = train(data, sp, config=cfg, out=out, structures=st, resume=resume, family=family)
    except user_errors() as err:
        fail(err)
    info = model.info
    console.print(
        f"wrote {out}: best epoch {info.get('best_epoch', '-')}, "
        f"validation loss {info.get('best_val_loss', float('nan')):.4g}"
    )


def _model_args(models: list[str]) -> list[tuple[str, Path]]:
    out = []
    for spec in models:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name or spec, spec
        if not name or not path:
            fail(f"--model {spec!r}: give a path, or name=path")
        out.append((name, Path(path)))
    return out


def evaluate_cmd(
    store: Annotated[Path, typer.Argument(help="Compendium store or training-shards folder.")],
    models: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Model file or training folder, or name=path; a name given several times "
            "is one model over seeds.",
        ),
    ],
    split_dir: Annotated[Path, typer.Option("--split", help="Split folder (perturbridge split).")],
    out: Annotated[Path, typer.Option("--out", help="Evaluation folder to write.")],
    structures: StructuresArg = None,
    part: Annotated[str, typer.Option("--part", help="Part to evaluate: test or val.")] = "test",
    k: Annotated[int, typer.Option("--k", help="Genes in the top-k DEG sets.")] = 50,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the HTML models report here.")
    ] = None,
) -> None:
    """Evaluate models on a split beside the trivial baselines (zero, training mean,
    nearest compound by Tanimoto) and the replicate-agreement ceiling.

    Example:

        perturbridge evaluate store --model model --split split --out evaluation
    """
    _need_torch("evaluate")
    _check_store(store)
    import pandas as pd

    from ..compendium import Compendium
    from ..models.data import DataOptions, load_training_data
    from ..models.evaluation import EvaluationOptions, evaluate
    from ..models.model import TrainedModel
    from ..models.splits import load_split

    specs = _model_args(models)
    if report is not None:
        check_out_file(report, option="--report")
    try:
        opts = EvaluationOptions(part=part, k=k)
        sp = load_split(split_dir)
        loaded: dict[str, list[Any]] = {}
        histories: dict[str, pd.DataFrame] = {}
        for name, path in specs:
            loaded.setdefault(name, []).append(TrainedModel.load(path, device="cpu"))
            hist = (path if path.is_dir() else path.parent) / "history.csv"
            if hist.is_file():
                histories[f"{name}__{len(loaded[name]) - 1}"] = pd.read_csv(hist)
        first = next(iter(loaded.values()))[0]
        data = load_training_data(store, options=DataOptions(genes=tuple(first.genes.index)))
        st = _structures(structures)
        if (store / "manifest.json").is_file():  # a store: the ceiling is read from it
            with Compendium.open(store) as comp:
                result = evaluate(loaded, data, sp, options=opts, structures=st, store=comp)
        else:  # training shards: no replicate effects to read
            result = evaluate(loaded, data, sp, options=opts, structures=st)
        result.histories = histories
        result.save(out, replace=force)
        if report is not None:
            from ..report.models import write_models_report

            write_models_report(result, report)
    except user_errors() as err:
        fail(err)
    console.print(frame_table(summary_view(result.summary), "models and baselines"))
    console.print(
        frame_table(ceiling_view(result.ceiling), "replicate-agreement ceiling (target dataset)")
    )
    console.print(f"wrote {out}" + (f" and {report}" if report is not None else ""))


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary table as ``mean ± SD`` strings of the main metrics."""
    import numpy as np
    import pandas as pd

    def fmt(m: float, s: float) -> str:
        if not np.isfinite(m):
            return "-"
        return f"{m:.4f}" + (f" ± {s:.4f}" if np.isfinite(s) else "")

    view = pd.DataFrame(
        {"model": summary["model"], "kind": summary["kind"], "seeds": summary["n_seeds"]}
    )
    for m in ("mrrmse", "pearson", "pearson_delta"):
        view[m] = [fmt(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_sd"], strict=True)]
    return view


def ceiling_view(ceiling: pd.DataFrame) -> pd.DataFrame:
    """The dataset-level rows of the ceiling table, in a few columns."""
    rows = ceiling[ceiling["level"] == "all"] if "level" in ceiling else ceiling
    cols = ["dataset", "metric", "baseline", "observed", "baseline_value", "n_conditions"]
    return rows.reindex(columns=[c for c in [*cols, "reason"] if c in rows.columns])


def embed_cmd(
    store: Annotated[Path, typer.Argument(help="The store the model was trained on.")],
    model: Annotated[Path, typer.Option("--model", help="Model file or training folder.")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    all_compounds: Annotated[
        bool,
        typer.Option("--all", help="Also write compounds the model learned nothing about."),
    ] = False,
) -> None:
    """Write one vector per compound, keyed by parent InChIKey (and PubChem CID).

    Example:

        perturbridge embed store --model model --out compounds.parquet
    """
    _need_torch("embed")
    _check_store(store)
    check_out_file(out)
    from ..models.embedding import embed

    try:
        path = embed(model, out=out, all_compounds=all_compounds)
    except user_errors() as err:
        fail(err)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``split``, ``train``, ``evaluate`` and ``embed`` to the ``perturbridge`` app."""
    app.command("split")(split)
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("embed")(embed_cmd)
