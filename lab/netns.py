"""Test hosts in network namespaces, joined by a bridge in a "switch" namespace, tapped by dumpcap.

Only this lab's own namespaces are touched (all named ``rtcf-*``). Addresses are documentation ranges
(standing for Internet hosts) or private ranges (standing for LANs); nothing here routes to the host's
own network or anywhere else.

    with Lab("clean_call") as lab:
        a = lab.host("alice", "192.0.2.10/24", v6="2001:db8::a/64")
        b = lab.host("bob", "192.0.2.20/24")
        with lab.capture(out_path):
            proc = a.popen(["python3", "peer.py"])  # runs inside alice's namespace
            ...
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "rtcf"


def sh(
    *args: str, check: bool = True, ns: str | None = None, quiet: bool = False
) -> subprocess.CompletedProcess:
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    return subprocess.run(cmd, check=check, text=True, capture_output=quiet)


def cleanup_leftovers(prefix: str = PREFIX + "-") -> None:
    """Remove namespaces left by an interrupted run (ours only; ``prefix`` narrows to one scenario's)."""
    out = subprocess.run(["ip", "netns", "list"], text=True, capture_output=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "pids", name], capture_output=True)
            pids = subprocess.run(
                ["ip", "netns", "pids", name], text=True, capture_output=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class Host:
    lab: Lab
    name: str
    ns: str
    ipv4: str | None
    ipv6: list[str] = field(default_factory=list)
    mac: str = ""

    @property
    def ip(self) -> str:
        assert self.ipv4, f"{self.name} has no IPv4 address"
        return self.ipv4.split("/")[0]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(*args, ns=self.ns, check=check, quiet=True)

    def popen(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it; closed with the lab)
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.lab._procs.append(p)
        return p

    def wait_listening(
        self, port: int, *, proto: str = "tcp", timeout: float = 20, proc: subprocess.Popen | None = None
    ) -> None:
        """Return once a socket of this host listens on ``port`` (``proto`` "tcp" or "udp"); raise after
        ``timeout`` seconds, or as soon as ``proc`` (the server being waited for) has exited."""
        deadline = time.monotonic() + timeout
        flag = "-ltn" if proto == "tcp" else "-lun"
        while time.monotonic() < deadline:
            if f":{port}" in self.run("ss", flag, f"sport = :{port}", check=False).stdout:
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server for {self.name} {proto}/{port} exited ({proc.returncode})")
            time.sleep(0.1)
        raise RuntimeError(f"nothing listening on {self.name} {proto}/{port}")

    def add_address(self, cidr: str) -> None:
        fam = "-6" if ":" in cidr else "-4"
        extra = ["nodad"] if fam == "-6" else []
        sh("ip", fam, "addr", "add", cidr, "dev", "eth0", *extra, ns=self.ns)
        (self.ipv6 if fam == "-6" else []).append(cidr.split("/")[0])


class Lab:
    """One scenario's network: a switch namespace with a bridge, and hosts."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        tag = "".join(ch for ch in scenario if ch.isalnum())[:6]
        self.switch = f"{PREFIX}-{tag}-sw"
        self.tag = tag
        self.hosts: dict[str, Host] = {}
        self._procs: list[subprocess.Popen] = []
        self._n = 0

    def __enter__(self) -> Lab:
        # only this scenario's leftovers: other scenarios may be running in parallel
        cleanup_leftovers(f"{PREFIX}-{self.tag}-")
        sh("ip", "netns", "add", self.switch)
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.switch)
        # no STP, no forwarding delay: frames flow at once
        sh(
            "ip",
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            ns=self.switch,
        )
        sh("ip", "link", "set", "br0", "up", ns=self.switch)
        sh("ip", "link", "set", "lo", "up", ns=self.switch)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for h in self.hosts.values():
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)

    def stop_all(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 5
        for p in self._procs:
            while p.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._procs.clear()

    def host(
        self,
        name: str,
        ipv4: str | None = None,
        *,
        v6: Sequence[str] = (),
        mac: str | None = None,
        gateway: str | None = None,
    ) -> Host:
        """Create host ``name`` with ``ipv4`` (CIDR) and optional IPv6 addresses (CIDR) on eth0."""
        self._n += 1
        ns = f"{PREFIX}-{self.tag}-{name}"[: 15 + len(PREFIX)]
        mac = mac or f"02:00:00:00:{self._n:02x}:01"
        sh("ip", "netns", "add", ns)
        peer = f"v{self._n}"
        sh(
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            ns,
            "address",
            mac,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            self.switch,
        )
        sh("ip", "link", "set", peer, "master", "br0", ns=self.switch)
        sh("ip", "link", "set", peer, "up", ns=self.switch)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        for dev, where in (("eth0", ns), (peer, self.switch)):
            self._offload_off(dev, where)
        h = Host(self, name, ns, ipv4, [], mac)
        if ipv4:
            sh("ip", "addr", "add", ipv4, "dev", "eth0", ns=ns)
        for a in v6:
            h.add_address(a)
        if gateway:
            sh("ip", "route", "add", "default", "via", gateway, ns=ns)
        self.hosts[name] = h
        return h

    def _offload_off(self, dev: str, ns: str) -> None:
        """Checksum/segmentation offload off, so frames look as they would on a wire."""
        off = [x for feature in ("tx", "sg", "tso", "gso") for x in (feature, "off")]
        sh("ethtool", "-K", dev, *off, ns=ns, check=False, quiet=True)

    def router(self, host: Host) -> None:
        """Make ``host`` a home NAT router: it forwards, masquerades whatever leaves by eth0 (its public side)
        and drops unsolicited UDP arriving there (as home routers do; an unconfirmed conntrack entry then
        cannot steal the port a later outbound mapping would keep)."""
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns=host.ns, quiet=True)
        sh("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE", ns=host.ns)
        drop = "-A INPUT -i eth0 -p udp -m conntrack --ctstate NEW -j DROP"
        sh("iptables", *drop.split(), ns=host.ns)

    def lan_host(
        self, name: str, ipv4: str, router: Host, router_ipv4: str, *, mac: str | None = None
    ) -> Host:
        """Host ``name`` (``ipv4`` CIDR) on a private link of its own behind ``router`` (which gets
        ``router_ipv4`` on its side of the link, named lan0, and is the host's default gateway). The link is
        a veth pair outside the bridge: nothing on it reaches the tap except what the router forwards."""
        self._n += 1
        ns = f"{PREFIX}-{self.tag}-{name}"[: 15 + len(PREFIX)]
        mac = mac or f"02:00:00:00:{self._n:02x}:01"
        lan = "lan0"  # one private link per router
        sh("ip", "netns", "add", ns)
        veth = f"add eth0 netns {ns} address {mac} type veth peer name {lan} netns {router.ns}"
        sh("ip", "link", *veth.split())
        for dev, where in (("eth0", ns), (lan, router.ns), ("lo", ns)):
            sh("ip", "link", "set", dev, "up", ns=where)
            self._offload_off(dev, where)
        sh("ip", "addr", "add", ipv4, "dev", "eth0", ns=ns)
        sh("ip", "addr", "add", router_ipv4, "dev", lan, ns=router.ns)
        sh("ip", "route", "add", "default", "via", router_ipv4.split("/")[0], ns=ns)
        h = Host(self, name, ns, ipv4, [], mac)
        self.hosts[name] = h
        return h

    @contextlib.contextmanager
    def capture(self, out: Path, *, settle: float = 0.5) -> Iterator[None]:
        """Capture every frame on the bridge into ``out`` (pcapng) while the block runs."""
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.unlink()
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.switch, "dumpcap", "-q", "-i", "br0", "-w", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.time() + 10
        while not out.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(settle)
        try:
            yield
        finally:
            time.sleep(settle)
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if out.exists():
                out.chmod(0o644)  # dumpcap writes 0600; a sample capture is for everyone to read


def quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
