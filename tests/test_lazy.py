"""Lazy package exports: a name loads its module on first use, once."""

from __future__ import annotations

import sys

import pytest

from perturbridge._lazy import lazy_exports, public_names


def test_public_names_are_sorted_and_unique() -> None:
    assert public_names({".b": ("z", "a"), ".a": ("m",)}) == ["a", "m", "z"]
    with pytest.raises(ValueError, match=r"more than one module: \['x'\]"):
        public_names({".a": ("x",), ".b": ("x", "y")})


def test_a_name_loads_its_module_on_first_use() -> None:
    namespace: dict[str, object] = {}
    getattr_, dir_ = lazy_exports("json", {".decoder": ("JSONDecodeError",)}, namespace)
    from json.decoder import JSONDecodeError

    assert getattr_("JSONDecodeError") is JSONDecodeError
    assert namespace["JSONDecodeError"] is JSONDecodeError  # cached: no second lookup
    assert "JSONDecodeError" in dir_()
    with pytest.raises(AttributeError, match="module 'json' has no attribute 'nope'"):
        getattr_("nope")


def test_the_packages_export_every_name_they_list() -> None:
    import perturbridge
    import perturbridge.compendium
    import perturbridge.models
    import perturbridge.search

    for package in (perturbridge, perturbridge.compendium, perturbridge.search):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    # the models names that need no torch resolve without importing it
    loaded = "torch" in sys.modules
    assert perturbridge.models.make_split is not None
    assert perturbridge.models.TrainingData is not None
    if not loaded:
        assert "torch" not in sys.modules
