"""A non-editable install carries the templates and the migrations as package data."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_and_migrations(tmp_path):
    # setuptools reuses build/ and keeps files deleted from the tree since the last build there.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("ispflow-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ispflow/templates/ispflow/layout.html" in names
    assert "ispflow/templates/standalone/login.html" in names
    assert "ispflow/migrations/env.py" in names
    assert "ispflow/migrations/script.py.mako" in names
    assert "ispflow/migrations/versions/0001_initial.py" in names
    assert {"ispflow/static/ispflow.css", "ispflow/static/router_job.js"} <= names
    # Test-only builders stay in tests/ (bench/ imports them from there); the pytest plugin
    # ispflow/testing.py ships on purpose, for host panels' own test suites.
    assert not {"ispflow/collector/synthetic.py", "ispflow/search/sample_flows.py"} & names
    assert not any(name.startswith("tests/") for name in names)
