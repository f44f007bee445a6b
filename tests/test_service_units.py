"""The systemd units ``ispflow install-units`` writes: valid for systemd, hardened, and able to
start the collector, the worker and the panel with their command lines and environment file."""
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ispflow.cli import cli
from ispflow.config import Settings
from ispflow.service_units import ENV_FILE, install, parse_environment_file

from .netflow_tools import free_udp_port

UNITS = ("ispflow-collector.service", "ispflow-worker.service", "ispflow-panel.service")


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def installed(tmp_path, database_url, redis_url, monkeypatch):
    """Units and environment file written for this test's database, Redis and directories."""
    environ = {"ISPFLOW_DATABASE_URL": database_url, "ISPFLOW_REDIS_URL": redis_url,
               "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool"), "ISPFLOW_STATE_DIR": str(tmp_path / "state"),
               "ISPFLOW_EXPORT_DIR": str(tmp_path / "exports"),
               "ISPFLOW_COLLECTOR_LISTEN": f"127.0.0.1:{free_udp_port()}",
               "ISPFLOW_COLLECTOR_METRICS_LISTEN": f"127.0.0.1:{free_tcp_port()}"}
    for key in [k for k in os.environ if k.startswith("ISPFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    panel = f"127.0.0.1:{free_tcp_port()}"
    install(str(units_dir), Settings.from_env(), str(tmp_path / "ispflow.env"), panel_bind=panel,
            create_user=False, enable=False, log=lambda line: None)
    return units_dir, tmp_path / "ispflow.env", panel


def unit_values(path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_analyze_verifies_the_units_without_a_warning(installed):
    units_dir, _, _ = installed
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(units_dir / u) for u in UNITS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_is_hardened_restarts_on_failure_and_logs_to_the_journal(installed, unit):
    values = unit_values(installed[0] / unit)
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("Restart", "on-failure"), ("StandardOutput", "journal"),
                       ("StandardError", "journal"), ("User", "ispflow")]:
        assert values[key] == [value], key


def test_each_unit_may_write_only_its_own_directories(installed, tmp_path):
    units_dir = installed[0]
    writable = {u: unit_values(units_dir / u)["ReadWritePaths"] for u in UNITS}
    assert writable == {
        "ispflow-collector.service": [f"{tmp_path}/spool {tmp_path}/state"],
        "ispflow-worker.service": [f"{tmp_path}/exports"],
        "ispflow-panel.service": [f"{tmp_path}/exports"],
    }


def test_only_the_collector_keeps_a_capability(installed):
    units_dir = installed[0]
    assert unit_values(units_dir / UNITS[0])["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert [unit_values(units_dir / u)["CapabilityBoundingSet"] for u in UNITS[1:]] == [[""], [""]]


def test_the_environment_file_holds_the_settings_and_a_secret_key_readable_by_the_group_only(installed,
                                                                                             database_url):
    env_file = installed[1]
    values = parse_environment_file(env_file.read_text())
    assert values["ISPFLOW_DATABASE_URL"] == database_url
    assert len(values["ISPFLOW_SECRET_KEY"]) == 64
    assert env_file.stat().st_mode & 0o777 == 0o640


def test_installing_again_keeps_the_environment_file(installed):
    units_dir, env_file, panel = installed
    before = env_file.read_text()
    install(str(units_dir), Settings.from_env(), str(env_file), panel_bind=panel, create_user=False,
            enable=False, log=lambda line: None)
    assert env_file.read_text() == before


def test_the_command_line_writes_the_units(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPFLOW_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("ISPFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ISPFLOW_EXPORT_DIR", str(tmp_path / "exports"))
    result = CliRunner().invoke(cli, ["install-units", "--dir", str(tmp_path), "--env-file",
                                      str(tmp_path / "env"), "--no-user", "--no-enable"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.service")) == sorted(UNITS)
    assert "systemctl enable --now" in result.output
    assert ENV_FILE == "/etc/ispflow/ispflow.env"


def start_as_systemd_would(unit_path, env_file, log_path):
    """ExecStart run with only the environment file's variables (and a PATH), as systemd does."""
    values = unit_values(unit_path)
    environ = {"PATH": "/usr/bin:/bin", **parse_environment_file(env_file.read_text())}
    with open(log_path, "wb") as log:
        return subprocess.Popen(shlex.split(values["ExecStart"][0]), env=environ, cwd="/", stdout=log,
                                stderr=subprocess.STDOUT)


def wait_until(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def test_the_three_processes_start_from_the_units_and_stop_on_sigterm(installed, db_engine, redis_conn, tmp_path):
    from rq import Worker

    units_dir, env_file, panel = installed
    processes = {u: start_as_systemd_would(units_dir / u, env_file, tmp_path / f"{u}.log") for u in UNITS}
    try:
        def beat():
            with db_engine.connect() as conn:
                return conn.execute(sa.text("select count(*) from ispflow.collector_heartbeats")).scalar() > 0

        def panel_answers():
            try:
                return urllib.request.urlopen(f"http://{panel}/login", timeout=2).status == 200
            except OSError:
                return False

        assert wait_until(beat)
        assert wait_until(lambda: len(Worker.all(connection=redis_conn)) > 0)
        assert wait_until(panel_answers)
        metrics = parse_environment_file(env_file.read_text())["ISPFLOW_COLLECTOR_METRICS_LISTEN"]
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as response:
            assert b"ispflow_collector_packets_total" in response.read()
        assert all(p.poll() is None for p in processes.values())
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = {u: p.wait(timeout=60) for u, p in processes.items()}
        outputs = {u: (tmp_path / f"{u}.log").read_text(errors="replace")[-2000:] for u in UNITS}
    assert codes == {u: 0 for u in UNITS}, outputs
