"""ACR purge engine: settings -> rules -> listing -> plan -> execution -> report.

Never imports azure.functions. The names below are the public API; they load on first use, so
that `import purge` (which every trigger does) stays cheap:

- `load_settings(environ)` -> `Config`, or `ConfigError` naming every broken setting;
- `run_purge(config, ...)` -> `Report` (one run: list, plan, execute, report);
- `RepositoryPlanner` / `plan_repository`: the pure planner, and the `Plan` it returns;
- `open_registry(connection)` -> the `Registry` on azure-containerregistry.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Config": "purge.config.settings",
    "ConfigError": "purge.config.settings",
    "Connection": "purge.config.settings",
    "load_settings": "purge.config.settings",
    "Rule": "purge.config.rules",
    "RuleError": "purge.config.rules",
    "Plan": "purge.model",
    "RepositorySnapshot": "purge.model",
    "RepositoryPlanner": "purge.planner",
    "plan_repository": "purge.planner",
    "execute": "purge.executor",
    "Report": "purge.report",
    "run_purge": "purge.service",
    "Registry": "purge.registry.protocol",
    "RegistryError": "purge.registry.protocol",
    "open_registry": "purge.registry.acr",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'purge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
