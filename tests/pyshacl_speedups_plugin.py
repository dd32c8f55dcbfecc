"""A pytest plugin for a session of pySHACL's own tests (``-p pyshacl_speedups_plugin``, with this
folder on ``PYTHONPATH``; see test_pyshacl_suite.py): keeps the core tests only (the W3C
``sht_tests/core`` manifests and DASH's core tests), and puts jdm-kg's speed-ups in place unless
``JDM_KG_PYSHACL_SPEEDUPS=0``."""

import os

import pytest

from jdm_kg.reasoning._pyshacl_speedups import disable, enable

_WANTED = os.environ.get("JDM_KG_PYSHACL_SPEEDUPS", "1") != "0"


def pytest_configure(config: pytest.Config) -> None:
    if _WANTED and not enable():
        raise pytest.UsageError("jdm-kg's pySHACL speed-ups do not apply to this pySHACL version")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _WANTED:
        disable()


def _is_core(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "base" in params:  # test_sht_validate.py: the manifest's base
        return "/sht_tests/core/" in str(params["base"])
    return "core" in item.name  # test_dash_validate.py: test_dash_validate_all_core[...]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if _is_core(item)]
    config.hook.pytest_deselected(items=[item for item in items if not _is_core(item)])
    items[:] = kept
