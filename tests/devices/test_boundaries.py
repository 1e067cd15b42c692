"""``devices`` stands alone: it imports nothing from the service or the referral package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import devices

PACKAGE = Path(devices.__file__).parent


def test_no_module_in_devices_imports_the_rest_of_the_project() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("app", "referral", "tests")
            ]
    assert offenders == []


def test_importing_everything_in_devices_loads_no_project_code() -> None:
    code = (
        "import sys, devices.bridge, devices.cli, devices.csv_import, devices.simulator;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'referral')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
