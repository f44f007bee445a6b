"""systemd units that run ispflow in production: the collector, the job worker and the panel.

``ispflow install-units`` writes them (``scripts/install-services.sh`` is another thing: it
installs PostgreSQL, Redis and TimescaleDB). The three units share one environment file with
the ``ISPFLOW_*`` settings, run as one unprivileged system user, restart on failure, log to the
journal and see the file system read-only except the spool, state and export directories.
``scripts/run.sh`` stays the way to try ispflow in a terminal.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Settings

UNIT_PREFIX = "ispflow-"
ENV_FILE = "/etc/ispflow/ispflow.env"
SYSTEM_USER = "ispflow"

# Options every unit gets: a process that cannot gain privileges, sees a read-only system and
# its own /tmp, and reaches only the network families it uses.
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    "UMask=0027",
)


@dataclass(frozen=True)
class Unit:
    name: str               # without the prefix and ".service"
    description: str
    command: tuple[str, ...]  # program (looked up next to the running Python) and arguments
    writable: tuple[str, ...]  # names of Settings fields holding the directories it writes
    capabilities: str = ""  # ambient capabilities, if any
    stop_timeout_s: int = 30


def units(panel_bind: str) -> list[Unit]:
    """The three processes; the panel binds ``panel_bind`` (HOST:PORT, put a proxy in front)."""
    return [
        # SO_RCVBUFFORCE (a receive buffer above net.core.rmem_max, so bursts are not dropped)
        # needs CAP_NET_ADMIN; without it the collector falls back to the kernel's maximum.
        Unit("collector", "ispflow NetFlow/IPFIX/sFlow collector", ("ispflow", "collector"),
             ("SPOOL_DIR", "STATE_DIR"), capabilities="CAP_NET_ADMIN", stop_timeout_s=90),
        Unit("worker", "ispflow job worker and scheduler", ("ispflow", "worker"), ("EXPORT_DIR",)),
        Unit("panel", "ispflow panel (gunicorn)",
             ("gunicorn", "--bind", panel_bind, "--workers", "2", "--access-logfile", "-",
              "ispflow.standalone:create_app()"), ("EXPORT_DIR",)),
    ]


def unit_name(unit: Unit) -> str:
    return f"{UNIT_PREFIX}{unit.name}.service"


def render(unit: Unit, settings: Settings, env_file: str = ENV_FILE, user: str = SYSTEM_USER,
           bindir: str | None = None) -> str:
    """The text of one unit file."""
    bindir = bindir or str(Path(sys.executable).parent)
    program, *args = unit.command
    exec_start = " ".join([str(Path(bindir) / program), *(_quoted(a) for a in args)])
    writable = " ".join(getattr(settings, field) for field in unit.writable)
    lines = [
        "[Unit]",
        f"Description={unit.description}",
        "Documentation=file://" + str(Path(__file__).resolve().parent.parent / "README.md"),
        "After=network-online.target postgresql.service redis-server.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"Group={user}",
        f"EnvironmentFile={env_file}",
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        "RestartSec=5",
        f"TimeoutStopSec={unit.stop_timeout_s}",
        "StandardOutput=journal",
        "StandardError=journal",
        f"SyslogIdentifier={UNIT_PREFIX}{unit.name}",
        f"ReadWritePaths={writable}",
        *HARDENING,
    ]
    if unit.capabilities:
        lines += [f"AmbientCapabilities={unit.capabilities}", f"CapabilityBoundingSet={unit.capabilities}"]
    else:
        lines.append("CapabilityBoundingSet=")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _quoted(argument: str) -> str:
    return f'"{argument}"' if any(c in argument for c in ' "()\\') else argument


def environment_file(settings: Settings, environ=None) -> str:
    """The environment file: every ``ISPFLOW_*`` set now, a secret key if none is, and the
    collector's metrics on 127.0.0.1:9465 unless another address is set."""
    environ = os.environ if environ is None else environ
    values = {k: v for k, v in sorted(environ.items()) if k.startswith("ISPFLOW_") and "\n" not in v}
    values.setdefault("ISPFLOW_SECRET_KEY", settings.SECRET_KEY or secrets.token_hex(32))
    values.setdefault("ISPFLOW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:9465")
    head = ["# ispflow settings for its systemd units (ispflow install-units); see README 'Configuration'."]
    return "\n".join(head + [f"{key}={value}" for key, value in values.items()]) + "\n"


def parse_environment_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines as systemd reads them (comments and blank lines skipped)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def install(target_dir: str, settings: Settings, env_file: str = ENV_FILE, user: str = SYSTEM_USER,
            panel_bind: str = "127.0.0.1:5000", create_user: bool = True, enable: bool = True,
            log=print) -> list[Path]:
    """Write the units and (once) the environment file; create the user and the directories;
    enable and start the units when systemd runs here. Returns the unit files written."""
    if create_user:
        _ensure_user(user, settings.STATE_DIR, log)
    for field in ("SPOOL_DIR", "STATE_DIR", "EXPORT_DIR"):
        path = Path(getattr(settings, field))
        path.mkdir(parents=True, exist_ok=True)
        if create_user:
            shutil.chown(path, user, user)
            path.chmod(0o750)
    env_path = Path(env_file)
    if env_path.exists():
        log(f"Keeping the existing environment file {env_path}.")
    else:
        env_path.parent.mkdir(parents=True, exist_ok=True)
        env_path.write_text(environment_file(settings))
        env_path.chmod(0o640)  # it holds the secret key and the database password
        if create_user:
            shutil.chown(env_path, "root", user)
        log(f"Wrote {env_path}; edit it to change settings, then restart the units.")
    written = []
    for unit in units(panel_bind):
        path = Path(target_dir) / unit_name(unit)
        path.write_text(render(unit, settings, env_file, user))
        written.append(path)
        log(f"Wrote {path}.")
    names = [unit_name(u) for u in units(panel_bind)]
    if enable and systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", *names], check=True)
        log(f"Enabled and started {', '.join(names)}.")
    else:
        log(f"Not enabled (systemd is not running here or --no-enable): systemctl enable --now {' '.join(names)}")
    return written


def _ensure_user(user: str, home: str, log) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
                    "--shell", "/usr/sbin/nologin", user], check=True)
    log(f"Created system user {user}.")
