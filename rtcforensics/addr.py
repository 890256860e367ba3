"""Address facts for privacy checks: scope, IPv4 embedded in IPv6, EUI-64 interface ids, mDNS names.

Scopes: ``loopback``, ``private`` (RFC 1918), ``cgnat`` (RFC 6598 100.64/10), ``link_local``
(169.254/16, fe80::/10), ``ula`` (fc00::/7), ``unspecified``, ``multicast``, ``mdns`` (a ``.local``
name, RFC 8828 obfuscation), ``public`` (everything else — including the documentation ranges
192.0.2/24, 198.51.100/24, 203.0.113/24 and 2001:db8::/32, which test networks use to stand for the
Internet; ``ipaddress.is_private`` is therefore *not* the test), and ``invalid``.
IPv6 addresses that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, 6to4 ``2002:AABB:CCDD::/48``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``) are
normalised to that IPv4 address first, so ``::ffff:10.0.0.1`` is private like ``10.0.0.1``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SCOPES = (
    "loopback",
    "private",
    "cgnat",
    "link_local",
    "ula",
    "unspecified",
    "multicast",
    "mdns",
    "public",
    "invalid",
)
NOT_PUBLIC = frozenset({"loopback", "private", "cgnat", "link_local", "ula"})

_PRIVATE4 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_LL4 = ipaddress.ip_network("169.254.0.0/16")
_LOOP4 = ipaddress.ip_network("127.0.0.0/8")
_THIS4 = ipaddress.ip_network("0.0.0.0/8")
_MC4 = ipaddress.ip_network("224.0.0.0/4")
_LL6 = ipaddress.ip_network("fe80::/10")
_ULA = ipaddress.ip_network("fc00::/7")
_MC6 = ipaddress.ip_network("ff00::/8")
_6TO4 = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


@dataclass(frozen=True)
class AddrInfo:
    """What one address reveals. ``ip`` is the normalised address (IPv4 when one was embedded)."""

    text: str
    ip: str | None
    family: int | None  # 4 or 6 (of the normalised address)
    scope: str
    embedded: str | None  # "ipv4_mapped" | "ipv4_compatible" | "6to4" | "nat64" | None
    eui64: bool
    mac: str | None
    mdns: bool


def is_mdns(name: str) -> bool:
    """An mDNS hostname (RFC 8828 host candidates: ``<uuid>.local``)."""
    n = name.strip().rstrip(".").lower()
    return n.endswith(".local") and len(n) > len(".local")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    t = text.strip().strip("[]")
    if "%" in t:  # zone id (fe80::1%eth0)
        t = t.split("%", 1)[0]
    try:
        return ipaddress.ip_address(t)
    except ValueError:
        return None


def embedded_ipv4(a: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and how (see module docstring)."""
    if a.ipv4_mapped is not None:
        return a.ipv4_mapped, "ipv4_mapped"
    packed = a.packed
    if packed[:12] == b"\x00" * 12 and int.from_bytes(packed[12:], "big") > 1:
        return ipaddress.IPv4Address(packed[12:]), "ipv4_compatible"  # deprecated ::a.b.c.d (not :: or ::1)
    if a in _6TO4:
        return ipaddress.IPv4Address(packed[2:6]), "6to4"
    if a in _NAT64 or a in _NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[12:]), "nat64"
    return None


def eui64_mac(a: ipaddress.IPv6Address) -> str | None:
    """The MAC address an EUI-64 interface id (``xx:xx:xx:ff:fe:xx:xx:xx``) reveals (RFC 4291 App. A)."""
    iid = a.packed[8:]
    if iid[3:5] != b"\xff\xfe":
        return None
    mac = bytes([iid[0] ^ 0x02]) + iid[1:3] + iid[5:8]
    return ":".join(f"{b:02x}" for b in mac)


def _scope4(a: ipaddress.IPv4Address) -> str:
    if a in _LOOP4:
        return "loopback"
    if any(a in n for n in _PRIVATE4):
        return "private"
    if a in _CGNAT:
        return "cgnat"
    if a in _LL4:
        return "link_local"
    if a in _THIS4:
        return "unspecified"
    if a in _MC4:
        return "multicast"
    return "public"


def _scope6(a: ipaddress.IPv6Address) -> str:
    if a == ipaddress.IPv6Address("::1"):
        return "loopback"
    if a == ipaddress.IPv6Address("::"):
        return "unspecified"
    if a in _LL6:
        return "link_local"
    if a in _ULA:
        return "ula"
    if a in _MC6:
        return "multicast"
    return "public"


@lru_cache(maxsize=1 << 16)  # frames repeat a few addresses over many rows; AddrInfo is immutable
def classify(text: str) -> AddrInfo:
    """Everything :mod:`rtcforensics.addr` knows about one address string (IP or mDNS name)."""
    if is_mdns(text):
        return AddrInfo(text, None, None, "mdns", None, False, None, True)
    a = parse_ip(text)
    if a is None:
        return AddrInfo(text, None, None, "invalid", None, False, None, False)
    if isinstance(a, ipaddress.IPv4Address):
        return AddrInfo(text, str(a), 4, _scope4(a), None, False, None, False)
    emb = embedded_ipv4(a)
    if emb is not None:
        v4, how = emb
        return AddrInfo(text, str(v4), 4, _scope4(v4), how, False, None, False)
    mac = eui64_mac(a)
    return AddrInfo(text, str(a), 6, _scope6(a), None, mac is not None, mac, False)


def scope(text: str) -> str:
    return classify(text).scope


def normalise(text: str) -> str | None:
    """Canonical text of the address (embedded IPv4 extracted); None when not an IP address."""
    return classify(text).ip


def endpoint(ip: object, port: object = None) -> str | None:
    """The project's endpoint notation: ``ip:port``, IPv6 in brackets; ``ip`` alone (bracketed for IPv6)
    when there is no port; None when there is no address. NA-aware (frames hold pandas NA)."""
    if ip is None or pd.isna(ip):
        return None
    text = str(ip)
    host = f"[{text}]" if ":" in text else text
    if port is None or pd.isna(port):
        return host
    return f"{host}:{int(port)}"  # type: ignore[call-overload]


def endpoint_array(ips: Any, ports: Any) -> pd.arrays.ArrowStringArray:
    """:func:`endpoint` of every (address, port) pair, computed in Arrow without a Python object per row
    (a million flows): ``ips`` a string array or Series, ``ports`` a nullable integer array or Series."""
    text = pa.large_string()
    ip = pa.array(ips, type=text, from_pandas=True)
    port = pc.cast(pa.array(ports, from_pandas=True), text)
    left, right, sep, none = (pa.scalar(c, text) for c in ("[", "]", ":", ""))
    v6 = pc.match_substring(ip, ":")
    host = (
        pc.if_else(v6, pc.binary_join_element_wise(left, ip, right, none), ip) if pc.any(v6).as_py() else ip
    )
    out = pc.binary_join_element_wise(host, port, sep)  # NA when either is
    if port.null_count:  # a port missing: the address alone
        out = pc.coalesce(out, host)
    return pd.arrays.ArrowStringArray(out)


def split_endpoint(text: str) -> tuple[str, int | None]:
    """Inverse of :func:`endpoint`: ``("2001:db8::1", 5000)`` from ``"[2001:db8::1]:5000"``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and host and ":" not in host and port.isdigit():
        return host, int(port)
    return text, None
