"""Real third-party NetFlow tools driven by the tests: exporters whose datagrams we capture,
and nfcapd + nfdump as the reference decoder of the same datagrams."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Capture:
    """A UDP socket on 127.0.0.1 that keeps every datagram an exporter sends to it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def datagrams(self, settle: float = 0.5) -> list[bytes]:
        received = []
        self.sock.settimeout(settle)
        try:
            while True:
                received.append(self.sock.recv(65535))
        except socket.timeout:
            pass
        self.sock.close()
        return received


def softflowd(pcap: Path, version: int) -> list[bytes]:
    capture = Capture()
    # softflowd removes its pid file on exit: give it one of its own, never a shared path
    pidfile = pcap.parent / f"softflowd-{capture.port}.pid"
    try:
        subprocess.run(["softflowd", "-r", str(pcap), "-n", f"127.0.0.1:{capture.port}", "-v", str(version), "-d",
                        "-6", "-c", "none", "-p", str(pidfile)],
                       check=True, capture_output=True, timeout=30)
    except BaseException:
        capture.sock.close()   # not left for a later test's garbage collection to report
        raise
    return capture.datagrams()


def pmacctd(pcap: Path, version: int, workdir: Path) -> list[bytes]:
    capture = Capture()
    config = workdir / f"pmacctd-{version}.conf"
    config.write_text(
        "daemonize: false\n"
        f"pcap_savefile: {pcap}\n"
        "plugins: nfprobe\n"
        f"nfprobe_receiver: 127.0.0.1:{capture.port}\n"
        f"nfprobe_version: {version}\n"
        "nfprobe_timeouts: tcp=1:maxlife=1:expint=1\n"
    )
    # At the end of a savefile pmacctd sometimes exits 1, when its plugin is gone before its
    # core (seen in CI, the export complete): what it sent is what counts.
    run = subprocess.run(["pmacctd", "-f", str(config)], capture_output=True, timeout=30)
    received = capture.datagrams()
    if not received:
        raise RuntimeError(f"pmacctd (exit {run.returncode}) sent nothing: {run.stderr.decode(errors='replace')}")
    return received


def pmacctd_sfprobe(pcap: Path, workdir: Path) -> list[bytes]:
    """The sFlow v5 datagrams pmacctd's sfprobe plugin makes of a capture (every packet sampled)."""
    capture = Capture()
    config = workdir / "pmacctd-sfprobe.conf"
    config.write_text(
        "daemonize: false\n"
        f"pcap_savefile: {pcap}\n"
        "plugins: sfprobe\n"
        f"sfprobe_receiver: 127.0.0.1:{capture.port}\n"
        "sfprobe_agentip: 127.0.0.1\n"
        "sampling_rate: 1\n"
    )
    # pmacctd exits 1 once the capture is read and its plugin gone: what it sent is what counts
    subprocess.run(["pmacctd", "-f", str(config)], capture_output=True, timeout=30)
    return capture.datagrams()


def send(datagrams: list[bytes], port: int, host: str = "127.0.0.1", pause_every: int = 200) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as out:
        for i, datagram in enumerate(datagrams, 1):
            out.sendto(datagram, (host, port))
            if i % pause_every == 0:
                time.sleep(0.005)


class Nfcapd:
    """nfcapd writing files into ``directory`` while running (a context manager)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()

    def __enter__(self):
        self.process = subprocess.Popen(
            ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", str(self.directory), "-t", "3600"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.startswith("nfcapd.2"))


NFDUMP_CSV = ("ts", "te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "ipkt", "ibyt", "opkt", "obyt")


def nfdump_flows(directory: Path) -> list[dict]:
    """Flows as nfdump decodes them (times in UTC), one dict per record."""
    output = subprocess.run(["nfdump", "-R", str(directory), "-o", "csv", "-q"], check=True, capture_output=True,
                            text=True, env={**os.environ, "TZ": "UTC"}, timeout=60).stdout
    return [dict(zip(NFDUMP_CSV, line.split(","))) for line in output.splitlines() if line.count(",") > 10]


def reference(datagrams: list[bytes], workdir: Path) -> list[dict]:
    """What nfcapd + nfdump decode from exactly these datagrams."""
    with Nfcapd(workdir / "nfcapd") as nfcapd:
        send(datagrams, nfcapd.port)
        time.sleep(0.5)
    return nfdump_flows(nfcapd.directory)


def nfreplay(nfcapd_dir: Path, port: int, version: int = 9) -> None:
    for path in sorted(nfcapd_dir.iterdir()):
        if path.name.startswith("nfcapd.2"):
            subprocess.run(["nfreplay", "-r", str(path), "-H", "127.0.0.1", "-p", str(port), "-v", str(version)],
                           check=True, capture_output=True, timeout=60)
