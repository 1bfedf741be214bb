"""Helpers: canonical JSON, safe file names, timestamp stripping, plan errors."""

from __future__ import annotations

import math

from perturbridge.compendium._common import (
    PlanError,
    canonical_json,
    digest,
    safe_name,
    strip_times,
)


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert digest({"x": (1, 2)}) == digest({"x": [1, 2]})
    assert canonical_json({"n": math.nan}) == '{"n":"nan"}'


def test_safe_names_are_unique_and_readable():
    taken: set[str] = set()
    assert safe_name("A375", taken=taken) == "A375"
    assert safe_name("HEK 293/T", taken=taken) == "HEK_293_T"
    other = safe_name("HEK_293_T", taken=taken)
    assert other.startswith("HEK_293_T-") and other != "HEK_293_T"
    assert safe_name(".hidden") == "_.hidden"  # never a hidden file
    assert safe_name("///") == "x"


def test_strip_times():
    data = {"created_utc": "now", "a": {"created_utc": 1, "b": [{"created_utc": 2, "c": 3}]}}
    assert strip_times(data) == {"a": {"b": [{"c": 3}]}}


def test_plan_error_lists_problems():
    err = PlanError(["one", "two"], where="p.toml")
    assert str(err).startswith("p.toml has 2 problems; nothing was built:")
    assert "  - one\n  - two" in str(err)
    assert "1 problem;" in str(PlanError(["x"]))
