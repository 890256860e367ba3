"""Cross-capture checks (family ``CASE``) and the fleet report of a case.

These checks answer what no single capture can: they run over a case (DuckDB over every capture's frames),
not over one ``Capture``. They are registered with the check registry's public API —
``@check(..., scope="case")`` puts them in ``registry.CASE_REGISTRY`` (:data:`CASE_CHECKS` here), apart from
the per-capture catalogue, with the same ``Check`` record, docstring sections and parameters — and their
``Hit`` evidence becomes the same ``Finding`` record (``registry.make_finding`` / ``registry.merge``).
``run_case_checks(case)`` → findings and coverage; ``fleet_report(case)`` → the fleet document (per-capture
results from the store plus the case findings), rendered as JSON or a terminal table here, as HTML or SARIF
by :mod:`.fleetout`.

Addresses of TURN infrastructure (servers answering an Allocate, relayed transport addresses) are known
case-wide; a DTLS handshake relayed through TURN shows the relay's address on the wire, so those addresses
never count as "a host that presented a certificate".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from .._version import __version__
from ..checks.analyze import Coverage, Finding, resolve_params
from ..checks.registry import (
    CASE_REGISTRY,
    Check,
    Confidence,
    Hit,
    NotObservable,
    Severity,
    check,
    make_finding,
    merge,
)
from ..values import ep, host, isna
from .query import Case

CASE_CHECKS: dict[str, Check] = CASE_REGISTRY  # the registry's case-scope checks, by ID
FLEET_SCHEMA = "rtcforensics-fleet/1"


class CaseContext:
    """What a case check sees: the case (``sql``), its parameters, and the case-wide relay addresses."""

    def __init__(self, case: Case, check: Check, params: Mapping[str, Any]) -> None:
        self.case = case
        self.check = check
        self.params = dict(params)
        self._relays: set[str] | None = None

    def param(self, name: str) -> Any:
        return self.params[name]

    def sql(self, query: str) -> pd.DataFrame:
        return self.case.sql(query)

    def need(self, table: str, what: str) -> None:
        """Raise NotObservable when ``table`` has no rows in any capture of the case."""
        if (
            table not in self.case.tables
            or int(self.sql(f'select count(*) as n from "{table}"')["n"].iloc[0]) == 0
        ):
            raise NotObservable(f"no {what} in any capture of this case")

    def relays(self) -> set[str]:
        """IP addresses of TURN servers and relayed transport addresses seen anywhere in the case."""
        if self._relays is None:
            out: set[str] = set()
            if "stun" in self.case.tables:
                df = self.sql(
                    "select src, xor_relayed from stun where method = 'Allocate' and cls = 'success'"
                )
                out |= {str(v) for v in df["src"] if not isna(v)}
                out |= {h for h in (host(v) for v in df["xor_relayed"]) if h}
            self._relays = out
        return self._relays


def _names(case: Case) -> dict[str, str]:
    df = case.sql("select capture, name from manifest")
    return {str(c): str(n) for c, n in zip(df["capture"], df["name"])}


def _iso(v: Any) -> str | None:
    return None if isna(v) else pd.Timestamp(v).isoformat()


@check(
    scope="case",
    id="CASE001",
    slug="turn-credential-shared",
    title="One TURN credential used from many client addresses",
    severity=Severity.MEDIUM,
    confidence=Confidence.MEDIUM,
    references=("RFC 8656 §9.2", "draft-uberti-behave-turn-rest-00 §2.2"),
    params={"min_client_addresses": (2, "distinct client addresses that make a username shared")},
)
def turn_credential_shared(ctx: CaseContext) -> Iterable[Hit]:
    """What it flags: one TURN USERNAME (with its realm) in authenticated requests (Allocate, Refresh,
    CreatePermission, ChannelBind) from at least ``min_client_addresses`` different client addresses, in one
    capture or across captures.
    Why it matters: a long-term credential is per user and a TURN REST credential per session; one used from
    many hosts is shared (embedded in a web page or an app) or leaked, so anyone holding it can use the relay.
    Evidence: the username, realm, TURN servers, client addresses and captures, frames of the requests.
    False positives: one user moving between networks (Wi-Fi to mobile) or several devices of one account;
    NAT hides clients behind one address (that makes the count lower, never higher).
    References: RFC 8656 §9.2; draft-uberti-behave-turn-rest-00 §2.2."""
    ctx.need("stun", "STUN/TURN messages")
    df = ctx.sql(
        "select capture, frame, src, dst, username, realm from stun where cls = 'request' and "
        "username is not null and method in ('Allocate', 'Refresh', 'CreatePermission', 'ChannelBind') "
        "order by capture, frame"
    )
    names = _names(ctx.case)
    for (user, realm), g in df.groupby(["username", df["realm"].fillna("")], sort=True):
        clients = sorted(set(g["src"].astype(str)))
        if len(clients) < int(ctx.param("min_client_addresses")):
            continue
        caps = sorted(set(g["capture"].astype(str)))
        servers = sorted(set(g["dst"].astype(str)))
        per_cap = {names.get(c, c): sorted(set(g[g["capture"] == c]["src"].astype(str))) for c in caps}
        yield Hit(
            message=f"TURN username {user!r}{f' (realm {realm})' if realm else ''} used from "
            f"{len(clients)} client addresses ({', '.join(clients)}) in {len(caps)} capture(s)",
            endpoints=clients,
            frames=[int(f) for f in g["frame"]][:50],
            evidence={
                "username": user,
                "realm": realm or None,
                "clients": clients,
                "servers": servers,
                "captures": [names.get(c, c) for c in caps],
                "clients_per_capture": per_cap,
            },
            key=(user, realm),
        )


@check(
    scope="case",
    id="CASE002",
    slug="turn-credential-expired-use",
    title="TURN REST credential used after its expiry",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    references=("draft-uberti-behave-turn-rest-00 §2.2",),
    params={"grace_s": (3600, "seconds after the expiry in the username before a use is flagged")},
)
def turn_credential_expired_use(ctx: CaseContext) -> Iterable[Hit]:
    """What it flags: a TURN REST username (``<expiry>:<user>``) in a request sent more than ``grace_s``
    seconds after the expiry it carries; critical when the server answered with success.
    Why it matters: a REST credential is meant to die with its expiry; a server that still accepts it does
    not check the timestamp, and a client presenting it holds an old (possibly stolen) credential.
    Evidence: username, expiry, first and last late use, the client addresses, the server's answers.
    False positives: a capture whose clock was wrong (compare with the other captures of the case).
    References: draft-uberti-behave-turn-rest-00 §2.2."""
    ctx.need("stun", "STUN/TURN messages")
    grace = pd.Timedelta(seconds=float(ctx.param("grace_s")))
    df = ctx.sql(
        "select q.capture, q.frame, q.ts, q.src, q.dst, q.username, q.rest_expiry, r.cls as answer, "
        "r.frame as answer_frame from stun q left join stun r on r.capture = q.capture and "
        "r.frame = q.response_frame where q.cls = 'request' and q.rest_expiry is not null "
        "order by q.capture, q.frame"
    )
    if not len(df):
        raise NotObservable("no TURN REST credential (expiry:user username) in any capture of this case")
    late = df[pd.to_datetime(df["ts"], utc=True) > pd.to_datetime(df["rest_expiry"], utc=True) + grace]
    names = _names(ctx.case)
    for user, g in late.groupby("username", sort=True):
        accepted = g[g["answer"].astype(str) == "success"]
        clients = sorted(set(g["src"].astype(str)))
        yield Hit(
            message=f"TURN REST username {user!r} (expired {_iso(g['rest_expiry'].iloc[0])}) used "
            f"{len(g)} time(s) after its expiry from {', '.join(clients)}"
            + (f"; the server accepted {len(accepted)}" if len(accepted) else ""),
            endpoints=clients + sorted(set(g["dst"].astype(str))),
            frames=[int(f) for f in g["frame"]][:50] + [int(f) for f in accepted["answer_frame"]][:50],
            evidence={
                "username": user,
                "expiry": _iso(g["rest_expiry"].iloc[0]),
                "first_late_use": _iso(g["ts"].min()),
                "last_late_use": _iso(g["ts"].max()),
                "accepted": len(accepted),
                "captures": sorted({names.get(c, c) for c in g["capture"]}),
            },
            key=(user,),
            severity=Severity.CRITICAL if len(accepted) else None,
        )


@check(
    scope="case",
    id="CASE003",
    slug="dtls-certificate-reused",
    title="One DTLS certificate presented by different hosts or in unrelated calls",
    severity=Severity.HIGH,
    confidence=Confidence.MEDIUM,
    references=("RFC 8827 §6.5", "RFC 8122 §5"),
    params={
        "min_hosts": (2, "distinct (non-relay) addresses presenting one certificate"),
        "min_captures": (2, "captures (calls) in which one certificate appears"),
    },
)
def dtls_certificate_reused(ctx: CaseContext) -> Iterable[Hit]:
    """What it flags: one certificate (SHA-256) presented in DTLS handshakes by at least ``min_hosts``
    different addresses, or in at least ``min_captures`` captures. Addresses of TURN servers and relays are
    not counted as hosts (a relayed handshake shows the relay's address).
    Why it matters: browsers make a fresh certificate per peer connection; one certificate on several hosts
    or in unrelated calls is a cloned identity or a man-in-the-middle box terminating DTLS for many users.
    Evidence: the certificate hash, subject, the addresses that presented it, the captures, handshake frames.
    False positives: non-browser endpoints (SIP gateways, SFUs, media servers) that keep one certificate for
    all calls: then the hosts are that server's addresses.
    References: RFC 8827 §6.5; RFC 8122 §5."""
    ctx.need("dtls", "DTLS handshakes")
    df = ctx.sql(
        "select capture, client as ep, client_cert_sha256 as cert, client_cert_subject as subject, "
        "first_frame from dtls where client_cert_sha256 is not null union all "
        "select capture, server, server_cert_sha256, server_cert_subject, first_frame from dtls "
        "where server_cert_sha256 is not null"
    )
    relays = ctx.relays()
    names = _names(ctx.case)
    for cert, g in df.groupby("cert", sort=True):
        hosts = sorted({h for h in (host(e) for e in g["ep"]) if h and h not in relays})
        caps = sorted(set(g["capture"].astype(str)))
        many_hosts = len(hosts) >= int(ctx.param("min_hosts"))
        many_calls = len(caps) >= int(ctx.param("min_captures"))
        if not (many_hosts or many_calls):
            continue
        why = []
        if many_hosts:
            why.append(f"by {len(hosts)} hosts ({', '.join(hosts)})")
        if many_calls:
            why.append(f"in {len(caps)} captures ({', '.join(names.get(c, c) for c in caps)})")
        subj = next((str(s) for s in g["subject"] if not isna(s)), None)
        yield Hit(
            message=f"DTLS certificate {cert[:16]}… presented {' and '.join(why)}",
            endpoints=hosts,
            frames=[int(f) for f in g["first_frame"].dropna()],
            evidence={
                "cert_sha256": cert,
                "subject": subj,
                "hosts": hosts,
                "captures": [names.get(c, c) for c in caps],
            },
            key=(cert,),
            confidence=Confidence.HIGH if many_hosts else None,
        )


PRIVATE_SCOPES = ("private", "loopback", "link_local", "ula", "cgnat")


@check(
    scope="case",
    id="CASE004",
    slug="private-address-media-elsewhere",
    title="An address that is a private candidate in one capture is a media source in another",
    severity=Severity.LOW,
    confidence=Confidence.LOW,
    references=("RFC 8828 §5.2", "RFC 8445 §5.1.1.1"),
)
def private_address_media_elsewhere(ctx: CaseContext) -> Iterable[Hit]:
    """What it flags: an IP address revealed as a private-scope ICE candidate (RFC 1918, CGNAT, loopback,
    link-local, ULA) in one capture and seen sending RTP in another capture of the case.
    Why it matters: the internal address leaked in one call is reachable (or in use) as a media source in
    another: the leak maps a host inside the network, or that host sends media where it should not.
    Evidence: the address, the captures where it is a candidate and where it sends media, stream frames.
    False positives: private ranges are reused by unrelated networks; the same address in two captures may
    be two different hosts (hence low confidence).
    References: RFC 8828 §5.2; RFC 8445 §5.1.1.1."""
    ctx.need("candidates", "ICE candidates")
    ctx.need("rtp_streams", "RTP streams")
    scopes = ", ".join(f"'{s}'" for s in PRIVATE_SCOPES)
    cand = ctx.sql(
        f"select distinct capture, ip from candidates where ip is not null and scope in ({scopes})"
    )
    media = ctx.sql("select capture, src, first_frame from rtp_streams where src is not null")
    media["ip"] = [host(s) for s in media["src"]]
    names = _names(ctx.case)
    for ip, g in cand.groupby("ip", sort=True):
        as_cand = set(g["capture"].astype(str))
        m = media[(media["ip"] == ip) & ~media["capture"].astype(str).isin(as_cand)]
        if not len(m):
            continue
        elsewhere = sorted(set(m["capture"].astype(str)))
        yield Hit(
            message=f"{ip} is a private candidate in {', '.join(names.get(c, c) for c in sorted(as_cand))} "
            f"and sends RTP in {', '.join(names.get(c, c) for c in elsewhere)}",
            endpoints=[str(ip)],
            frames=[int(f) for f in m["first_frame"].dropna()],
            evidence={
                "address": ip,
                "candidate_in": [names.get(c, c) for c in sorted(as_cand)],
                "media_in": [names.get(c, c) for c in elsewhere],
            },
            key=(ip,),
        )


# Intermediaries: (role, how the packets establish it, the role's parameter of declared hosts)
ROLES = {
    "turn_server": ("TURN server", "answered an Allocate request with success (stun)"),
    "media_server": ("SFU / media server", "hub of the call's media sessions (sessions.media_server)"),
    "signalling_server": (
        "signalling server",
        "server end of HTTP, WebSocket or SIP signalling (signalling; opaque TLS not counted)",
    ),
}
ROLE_PARAM = {
    "turn_server": "turn_servers",
    "media_server": "media_servers",
    "signalling_server": "signalling_servers",
}


def parse_networks(value: Any, what: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses and CIDRs (``"203.0.113.7, 198.51.100.0/24"`` or a list) → networks; ``""`` → []."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value or ""))
    out = []
    for it in items:
        text = str(it).strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text.strip("[]"), strict=False))
        except ValueError:
            raise ValueError(f"{what}: {text!r} is not an IP address or CIDR") from None
    return out


def _in(addr: str, nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in nets)


def intermediaries(ctx: CaseContext) -> pd.DataFrame:
    """One row per (capture, role, host): the relays, SFUs and signalling servers each capture shows, with
    the endpoints, clients and frames that establish the role (columns: capture, role, host, endpoints,
    clients, frames, how)."""
    rows: list[dict[str, Any]] = []
    tables = set(ctx.case.tables)
    if "stun" in tables:
        df = ctx.sql(
            "select capture, frame, src, sport, dst from stun where method = 'Allocate' and cls = 'success' "
            "and src is not null order by capture, frame"
        )
        for (cap, ip), g in df.groupby(["capture", "src"], sort=True):
            rows.append(
                {
                    "capture": str(cap),
                    "role": "turn_server",
                    "host": str(ip),
                    "endpoints": sorted({ep(ip, p) for p in g["sport"]}),
                    "clients": sorted(set(g["dst"].astype(str))),
                    "frames": [int(f) for f in g["frame"]],
                    "how": f"Allocate success response(s) from it, frame(s) {_few(g['frame'])}",
                }
            )
    if "sessions" in tables:
        df = ctx.sql(
            "select capture, session_id, media_server, selected_pair, dtls_first_frame, answer_frame "
            "from sessions where media_server is not null order by capture, session_id"
        )
        for (cap, ip), g in df.groupby(["capture", "media_server"], sort=True):
            ends = {e for p in g["selected_pair"].dropna() for e in str(p).split(" <-> ") if e}
            frames = [int(f) for f in pd.concat([g["answer_frame"], g["dtls_first_frame"]]).dropna()]
            peers = sorted({h for h in (host(e) for e in ends) if h and h != str(ip)})
            rows.append(
                {
                    "capture": str(cap),
                    "role": "media_server",
                    "host": str(ip),
                    "endpoints": sorted(e for e in ends if host(e) == str(ip)),
                    "clients": peers,
                    "frames": sorted(set(frames)),
                    "how": f"hub of {len(g)} media session(s) with {len(peers)} hosts that have sessions "
                    "with it and no one else (selected ICE pairs), a server by its own descriptions",
                }
            )
    if "signalling" in tables:
        df = ctx.sql(
            "select capture, frame, server_endpoint, client_endpoint from signalling "
            "where server_endpoint is not null and transport <> 'tls' order by capture, frame"
        )
        df["host"] = [host(e) for e in df["server_endpoint"]]
        for (cap, ip), g in df.dropna(subset=["host"]).groupby(["capture", "host"], sort=True):
            rows.append(
                {
                    "capture": str(cap),
                    "role": "signalling_server",
                    "host": str(ip),
                    "endpoints": sorted(set(g["server_endpoint"].astype(str))),
                    "clients": sorted({h for h in (host(e) for e in g["client_endpoint"]) if h}),
                    "frames": [int(f) for f in g["frame"]],
                    "how": f"server end of {len(g)} signalling message(s), first frame {int(g['frame'].min())}",
                }
            )
    cols = ["capture", "role", "host", "endpoints", "clients", "frames", "how"]
    return pd.DataFrame(rows, columns=cols)


def _few(frames: Iterable[Any], n: int = 5) -> str:
    fs = [str(int(f)) for f in frames]
    return ", ".join(fs[:n]) + (f" … ({len(fs)})" if len(fs) > n else "")


@check(
    scope="case",
    id="CASE005",
    slug="intermediary-unexpected",
    title="A relay, SFU or signalling server seen in calls it should not be in",
    severity=Severity.MEDIUM,
    confidence=Confidence.LOW,
    references=("RFC 8656 §3", "RFC 8827 §6.4", "RFC 7478 §3.2"),
    params={
        "turn_servers": ("", "expected TURN servers: addresses/CIDRs, comma-separated ('' = not declared)"),
        "media_servers": ("", "expected SFUs / media servers: addresses/CIDRs ('' = not declared)"),
        "signalling_servers": ("", "expected signalling servers: addresses/CIDRs ('' = not declared)"),
        "min_captures": (4, "captures showing a role before the undeclared outlier rule applies"),
        "max_outlier_share": (0.25, "share of those captures at or below which a host is an outlier"),
    },
)
def intermediary_unexpected(ctx: CaseContext) -> Iterable[Hit]:
    """What it flags: an intermediary of a call — a TURN server (it answered an Allocate with success), an
    SFU / media server (the hub of the call's media sessions) or a signalling server (the server end of the
    signalling connection) — that should not be in the calls where it appears. With the role's expected hosts
    declared (``turn_servers``, ``media_servers``, ``signalling_servers``: addresses or CIDRs), every host of
    that role outside them (high confidence). Undeclared, a host that plays the role in at most
    ``max_outlier_share`` of the captures showing the role (at least ``min_captures``) while one other host
    plays it in most of them (low confidence). One capture is taken as one call.
    Why it matters: relays, SFUs and signalling servers see every call's metadata, and an SFU or a signalling
    server can rewrite descriptions (fingerprints) and terminate media: one that is not the operator's is a
    rogue or hijacked configuration (injected ICE servers, a poisoned resolver, a man in the middle) or a
    leak of calls to a third-party service.
    Evidence: the role, the host and its endpoints, how the packets establish the role, the captures with
    their frames and the clients served, and the expected list or the hosts most captures use.
    False positives: undeclared, a legitimate second server (another region, a failover, a load balancer's
    other address) or a case mixing unrelated deployments; declared, an incomplete list.
    References: RFC 8656 §3; RFC 8827 §6.4; RFC 7478 §3.2."""
    found = intermediaries(ctx)
    if not len(found):
        raise NotObservable("no TURN allocation, media-server session or signalling server in this case")
    names = _names(ctx.case)
    min_caps = int(ctx.param("min_captures"))
    max_share = float(ctx.param("max_outlier_share"))
    for role, rg in found.groupby("role", sort=True):
        label, _ = ROLES[str(role)]
        pname = ROLE_PARAM[str(role)]
        expected = parse_networks(ctx.param(pname), f"CASE005.{pname}")
        per_host = {str(h): g for h, g in rg.groupby("host", sort=True)}
        n_caps = rg["capture"].nunique()
        majority: tuple[str, int] | None = None
        if expected:
            suspects = [h for h in per_host if not _in(h, expected)]
        else:
            counts = {h: g["capture"].nunique() for h, g in per_host.items()}
            top = max(counts, key=lambda h: (counts[h], h))
            if n_caps < min_caps or counts[top] <= n_caps / 2:
                continue
            majority = (top, counts[top])
            suspects = [h for h, n in counts.items() if h != top and n / n_caps <= max_share]
        for h in suspects:
            g = per_host[h]
            caps = [names.get(str(c), str(c)) for c in g["capture"]]
            if majority is None:
                why = f"not among the expected {label}s ({ctx.param(pname)})"
            else:
                why = (
                    f"{label} in {len(caps)} of the {n_caps} captures that show one; "
                    f"{majority[0]} is the {label} in {majority[1]} of them"
                )
            yield Hit(
                message=f"{label} {h} in {', '.join(caps)}: {why}",
                endpoints=[h],
                frames=list(g["frames"].iloc[0]) if len(g) == 1 else (),
                evidence={
                    "role": str(role),
                    "host": h,
                    "established_by": ROLES[str(role)][1],
                    "captures": caps,
                    "seen_in": [
                        {
                            "capture": names.get(str(r.capture), str(r.capture)),
                            "endpoints": list(r.endpoints),
                            "clients": list(r.clients),
                            "frames": list(r.frames)[:50],
                            "how": r.how,
                        }
                        for r in g.itertuples()
                    ],
                    "expected": [str(n) for n in expected] or None,
                    "usual": None if majority is None else {"host": majority[0], "captures": majority[1]},
                    "captures_with_role": n_caps,
                },
                key=(str(role), h),
                confidence=Confidence.HIGH if expected else None,
                severity=Severity.HIGH if expected else None,
            )


def run_case_checks(
    case: Case, params: Mapping[str, Any] | None = None, strict: bool = False
) -> tuple[list[Finding], list[Coverage]]:
    """Every CASE check over ``case``: findings (most severe first) and coverage, as ``analyze`` makes them."""
    try:
        per_check = resolve_params(CASE_CHECKS, params)
        for cid, chk in CASE_CHECKS.items():
            if chk.fn is intermediary_unexpected:  # declared hosts: a typo is the user's error, not a failure
                for pname in ROLE_PARAM.values():
                    parse_networks(per_check[cid][pname], f"{cid}.{pname}")
    except ValueError as e:
        from ..errors import RtcForensicsError

        raise RtcForensicsError(str(e)) from None
    findings: list[Finding] = []
    coverage: list[Coverage] = []
    for cid, chk in CASE_CHECKS.items():
        ctx = CaseContext(case, chk, per_check[cid])
        try:
            hits = list(chk.fn(ctx) or ())
        except NotObservable as e:
            coverage.append(Coverage(cid, chk.slug, "not observable", str(e)))
            continue
        except Exception as e:
            if strict:
                raise
            coverage.append(Coverage(cid, chk.slug, "failed", f"{type(e).__name__}: {e}"))
            continue
        got = merge(make_finding(chk, h) for h in hits)
        findings += got
        coverage.append(
            Coverage(
                cid,
                chk.slug,
                "found" if got else "clean",
                f"{len(got)} finding(s)" if got else "examined the case: nothing matched",
                len(got),
            )
        )
    findings.sort(key=lambda f: (-Severity.parse(f.severity), f.id, f.identity))
    return findings, coverage


def fleet_report(
    case: Case, params: Mapping[str, Any] | None = None, show_secrets: bool = False
) -> dict[str, Any]:
    """The fleet document: the case, its captures with their finding counts, per-slug totals, and the
    cross-capture findings. Redacted unless ``show_secrets``."""
    from ..report.safe import redact
    from ..values import plain

    man = case.sql("select * from manifest order by name, path")
    counts = case.sql("select capture, severity, count(*) as n from findings group by 1, 2")
    per: dict[str, dict[str, int]] = {}
    for c, s, n in zip(counts["capture"], counts["severity"], counts["n"]):
        per.setdefault(str(c), {str(x): 0 for x in Severity})[str(s)] = int(n)
    captures = []
    for r in man.to_dict("records"):
        captures.append(
            {
                k: plain(r.get(k))
                for k in (
                    "capture",
                    "name",
                    "path",
                    "sha256",
                    "size",
                    "status",
                    "error",
                    "packets",
                    "first_ts",
                    "last_ts",
                    "truncated",
                    "checks_failed",
                    "tool_version",
                    "streamed",
                    "incomplete",
                )
            }
            | {"findings": per.get(str(r["capture"]), {str(x): 0 for x in Severity})}
        )
    by_slug = case.sql(
        "select slug, severity, count(*) as findings, count(distinct capture) as captures "
        "from findings group by 1, 2 order by 1, 2"
    )
    ok = [c for c in captures if c["status"] == "ok"]
    findings, coverage = run_case_checks(case, params)
    totals = {str(s): 0 for s in Severity}
    for c in ok:
        for s, n in c["findings"].items():
            totals[s] += n
    incomplete = [
        f"capture {c['name']} failed to ingest: {c['error']}" for c in captures if c["status"] != "ok"
    ]
    incomplete += [
        f"capture {c['name']}: {c['checks_failed']} check(s) failed" for c in ok if c.get("checks_failed")
    ]
    incomplete += [f"capture {c['name']}: {c['incomplete']}" for c in ok if c.get("incomplete")]
    incomplete += [
        f"case check {c.id} ({c.slug}) failed: {c.reason}" for c in coverage if c.status == "failed"
    ]
    firsts = [c["first_ts"] for c in ok if c.get("first_ts")]
    lasts = [c["last_ts"] for c in ok if c.get("last_ts")]
    doc = {
        "schema": FLEET_SCHEMA,
        "tool": {"name": "rtcforensics", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "case": {
            "path": str(case.root),
            "captures": len(captures),
            "ok": len(ok),
            "failed": len(captures) - len(ok),
            "packets": sum(int(c["packets"] or 0) for c in ok),
            "period": {"first": min(firsts) if firsts else None, "last": max(lasts) if lasts else None},
        },
        "summary": {
            "findings": totals,
            "by_slug": [{k: plain(v) for k, v in r.items()} for r in by_slug.to_dict("records")],
            "case_findings": {str(s): sum(f.severity == str(s) for f in findings) for s in Severity},
        },
        "captures": captures,
        "case_findings": [f.to_dict() for f in findings],
        "case_coverage": [c.to_dict() for c in coverage],
        "run": {"complete": not incomplete, "incomplete_reasons": incomplete},
    }
    out = redact(doc, show_secrets)
    out["secrets_shown"] = bool(show_secrets)
    return dict(out)


def render_json(doc: Mapping[str, Any]) -> str:
    from ..report.safe import json_inert

    return json_inert(dict(doc), sort_keys=False) + "\n"


def render_table(doc: Mapping[str, Any]) -> str:
    from ..report.safe import for_terminal_line as t

    case = doc["case"]
    lines = [
        f"rtcforensics {doc['tool']['version']} — case {t(case['path'])}",
        f"captures  {case['captures']} ({case['ok']} ok, {case['failed']} failed), {case['packets']} packets, "
        f"{t(case['period']['first'])} → {t(case['period']['last'])}",
    ]
    for r in doc["run"]["incomplete_reasons"]:
        lines.append(f"INCOMPLETE: {t(r)}")
    s = doc["summary"]["findings"]
    lines.append("per-capture findings  " + ", ".join(f"{s[k]} {k}" for k in reversed(list(s))))
    for r in doc["summary"]["by_slug"]:
        lines.append(
            f"  {t(r['slug']):36s} {t(r['severity']):9s} {r['findings']:>5} in {r['captures']} capture(s)"
        )
    lines.append(f"cross-capture findings  {len(doc['case_findings'])}")
    for f in doc["case_findings"]:
        lines.append(
            f"  {t(f['severity']).upper():8s} {t(f['id'])} {t(f['slug'])}  (confidence {t(f['confidence'])})"
        )
        lines.append(f"           {t(f['message'])[:160]}")
    for c in doc["case_coverage"]:
        if c["status"] in ("not observable", "failed"):
            lines.append(f"  {t(c['id'])} {t(c['slug'])}: {t(c['status'])} — {t(c['reason'])}")
    failed = [c for c in doc["captures"] if c["status"] != "ok"]
    for c in failed:
        lines.append(f"FAILED {t(c['name'])}: {t(c['error'])}")
    return "\n".join(lines) + "\n"
