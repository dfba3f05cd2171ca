"""Shared by the trigger tests: one small registry, and app settings as Azure would set them."""

from __future__ import annotations

from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer

#: app: two old images and a new one; web: PR builds (old and new) and an old release.
SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "old1", "kind": "image", "updated": "-40d", "tags": ["old1"]},
                {"id": "old2", "kind": "image", "updated": "-35d", "tags": ["old2"]},
                {"id": "new", "kind": "image", "updated": "-1d", "tags": ["new"]},
            ]
        },
        "web": {
            "manifests": [
                {"id": "pr1", "kind": "image", "updated": "-10d", "tags": ["pr-1"]},
                {"id": "pr2", "kind": "image", "updated": "-1h", "tags": ["pr-2"]},
                {"id": "rel", "kind": "image", "updated": "-100d", "tags": ["release"]},
            ]
        },
    }
}


def set_app_settings(monkeypatch: pytest.MonkeyPatch, emu: EmulatorServer, **settings: str) -> None:
    """The registry settings of an app pointed at `emu` (managed identity, no password)."""
    for key, value in {
        "PURGE_REGISTRY": emu.login_server,
        "PURGE_ALLOWED_HOSTS": emu.login_server,
        "PURGE_CA_FILE": emu.ca_file,
        **settings,
    }.items():
        monkeypatch.setenv(key, value)
