"""Shared fixtures: the ACR emulator (HTTPS, real protocol) and a managed-identity endpoint."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# The property tests draw the same examples on every run and machine, so a test run (CI's
# included) is repeatable: a failure can be rerun as it was, and none comes and goes with the
# seed. Hunting for new counterexamples is a separate, deliberate run with fresh random draws:
#   python3 -m pytest tests/unit --hypothesis-profile=explore
# Each one found becomes an @example of its test (test_dry_run_property.py has one).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # plain `pytest` (not `python -m pytest`) must find the packages too
    sys.path.insert(0, ROOT)

from acr_emulator.testing import SMALL_SCENARIO, EmulatorServer  # noqa: E402
from tests.fixtures.identity_endpoint import (  # noqa: E402
    ManagedIdentityEndpoint,
    identity_endpoint,
)
from tests.fixtures.storage import StorageAccount, azurite_server, storage  # noqa: E402

__all__ = [
    "ManagedIdentityEndpoint",
    "StorageAccount",
    "azurite_server",
    "identity_endpoint",
    "storage",
]


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """An emulator serving the small default scenario (acr_emulator.testing.SMALL_SCENARIO)."""
    with EmulatorServer(scenario=SMALL_SCENARIO) as emu:
        yield emu


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., EmulatorServer]]:
    """callable(scenario=..., **EmulatorServer kwargs) -> a started emulator, stopped after."""
    started: list[EmulatorServer] = []

    def make(scenario: Any = SMALL_SCENARIO, **kwargs: Any) -> EmulatorServer:
        emu = EmulatorServer(scenario=scenario, **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
