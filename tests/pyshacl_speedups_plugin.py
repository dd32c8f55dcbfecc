"""A pytest plugin that runs a pySHACL test session with jdm-kg's speed-ups in place
(``-p pyshacl_speedups_plugin``, with this folder on ``PYTHONPATH``): see test_pyshacl_suite.py."""

import pytest

from jdm_kg.reasoning._pyshacl_speedups import disable, enable


def pytest_configure(config: pytest.Config) -> None:
    if not enable():
        raise pytest.UsageError("jdm-kg's pySHACL speed-ups do not apply to this pySHACL version")


def pytest_unconfigure(config: pytest.Config) -> None:
    disable()
