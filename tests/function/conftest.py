"""Fixtures of the trigger tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from acr_emulator.testing import EmulatorServer
from tests.function.support import SCENARIO


@pytest.fixture
def emu(emulator_factory: Callable[..., EmulatorServer]) -> EmulatorServer:
    return emulator_factory(scenario=SCENARIO)
