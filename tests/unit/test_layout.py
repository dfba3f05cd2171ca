"""What ships to Azure and what `purge` exposes: checked by importing, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import purge

ROOT = Path(__file__).resolve().parents[2]
#: Everything the function app's handlers import when they run.
HANDLER_MODULES = (
    "function_app",
    "purge.functions.timer",
    "purge.functions.http",
    "purge.functions.status",
    "purge.service",
    "purge.registry.acr",
    "purge.functions.history",
    "purge.history.journal",
    "purge.history.restore",
)


def _modules_after_import(*names: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(names)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def _funcignore() -> list[str]:
    lines = (ROOT / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_public_name_resolves() -> None:
    assert "run_purge" in purge.__all__ and "load_settings" in purge.__all__
    for name in purge.__all__:
        assert getattr(purge, name) is not None, name


def test_import_purge_loads_nothing_else() -> None:
    loaded = _modules_after_import("purge")
    assert sorted(m for m in loaded if m.startswith("purge.")) == []


def test_the_handlers_load_no_cli_no_renderer_no_test_code() -> None:
    loaded = _modules_after_import(*HANDLER_MODULES)
    for module in ("purge.cli", "purge.cli.main", "purge.cli.demo", "purge.render", "rich"):
        assert module not in loaded, module
    assert not any(m.startswith(("tests", "acr_emulator")) for m in loaded)


def test_what_the_handlers_load_is_deployed_and_the_rest_is_not() -> None:
    ignored = _funcignore()
    for excluded in (
        "tests/",
        "acr_emulator/",
        "purge/__main__.py",
        "purge/cli/",
        "purge/render.py",
    ):
        assert excluded in ignored, excluded
    loaded = _modules_after_import(*HANDLER_MODULES)
    for module in sorted(m for m in loaded if m == "purge" or m.startswith("purge.")):
        path = module.replace(".", "/")
        package = (ROOT / path).is_dir()
        relative = f"{path}/__init__.py" if package else f"{path}.py"
        assert not any(
            relative == pattern or relative.startswith(pattern) for pattern in ignored
        ), f"{module} is imported by the handlers but excluded by .funcignore"


def test_the_readme_zip_deploy_leaves_out_what_funcignore_does() -> None:
    """README's zip command stands in for .funcignore where Core Tools is not used."""
    readme = (ROOT / "README.md").read_text()
    command = readme[readme.index("zip -r app.zip") :].split("\naz ", 1)[0]
    for pattern in _funcignore():
        if pattern.startswith("purge/"):
            excluded = pattern + "*" if pattern.endswith("/") else pattern
            assert f"'{excluded}'" in command, pattern
