"""Shared test set-up. Slow tests run only with N2M_SLOW=1; the real-Ardour test only with N2M_ARDOUR=1."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_collection_modifyitems(config, items):
    slow = os.environ.get("N2M_SLOW") == "1"
    ardour = os.environ.get("N2M_ARDOUR") == "1"
    for item in items:
        if "slow" in item.keywords and not slow:
            item.add_marker(pytest.mark.skip(reason="slow: set N2M_SLOW=1 to run"))
        if "ardour" in item.keywords and not ardour:
            item.add_marker(pytest.mark.skip(reason="drives a real Ardour: set N2M_ARDOUR=1 to run"))
