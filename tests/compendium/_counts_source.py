"""A test-only source adapter for count Samples written as ``.h5ad``.

Plans in the tests list this module in ``build.imports``, so that every worker process
(local, Dask) registers the adapter before it ingests.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anndata as ad
import pandas as pd

from perturbridge.ledger import Ledger
from perturbridge.sources import IngestResult, SourceAdapter, list_sources, register_source

NAME = "test_counts_h5ad"


class SimCountsSource(SourceAdapter):
    """Count Samples from an ``.h5ad`` written by the tests (simulate_counts)."""

    description: ClassVar[str] = "test-only: count Samples stored as .h5ad"

    def ingest(self, **kwargs: Any) -> IngestResult:
        if kwargs.get("fail"):
            raise ValueError("planted failure of the test adapter")
        samples = ad.read_h5ad(kwargs["h5ad"])
        samples.obs["dataset"] = pd.Categorical([kwargs["dataset"]] * samples.n_obs)
        ledger = Ledger()
        ledger.keep(samples.obs_names, stage="ingest")
        return IngestResult(samples, ledger)


if NAME not in set(list_sources()["name"]):
    register_source(name=NAME, assay="simulated counts", value_kind="counts")(SimCountsSource)
