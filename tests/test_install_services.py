"""The set-up script as a new user meets it: building TimescaleDB prints no alarming errors."""
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-services.sh"


@pytest.mark.slow
def test_configuring_timescaledb_from_the_source_package_prints_no_git_errors(tmp_path):
    """Downloads Debian's source package (a minute or two): run with ``-m slow``."""
    download = subprocess.run(
        "apt-get source -qq --download-only timescaledb && dpkg-source -x --skip-patches ./*.dsc src",
        shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert download.returncode == 0, download.stderr
    build = subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && configure_timescaledb src && make -C src/build gitcheck >/dev/null"],
        cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert "fatal" not in build.stderr and "not a git repository" not in build.stderr, build.stderr
