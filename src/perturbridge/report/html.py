"""The agreement report: one self-contained HTML file a person opens in a browser.

:func:`write_report` reads a compendium store (summary and identifier coverage, through
:class:`~perturbridge.compendium.Compendium`) and the agreement tables (an
:class:`~perturbridge.agreement.run.AgreementResult`, an agreement folder, or a fresh
:func:`~perturbridge.agreement.run.run_agreement`), and writes

- ``out``: HTML with inline CSS and the figures embedded as base64 PNG; no external
  resource, no JavaScript;
- ``<out stem>_figures/`` (or ``figures_dir``): every figure as PNG and SVG.

Every text that comes from data is escaped. Empty results (no matched pairs, no
separate-mode effects) are stated in a sentence, not left out.

>>> write_report("compendium", "report.html", agreement_dir="agreement")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..agreement import AgreementOptions, run_agreement
from ..agreement.published import read_published
from ..io import atomic_file
from ..models.evaluation import read_evaluation
from . import figures as F
from .inputs import _Agreement, _compendium, _from_mapping, _from_result, read_agreement_tables
from .models import render_section as render_models_section
from .published import write_published_report
from .qc import store_qc_section
from .search import indexed_search_section
from .sections import (
    _SECTIONS,
    _build_key_warning,
    _section_coverage,
    _section_cross,
    _section_dose,
    _section_excluded,
    _section_replicate,
    _section_retrieval,
    _section_run,
    _section_summary,
)
from .tables import _CSS, _e, _Fig, _p

if TYPE_CHECKING:
    from ..agreement import AgreementResult

__all__ = ["write_report"]

logger = logging.getLogger(__name__)


#: the head of a section of the report: its anchor and its title
_SECTION_HEAD = re.compile(r'<section id="([\w-]+)"><h2>(.*?)</h2>')


def _render(
    *,
    title: str,
    comp: Mapping[str, Any],
    ag: _Agreement,
    figs: Mapping[str, _Fig],
    options: Mapping[str, Any],
    extra: str = "",
) -> str:
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # the optional sections (models, search) are listed after the agreement ones
    extra_nav = [(m.group(1), html.unescape(m.group(2))) for m in _SECTION_HEAD.finditer(extra)]
    nav = "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in (*_SECTIONS, *extra_nav))
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{_e(title)}</h1>"
        '<p class="meta">Profile <b>perturbridge</b> (our definitions; every table below) · '
        f"Store <code>{_e(comp['summary'].get('path', ''))}</code> · "
        f"generated {_e(now)} by perturbridge {_e(__version__)}</p></header>"
    )
    intro = (
        '<section id="reading"><h2>How to read this report</h2>'
        + _p(
            "How well do two signatures (logFC profiles over genes) of the same compound "
            "agree: within a dataset (replicates) and across datasets (same compound, cell "
            "context and time)? Every number is compared with a baseline that is not the "
            "compound, because datasets share responses that any treatment causes; the "
            "question is whether the compound's own signal carries over. Definitions are in "
            "docs/agreement.md of the package."
        )
        + "".join(f'<div class="warn">{_e(n)}</div>' for n in ag.notes)
        + _build_key_warning(ag, comp["summary"])
        + f"<nav><ol>{nav}</ol></nav></section>"
    )
    body = [
        _section_summary(comp),
        _section_coverage(comp),
        _section_cross(ag, figs, options),
        _section_retrieval(ag, figs),
        _section_replicate(ag, figs),
        _section_dose(ag, figs),
        _section_excluded(ag),
        _section_run(ag, options),
        extra,  # the models section (report/models.py), when an evaluation is given
    ]
    foot = (
        f"<footer>perturbridge {_e(__version__)} · self-contained report: no external "
        "resources, no scripts.</footer></main></body></html>\n"
    )
    return head + intro + "".join(body) + foot


# --------------------------------------------------------------------------- entry point


def _resolve(
    store: str | os.PathLike[str],
    agreement_dir: str | os.PathLike[str] | None,
    result: Any,
    options: Mapping[str, Any] | None,
) -> _Agreement:
    if result is not None and agreement_dir is not None:
        raise ValueError("give either result or agreement_dir, not both")
    if result is not None:
        return _from_result(result)
    if agreement_dir is not None:
        return _from_mapping(read_agreement_tables(agreement_dir), where=str(agreement_dir))
    run_opts = dict(options or {})
    progress = bool(run_opts.pop("progress", False))
    return _from_result(run_agreement(store, AgreementOptions(**run_opts), progress=progress))


def _profile_of(folder: str | os.PathLike[str]) -> str:
    """The profile an agreement folder was written with (``perturbridge`` for folders of
    earlier versions, which had only that one)."""
    path = Path(folder) / "agreement.json"
    if not path.is_file():
        return "perturbridge"
    return str(json.loads(path.read_text(encoding="utf-8")).get("profile", "perturbridge"))


def write_report(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    agreement_dir: str | os.PathLike[str] | None = None,
    result: AgreementResult | None = None,
    options: Mapping[str, Any] | None = None,
    figures_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
    evaluation_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the agreement report of ``store`` to the HTML file ``out``.

    Parameters
    ----------
    store
        The compendium store (its summary and identifier coverage are read through
        :class:`~perturbridge.compendium.Compendium`).
    out
        The HTML file to write (atomically).
    agreement_dir
        An agreement folder (``perturbridge agreement STORE --out DIR``) to read the
        tables from.
    result
        An :class:`~perturbridge.agreement.run.AgreementResult` (or any object with the
        table attributes) to report. With neither ``result`` nor ``agreement_dir``,
        :func:`~perturbridge.agreement.run.run_agreement` runs on ``store`` with
        ``options``.
    options
        Fields of :class:`~perturbridge.agreement.AgreementOptions` (and ``progress``)
        for ``run_agreement`` (when it runs); otherwise shown in the report when the
        result carries no options.
    figures_dir
        Where to write each figure as PNG and SVG (default ``<out stem>_figures/`` next
        to ``out``).
    title
        The report's title (default from the store's folder name).
    evaluation_dir
        An evaluation folder (``perturbridge evaluate … --out DIR``): adds the models
        section (:mod:`perturbridge.report.models`).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the path of an .html file")
    if agreement_dir is not None and _profile_of(agreement_dir) == "published":
        return write_published_report(
            read_published(agreement_dir), out, figures_dir=figures_dir, title=title
        )
    ag = _resolve(store, agreement_dir, result, options)
    comp = _compendium(store)
    shown_options = dict(ag.info.get("options") or options or {})
    title = title or f"Agreement report: {Path(comp['summary'].get('path') or store).name}"

    figures = F.agreement_figures(
        cross_summary=ag.cross_summary,
        replicate_summary=ag.replicate_summary,
        retrieval=ag.retrieval,
        dose_sensitivity=ag.dose_sensitivity,
    )
    png = {name: F.figure_png(fig) for name, fig in figures.items()}
    folder = Path(figures_dir) if figures_dir is not None else out.with_name(f"{out.stem}_figures")
    if figures:
        F.save_figures(figures, folder, png=png)
    figs = {name: _Fig(name, data) for name, data in png.items()}
    extra = ""
    if evaluation_dir is not None:
        extra, model_figures = render_models_section(read_evaluation(evaluation_dir))
        F.save_figures(model_figures, folder)
    # the search section, when the store has a current search index (report/search.py)
    search_html, search_figures = indexed_search_section(store)
    if search_figures:
        F.save_figures(search_figures, folder)
    extra += search_html
    # the sample quality weights of the store's DE runs, when it has them (report/qc.py)
    extra += store_qc_section(store)
    document = _render(title=title, comp=comp, ag=ag, figs=figs, options=shown_options, extra=extra)
    with atomic_file(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
    logger.info("report written to %s (%d figures in %s)", out, len(figures), folder)
    return out
