"""The R engine (``limma_r``): the same samples, fits and layers as our engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_limma import _orphan_samples, _volume_samples, engine_kw

from perturbridge.de import limma_trend
from perturbridge.de.r_limma import limma_r


def _same(ours, r, *, atol):
    assert list(ours.obs_names) == list(r.obs_names)
    assert list(ours.layers) == list(r.layers)
    for col in ("n_treated", "n_control", "df_residual"):
        assert ours.obs[col].tolist() == r.obs[col].tolist(), col
    for name in ours.layers:
        np.testing.assert_allclose(
            ours.layers[name], r.layers[name], rtol=0, atol=atol, err_msg=name
        )


@pytest.mark.r_oracle
@pytest.mark.parametrize("orphan_vehicles", ["drop", "keep"])
def test_r_engine_takes_the_orphan_vehicles_option(tmp_path: Path, r_oracle, orphan_vehicles):
    samples = _orphan_samples()
    kw = {"orphan_vehicles": orphan_vehicles, "stdev_scaled": True}
    r = limma_r(samples, method="trend", workdir=tmp_path, **engine_kw(**kw))
    ours = limma_trend(samples, **engine_kw(**kw))
    _same(ours.effects, r.effects, atol=1e-6)
    lost = r.ledger.to_frame().query("reason == 'vehicle_without_treated'")
    assert len(lost) == (12 if orphan_vehicles == "drop" else 0)
    assert r.effects.uns["perturbridge"]["params"]["orphan_vehicles"] == orphan_vehicles


@pytest.mark.r_oracle
def test_r_engine_fits_per_control_group(tmp_path: Path, r_oracle):
    samples = _volume_samples()
    kw = {"control_keys": ["percent_volume_dmso"], "fit_per_control_group": True}
    r = limma_r(samples, method="trend", workdir=tmp_path, **engine_kw(**kw))
    ours = limma_trend(samples, **engine_kw(**kw))
    _same(ours.effects, r.effects, atol=1e-6)
    assert "stdev.scaled" not in r.effects.layers
