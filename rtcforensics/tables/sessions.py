"""The `sessions` frame: the call model, one row per ICE session (ufrag pair).

Joins, each recorded as observed or not:

1. offer ↔ answer: descriptions deduplicated by (role, session id, ufrag) — the same description relayed
   over two signalling legs is one side with several copies — and paired in time order;
2. ufrags ↔ STUN: ICE connectivity checks carry USERNAME ``"<receiver ufrag>:<sender ufrag>"`` (RFC 8445
   §7.2.2); every Binding request whose USERNAME joins the two ufrags, and the responses with the same
   transaction id, put their flow (5-tuple; the client↔TURN flow when relayed) into the session;
3. nominated pair: a request with USE-CANDIDATE answered with success (RFC 8445 §8.1.1); the selected
   flow is the nominated one, else the one carrying DTLS, else the one carrying most media;
4. DTLS handshake on the session's flows (``dtls``) and its certificates ↔ the a=fingerprint of the side
   that played that DTLS role (a=setup, RFC 5763 §5), checked for every copy of each description;
5. RTP/SRTP streams on those flows (``rtp_streams``);
6. TURN: Allocate success (XOR-RELAYED) on a session flow or matching a relay candidate → permissions,
   channels and peers (XOR-PEER) on that allocation's flow.

STUN ufrag pairs that no description explains are sessions too (``kind`` = ``stun_only``); TURN allocations
that no session used are ``turn_only`` rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..addr import normalise
from ..capture import Capture, register_frame
from ..schema import frame_schema
from ..values import ep, host, isna
from .sdp import Desc, descriptions

OBSERVABLES = (
    "offer",
    "answer",
    "media_endpoints",
    "stun_checks",
    "stun_success",
    "nominated_pair",
    "dtls",
    "dtls_certificates",
    "srtp_streams",
    "turn_allocation",
)

SESSIONS = frame_schema(
    "sessions",
    "One row per ICE session (ufrag pair): its descriptions, connectivity checks, selected pair, DTLS "
    "handshake and whether its certificates match the signalled fingerprints, media streams and TURN relay. "
    "`observed` / `missing` say which links were seen.",
    [
        ("session_id", "Int64", "session number in this capture"),
        (
            "kind",
            "category:ice,sdp,stun_only,turn_only",
            (
                "ice: from descriptions with ICE; sdp: descriptions without "
                "ICE (plain SIP/SDES media, joined by c=/m= endpoints); stun_only: ufrag pair seen only in STUN; "
                "turn_only: a TURN allocation no session used"
            ),
        ),
        ("offer_ufrag", "string", "ICE ufrag of the offerer (or the first ufrag of a STUN-only pair)"),
        ("answer_ufrag", "string", "ICE ufrag of the answerer"),
        ("offer_sdp", "object", "sdp.sdp_index of every copy of the offer"),
        ("answer_sdp", "object", "sdp.sdp_index of every copy of the answer"),
        ("offer_frame", "Int64", "first frame that carried the offer"),
        ("answer_frame", "Int64", "first frame that carried the answer"),
        ("offer_stack", "string", "implementation that made the offer"),
        ("answer_stack", "string", "implementation that made the answer"),
        (
            "signalling_transport",
            "string",
            "how the descriptions travelled (http, websocket, sip, side file)",
        ),
        ("signalling_tls", "boolean", "every copy travelled inside TLS"),
        ("offer_setup", "string", "a=setup of the offer"),
        ("answer_setup", "string", "a=setup of the answer"),
        ("offer_fingerprints_sha256", "object", "distinct sha-256 fingerprints over the offer's copies"),
        ("answer_fingerprints_sha256", "object", "distinct sha-256 fingerprints over the answer's copies"),
        ("fingerprints", "object", "every (hash function, hex) signalled in this session"),
        ("fingerprint_rewritten", "boolean", "copies of one description carry different fingerprints"),
        ("stun_usernames", "object", "distinct STUN USERNAMEs of the connectivity checks"),
        ("flow_id", "object", "every flow (flows.flow_id) with connectivity checks of this session"),
        ("checks", "Int32", "Binding requests of this session"),
        ("check_successes", "Int32", "Binding success responses of this session"),
        ("nominated_flow_id", "Int64", "flow of the nominated pair (USE-CANDIDATE answered with success)"),
        ("selected_flow_id", "Int64", "flow used: nominated, else the one with DTLS, else with most media"),
        ("selected_pair", "string", "'ip:port <-> ip:port' of the selected flow"),
        ("dtls_flow_id", "Int64", "flow of the DTLS handshake linked to this session"),
        ("dtls_first_frame", "Int64", "dtls.first_frame of that handshake"),
        ("dtls_version", "string", "its negotiated version"),
        ("dtls_client", "string", "its client ip:port"),
        (
            "offerer_dtls_role",
            "category:client,server",
            ("DTLS role of the offerer (from a=setup, else from the handshake endpoints)"),
        ),
        ("client_cert_sha256", "string", "SHA-256 of the DTLS client's certificate"),
        ("server_cert_sha256", "string", "SHA-256 of the DTLS server's certificate"),
        (
            "offer_fingerprint_match",
            "boolean",
            (
                "the offerer's certificate matches the sha-256 fingerprint of every "
                "copy of the offer (NA: not observable)"
            ),
        ),
        (
            "answer_fingerprint_match",
            "boolean",
            "the answerer's certificate matches every copy of the answer",
        ),
        (
            "certs_in_fingerprints",
            "boolean",
            (
                "every certificate of the handshake is among the sha-256 "
                "fingerprints of the session, either side (NA: nothing to compare)"
            ),
        ),
        (
            "fingerprint_status",
            "category:match,mismatch,not_observable",
            (
                "summary of the facts above: mismatch when a *_fingerprint_match is false (or, roles unknown, "
                "certs_in_fingerprints is); the verdict is check DTLS001's"
            ),
        ),
        ("srtp_profile", "string", "SRTP protection profile chosen in that handshake"),
        ("rtp_ssrcs", "object", "SSRCs of the RTP/SRTP streams on the session's flows"),
        ("rtp_packets", "Int64", "packets of those streams"),
        ("sdp_ssrcs_seen", "boolean", "some a=ssrc of the descriptions appear among those streams"),
        ("keying", "object", "keying of those streams (rtp_streams.keying)"),
        ("relay", "boolean", "a TURN allocation carries this session"),
        ("turn_server", "string", "ip:port of the TURN server"),
        ("turn_flow_id", "Int64", "flow between client and TURN server"),
        ("relayed_address", "string", "XOR-RELAYED-ADDRESS of the allocation"),
        ("turn_peers", "object", "peers permitted / bound (XOR-PEER-ADDRESS) on that allocation"),
        ("turn_channels", "object", "channel numbers bound"),
        (
            "media_server",
            "string",
            (
                "host of the media server (SFU, MCU, gateway) the selected pair ends at: the "
                "hub of a star of sessions that also served their signalling or described "
                "itself as a server (ice-lite, server stack). DTLS-SRTP is hop by hop: that "
                "server decrypts, and can read, the media (NA: the peers talk directly)"
            ),
        ),
        ("first_ts", "ts", "first evidence (description or check) of this session"),
        ("observed", "object", "links observed: " + ", ".join(OBSERVABLES)),
        ("missing", "object", "links not observed (same vocabulary)"),
    ],
)


@dataclass
class _Side:
    role: str
    copies: list[Desc] = field(default_factory=list)

    @property
    def first(self) -> Desc:
        return self.copies[0]

    def ufrags(self) -> set[str]:
        return {u for d in self.copies for u in (d.row.get("ice_ufrags") or [])}

    def sha256s(self) -> list[list[str]]:
        return [[h for a, h in (d.row.get("fingerprints") or []) if a == "sha-256"] for d in self.copies]


@dataclass
class _Checks:
    """The connectivity checks of one ufrag pair (Binding requests whose USERNAME joins the two ufrags) as
    totals: a million checks are a few numbers and the list of their flows, not a million rows."""

    username: str  # USERNAME of the first request
    requests: int
    successes: int  # Binding success responses with a request's transaction id, counted per request
    first_ts: int | None  # ns since the epoch
    flows: list[int]  # distinct flows, in order of first request
    usernames: list[str]  # distinct USERNAMEs, in order of first request
    nominated: bool  # a request with USE-CANDIDATE answered with success
    nominated_flow: int | None  # the flow of the first such request


@dataclass
class _Session:
    kind: str
    offer: _Side | None = None
    answer: _Side | None = None
    ufrag_pair: tuple[str | None, str | None] = (None, None)
    flows: dict[int, None] = field(default_factory=dict)  # an ordered set: membership is O(1)
    usernames: list[str] = field(default_factory=list)
    checks: list[_Checks] = field(default_factory=list)  # one per ufrag pair joined to this session
    first_ts: Any = None
    by_media_endpoint: bool = False

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.checks)


def _group_sides(descs: list[Desc]) -> list[_Side]:
    sides: dict[tuple[Any, ...], _Side] = {}
    for d in descs:
        r = d.row
        role = r.get("role") or "unknown"
        key: tuple[Any, ...] = (
            role,
            r.get("session_id"),
            r.get("ice_ufrag"),
            r.get("source_kind") if r.get("source") != "wire" else "wire",
        )
        if r.get("ice_ufrag") is None and r.get("session_id") is None:
            key = (role, d.index)
        sides.setdefault(key, _Side(role)).copies.append(d)
    return list(sides.values())


def _ts(d: Desc) -> Any:
    t = d.row.get("ts")
    return t if t is not None else float("inf")


def _pair(sides: list[_Side], stun_pairs: Iterable[frozenset[str]] = ()) -> list[_Session]:
    """Offer ↔ answer: first by the ufrag pairs the connectivity checks prove, then by the offer a SIP answer
    says it answers (``answers_frame``), then in time order."""
    offers = sorted([s for s in sides if s.role == "offer"], key=lambda s: (_ts(s.first), s.first.index))
    answers = sorted(
        [s for s in sides if s.role in ("answer", "pranswer")], key=lambda s: (_ts(s.first), s.first.index)
    )
    taken: set[int] = set()
    proven: dict[int, int] = {}
    for pair in stun_pairs:
        for oi, o in enumerate(offers):
            if oi in proven or not pair & o.ufrags():
                continue
            for ai, a in enumerate(answers):
                if ai not in taken and pair & a.ufrags() and pair <= (o.ufrags() | a.ufrags()):
                    proven[oi] = ai
                    taken.add(ai)
                    break
    # SIP: the answer's message says which offer it answers (signalling.answers_frame: dialog and CSeq)
    offer_at = {d.row.get("frame"): oi for oi, o in enumerate(offers) for d in o.copies if d.row.get("frame")}
    for ai, a in enumerate(answers):
        if ai in taken:
            continue
        for d in a.copies:
            answered = offer_at.get(_none(d.row.get("answers_frame")))
            if answered is not None and answered not in proven:
                proven[answered] = ai
                taken.add(ai)
                break
    out: list[_Session] = []
    for oi, o in enumerate(offers):
        match = proven.get(oi)
        for i, a in enumerate(answers):
            if match is not None:
                break
            if i in taken:
                continue
            if _ts(a.first) >= _ts(o.first) or _ts(o.first) == float("inf"):
                match = i
                break
        s = _Session("ice", offer=o)
        if match is not None:
            taken.add(match)
            s.answer = answers[match]
        out.append(s)
    for i, a in enumerate(answers):
        if i not in taken:
            out.append(_Session("ice", answer=a))
    for side in sides:
        if side.role not in ("offer", "answer", "pranswer") and side.ufrags():
            out.append(_Session("ice", offer=side))  # role unknown: keep it as a side of its own
    return out


def _none(v: Any) -> Any:
    """A cell as a plain value: NA → None, a timestamp → ns since the epoch (like the descriptions' ts)."""
    if isinstance(v, pd.Timestamp):
        return v.value
    return None if isna(v) else v


_TURN_METHODS = (
    "Allocate",
    "CreatePermission",
    "ChannelBind",
    "Refresh",
)  # the TURN rows build_sessions reads
_TURN_CELLS = ("ts", "flow_id", "src", "sport", "method", "cls", "xor_relayed", "xor_peer", "channel")


def _check_pairs(stun: pd.DataFrame) -> dict[frozenset[str], _Checks]:
    """ufrag pair -> its connectivity checks (:class:`_Checks`), pairs in order of first request; computed
    column-wise from the `stun` columns it reads (10^6 checks as dicts took 1.4 GB)."""
    if not {"method", "cls", "username"} <= set(stun.columns):
        return {}
    # compared as they are (a categorical compares its codes): a string copy of 10^6 cells cost 73 MB
    method, cls, user = stun["method"], stun["cls"], stun["username"]
    binding = (method == "Binding").fillna(False).to_numpy(bool)
    is_req = binding & (cls == "request").fillna(False).to_numpy(bool)
    is_req &= user.astype("string").str.contains(":", regex=False).fillna(False).to_numpy(bool)
    if not is_req.any():
        return {}
    n = int(is_req.sum())

    def column(name: str) -> pd.Series | None:
        return stun[name][is_req].reset_index(drop=True) if name in stun.columns else None

    ucodes, unames = pd.factorize(user[is_req].astype("string"))  # codes in order of first appearance
    pair_of_name: list[int] = []
    pairs: dict[frozenset[str], int] = {}
    for u in unames.tolist():
        a, _, b = str(u).partition(":")
        pair_of_name.append(pairs.setdefault(frozenset((a, b)), len(pairs)))
    pair = np.asarray(pair_of_name, dtype=np.int64)[ucodes]
    npairs = len(pairs)
    row = np.arange(n)
    first_row = np.full(npairs, n, dtype=np.int64)
    np.minimum.at(first_row, pair, row)

    ts = column("ts")
    if ts is not None and len(ts):
        ns = ts.array.as_unit("ns").asi8 if isinstance(ts.dtype, pd.DatetimeTZDtype) else ts.astype("int64")
        ns = np.where(ts.isna().to_numpy(), np.iinfo(np.int64).max, np.asarray(ns, dtype=np.int64))
    else:
        ns = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    first_ts = np.full(npairs, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_ts, pair, ns)

    # success responses per transaction id (a retransmitted request is answered once per copy it is credited)
    successes = np.zeros(n, dtype=np.int64)
    txid = column("txid")
    if txid is not None:
        ok = binding & (cls == "success").fillna(False).to_numpy(bool)
        answered = stun["txid"][ok].dropna().astype("string")
        counts = answered[answered != ""].value_counts()
        if len(counts):  # looked up in Arrow, by position in the few answered ids (a map: +74 MB at 10^6)
            known = pa.array(counts.index.astype(str), type=pa.large_string())
            at = pc.fill_null(pc.index_in(pa.array(txid.astype("string").array), value_set=known), -1)
            at = np.asarray(at.to_numpy(), dtype=np.int64)
            successes = np.where(at >= 0, counts.to_numpy(dtype=np.int64)[at], 0)
            del at
    succ = np.bincount(pair, weights=successes, minlength=npairs).astype(np.int64)

    use = column("use_candidate")
    nominated = np.zeros(n, dtype=bool) if use is None else use.fillna(False).to_numpy(dtype=bool)
    nominated &= successes > 0
    flow = column("flow_id")
    fid = np.full(n, -1, np.int64) if flow is None else flow.to_numpy(dtype=np.int64, na_value=-1)
    nom_pairs, nom_first = np.unique(pair[nominated], return_index=True)
    nom_row = dict(zip(nom_pairs.tolist(), np.flatnonzero(nominated)[nom_first].tolist()))

    requests = np.bincount(pair, minlength=npairs)
    flows = _distinct_by_pair(pair, fid, fid >= 0, npairs)
    names = _distinct_by_pair(pair, ucodes, np.ones(n, dtype=bool), npairs)
    out: dict[frozenset[str], _Checks] = {}
    for k, key in enumerate(pairs):
        nr = nom_row.get(k)
        out[key] = _Checks(
            username=str(unames[ucodes[first_row[k]]]),
            requests=int(requests[k]),
            successes=int(succ[k]),
            first_ts=None if first_ts[k] == np.iinfo(np.int64).max else int(first_ts[k]),
            flows=flows[k],
            usernames=[str(unames[c]) for c in names[k]],
            nominated=nr is not None,
            nominated_flow=None if nr is None or fid[nr] < 0 else int(fid[nr]),
        )
    return out


def _distinct_by_pair(pair: np.ndarray, values: np.ndarray, keep: np.ndarray, npairs: int) -> list[list[int]]:
    """Per pair, the distinct ``values`` of its rows (where ``keep``) in row order."""
    sel = np.flatnonzero(keep)
    if not len(sel):
        return [[] for _ in range(npairs)]
    p, v = pair[sel], values[sel].astype(np.int64)
    # first row of each distinct (pair, value), by one int key (a DataFrame's drop_duplicates hashed both
    # columns: +100 MB at 10^6 rows); values are non-negative codes or ids below 2^31, pairs below 2^31
    lo = int(v.min())
    first = np.sort(np.unique(p * (int(v.max()) - lo + 1) + (v - lo), return_index=True)[1])
    p, v = p[first], v[first]
    order = np.argsort(p, kind="stable")
    bounds = np.searchsorted(p[order], np.arange(npairs + 1))
    vs = v[order].tolist()
    return [vs[bounds[k] : bounds[k + 1]] for k in range(npairs)]


def _turn_rows(stun: pd.DataFrame) -> list[dict[str, Any]]:
    """The TURN rows build_sessions reads (_TURN_METHODS), as dicts of their _TURN_CELLS made plain like
    :func:`_none` does, read a column at a time; equal strings are one object."""
    keep = stun["method"].isin(_TURN_METHODS).fillna(False).to_numpy(dtype=bool)
    sub = stun.loc[keep, [c for c in _TURN_CELLS if c in stun.columns]]
    values: list[list[Any]] = []
    for c in sub.columns:
        col = sub[c]
        if isinstance(col.dtype, pd.StringDtype):
            codes, uniques = pd.factorize(col)
            u = list(uniques)
            values.append([u[i] if i >= 0 else None for i in codes.tolist()])
            continue
        if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype):
            vals = col.array.as_unit("ns").asi8.tolist()
        else:
            vals = col.tolist()
        na = col.isna().to_numpy()
        if na.any():
            vals = [None if m else v for v, m in zip(vals, na.tolist())]
        values.append(vals)
    return [dict(zip(sub.columns, row)) for row in zip(*values)]


def _endpoint_flows(
    flows: pd.DataFrame | None, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], list[int]]:
    """``wanted`` (normalised ip, port) -> the flows with that endpoint on either side, in flow order (a's
    side first); matched column-wise (a million flows, a handful of m= lines)."""
    out: dict[tuple[str, int], list[int]] = {}
    cols = ["flow_id", "a_ip", "a_port", "b_ip", "b_port"]
    if not wanted or flows is None or not len(flows) or not set(cols) <= set(flows.columns):
        return out
    keys = sorted(wanted)
    hits = []
    for side in (0, 1):
        ip, port = ("a_ip", "a_port") if side == 0 else ("b_ip", "b_port")
        codes, uniq = pd.factorize(flows[ip].astype("string"))  # NA: -1
        by_ip: dict[str, list[int]] = defaultdict(list)  # normalised address -> its codes
        for code, text in enumerate(uniq.tolist()):
            by_ip[normalise(str(text)) or str(text)].append(code)
        want = pd.DataFrame(
            [(code, p, k) for k, (a, p) in enumerate(keys) for code in by_ip.get(a, [])],
            columns=["code", "port", "key"],
            dtype=np.int64,
        )
        ports = flows[port].to_numpy(dtype=np.int64, na_value=-1)
        near = np.flatnonzero(
            np.isin(codes, want["code"].to_numpy()) & np.isin(ports, want["port"].to_numpy())
        )
        found = pd.DataFrame({"code": codes[near], "port": ports[near], "at": near * 2 + side})
        hits.append(found.merge(want, on=["code", "port"]))
    matched = pd.concat(hits, ignore_index=True).sort_values("at", kind="stable")
    fid = flows["flow_id"].to_numpy(dtype=np.int64)
    for k, g in matched.groupby("key", sort=False):
        out[keys[int(k)]] = fid[g["at"].to_numpy() // 2].tolist()
    return out


class _FlowPairs:
    """``flow_id -> "a <-> b"`` of the `flows` frame, looked up on demand (a session needs one or two of a
    million flows)."""

    def __init__(self, flows: pd.DataFrame | None) -> None:
        self.flows = flows if flows is not None and {"flow_id", "a", "b"} <= set(flows.columns) else None
        ids = np.empty(0, np.int64) if self.flows is None else self.flows["flow_id"].to_numpy(np.int64)
        self.order = np.argsort(ids, kind="stable")
        self.ids = ids[self.order]

    def get(self, flow_id: Any) -> str | None:
        i = int(np.searchsorted(self.ids, flow_id, side="right")) - 1  # the last row of that id wins
        if self.flows is None or i < 0 or self.ids[i] != flow_id:
            return None
        r = int(self.order[i])
        return f"{self.flows['a'].iat[r]} <-> {self.flows['b'].iat[r]}"


@register_frame(SESSIONS)
def build_sessions(cap: Capture) -> pd.DataFrame:
    descs = descriptions(cap)
    stun = cap.frame_or_none("stun")
    dtls = cap.frame_or_none("dtls")
    streams = cap.frame_or_none("rtp_streams")
    flows = cap.frame_or_none("flows")

    # -- STUN connectivity checks by ufrag pair --------------------------------------------------------
    checks: dict[frozenset[str], _Checks] = {}
    turn_rows: list[dict[str, Any]] = []
    if stun is not None and len(stun):
        checks = _check_pairs(stun)
        turn_rows = _turn_rows(stun)
    sessions = _pair(_group_sides(descs), checks.keys())

    used_pairs: set[frozenset[str]] = set()
    for s in sessions:
        ou = s.offer.ufrags() if s.offer else set()
        au = s.answer.ufrags() if s.answer else set()
        s.ufrag_pair = (
            next(iter(sorted(ou)), None) if ou else None,
            next(iter(sorted(au)), None) if au else None,
        )
        if s.offer and s.offer.first.row.get("ice_ufrag"):
            s.ufrag_pair = (s.offer.first.row["ice_ufrag"], s.ufrag_pair[1])
        if s.answer and s.answer.first.row.get("ice_ufrag"):
            s.ufrag_pair = (s.ufrag_pair[0], s.answer.first.row["ice_ufrag"])
        for pair, chk in checks.items():
            a, b = (tuple(pair) * 2)[:2]
            if ou and au:
                joined = (a in ou and b in au) or (b in ou and a in au)
            else:
                joined = bool(pair & (ou | au))
            if joined and pair not in used_pairs:
                used_pairs.add(pair)
                s.checks.append(chk)
    for pair, chk in checks.items():
        if pair not in used_pairs:
            s = _Session("stun_only")
            u = chk.username.partition(":")
            s.ufrag_pair = (u[2], u[0])  # the sender's own ufrag is the second part
            s.checks = [chk]
            sessions.append(s)

    # -- per session: flows ----------------------------------------------------------------------------
    for s in sessions:
        names = dict.fromkeys(s.usernames)  # an ordered set
        for chk in s.checks:
            for f in chk.flows:
                s.flows.setdefault(f)
            names.update(dict.fromkeys(chk.usernames))
        s.usernames = list(names)

    # sessions without connectivity checks (plain SIP / SDES media): flows to the c=/m= endpoints
    unjoined = [s for s in sessions if not s.flows and s.kind == "ice"]
    endpoint_flows = _endpoint_flows(
        flows, {e for s in unjoined for side in (s.offer, s.answer) for e in _media_endpoints(side)}
    )
    for s in unjoined:
        for side in (s.offer, s.answer):
            for media_ep in _media_endpoints(side):
                for f in endpoint_flows.get(media_ep, []):
                    s.flows.setdefault(f)
                    s.by_media_endpoint = True

    dtls_rows = [] if dtls is None else [{k: _none(v) for k, v in r.items()} for r in dtls.to_dict("records")]
    stream_rows = (
        [] if streams is None else [{k: _none(v) for k, v in r.items()} for r in streams.to_dict("records")]
    )
    flow_eps = _FlowPairs(flows)

    allocations = _allocations(turn_rows)
    used_allocs: set[int] = set()
    out_rows: list[dict[str, Any]] = []
    for s in sessions:
        out_rows.append(_row(s, dtls_rows, stream_rows, flow_eps, allocations, used_allocs, descs))
    for i, al in enumerate(allocations):
        if i not in used_allocs:
            row = {
                "kind": "turn_only",
                **_alloc_cols(al),
                "relay": True,
                "first_ts": al["ts"],
                "flow_id": [al["flow_id"]] if al["flow_id"] is not None else [],
                "observed": ["turn_allocation"],
                "missing": [o for o in OBSERVABLES if o not in ("turn_allocation", "media_endpoints")],
            }
            out_rows.append(row)
    hubs = media_servers(out_rows, descs)
    for r in out_rows:
        ends = {h for e in str(r.get("selected_pair") or "").split(" <-> ") if e for h in [host(e)] if h}
        r["media_server"] = min(ends & hubs, default=None)
    lists = [c.name for c in SESSIONS.columns if c.dtype == "object"]
    for i, r in enumerate(out_rows):
        r["session_id"] = i
        for c in lists:
            if r.get(c) is None:
                r[c] = []
        if isinstance(r.get("first_ts"), pd.Timestamp):
            r["first_ts"] = r["first_ts"].value
    return SESSIONS.from_records(out_rows)


SERVER_STACKS = {"Janus", "FreeSWITCH", "Asterisk", "mediasoup-client"}


def media_servers(rows: list[dict[str, Any]], descs: list[Desc]) -> set[str]:
    """Hosts at the hub of a star of sessions (``selected_pair``): two or more other hosts have a session with
    it and with no one else, and it is a server by its own descriptions (sent as the server of their
    signalling connection, ice-lite, or a server stack). Browsers in a mesh, or one browser sending to several
    viewers, are not servers of the signalling. A TURN server is not one (its sessions are relayed)."""
    turn = {host(r.get("turn_server")) for r in rows if r.get("turn_server")}
    remotes: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        pair = str(r.get("selected_pair") or "")
        if " <-> " not in pair or r.get("relay"):
            continue
        a, b = (host(x) for x in pair.split(" <-> "))
        if a and b and a != b:
            remotes[a].add(b)
            remotes[b].add(a)
    serves: set[str] = set()
    for d in descs:
        src, server = d.row.get("src"), host(d.row.get("server_endpoint"))
        if src and (
            d.row.get("ice_lite") is True
            or d.row.get("stack") in SERVER_STACKS
            or (server is not None and str(src) == server)
        ):
            serves.add(str(src))
    return {
        h
        for h, peers in remotes.items()
        if len(peers) >= 2 and h in serves and h not in turn and all(remotes[p] == {h} for p in peers)
    }


def _allocations(turn_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TURN allocations: Allocate success with XOR-RELAYED-ADDRESS, plus what was permitted/bound on its flow."""
    out: list[dict[str, Any]] = []
    for r in turn_rows:
        if r.get("method") == "Allocate" and r.get("cls") == "success" and r.get("xor_relayed"):
            out.append(
                {
                    "flow_id": r.get("flow_id"),
                    "server": ep(r.get("src"), r.get("sport")),
                    "relayed": str(r["xor_relayed"]),
                    "peers": [],
                    "channels": [],
                    "ts": r.get("ts"),
                }
            )
    for al in out:
        for r in turn_rows:
            if r.get("flow_id") != al["flow_id"] or r.get("cls") != "request":
                continue
            if r.get("method") in ("CreatePermission", "ChannelBind") and r.get("xor_peer"):
                for p in str(r["xor_peer"]).split(","):
                    if p and p not in al["peers"]:
                        al["peers"].append(p)
            if (
                r.get("method") == "ChannelBind"
                and r.get("channel") is not None
                and r["channel"] not in al["channels"]
            ):
                al["channels"].append(int(r["channel"]))
    return out


def _alloc_cols(al: dict[str, Any]) -> dict[str, Any]:
    return {
        "turn_server": al["server"],
        "turn_flow_id": al["flow_id"],
        "relayed_address": al["relayed"],
        "turn_peers": al["peers"],
        "turn_channels": al["channels"],
    }


def _is_ice(s: _Session) -> bool:
    return bool(s.checks) or any(d.row.get("ice_ufrag") for x in (s.offer, s.answer) if x for d in x.copies)


def _media_endpoints(side: _Side | None) -> dict[tuple[str, int], None]:
    """(ip, port) of every m= line (with its c= address, else the session's), for sessions without ICE, in
    description order (a set's order would change the session's flow list from one run to the next)."""
    out: dict[tuple[str, int], None] = {}
    if side is None:
        return out
    for d in side.copies:
        sd = d.sd
        if sd is None:
            continue
        for m in sd.media:
            conn = m.connection or sd.connection
            if not conn or not m.port:
                continue
            parts = conn.split()
            if len(parts) >= 3:
                ip = normalise(parts[2].split("/")[0])
                if ip and ip not in ("0.0.0.0", "::"):
                    out[(ip, m.port)] = None
    return out


def _relay_addrs(side: _Side | None) -> set[str]:
    out: set[str] = set()
    if side is None:
        return out
    for d in side.copies:
        for _, _, c in d.candidates():
            if c.type == "relay":
                out.add(ep(c.address, c.port) or "")
    return out


def _row(
    s: _Session,
    dtls_rows: list[dict[str, Any]],
    stream_rows: list[dict[str, Any]],
    flow_eps: _FlowPairs,
    allocations: list[dict[str, Any]],
    used_allocs: set[int],
    descs: list[Desc],
) -> dict[str, Any]:
    obs: list[str] = []
    row: dict[str, Any] = {
        "kind": s.kind if s.kind != "ice" or _is_ice(s) else "sdp",
        "offer_ufrag": s.ufrag_pair[0],
        "answer_ufrag": s.ufrag_pair[1],
    }
    sides = [x for x in (s.offer, s.answer) if x is not None]
    ts_candidates = []
    for name, side in (("offer", s.offer), ("answer", s.answer)):
        if side is None:
            continue
        obs.append(name)
        f = side.first.row
        row[f"{name}_sdp"] = [d.index for d in side.copies]
        row[f"{name}_frame"] = min(
            (d.row["frame"] for d in side.copies if d.row.get("frame") is not None), default=None
        )
        row[f"{name}_stack"] = f.get("stack")
        row[f"{name}_setup"] = f.get("setup")
        row[f"{name}_fingerprints_sha256"] = sorted({h for hs in side.sha256s() for h in hs})
        if f.get("ts") is not None:
            ts_candidates.append(f["ts"])
    if sides:
        copies = [d for x in sides for d in x.copies]
        row["signalling_transport"] = ",".join(
            sorted({str(d.row.get("transport") or d.row.get("source_kind")) for d in copies})
        )
        tl = [d.row.get("tls") for d in copies]
        row["signalling_tls"] = None if any(t is None for t in tl) else all(tl)
        fps: list[tuple[str, str]] = []
        for d in copies:
            for fp in d.row.get("fingerprints") or []:
                if tuple(fp) not in fps:
                    fps.append(tuple(fp))
        row["fingerprints"] = fps
        row["fingerprint_rewritten"] = any(
            len({tuple(sorted(h)) for h in x.sha256s() if h}) > 1 for x in sides
        )
    if s.by_media_endpoint:
        obs.append("media_endpoints")
    row["stun_usernames"] = s.usernames
    row["flow_id"] = list(s.flows)
    row["checks"] = s.requests
    row["check_successes"] = sum(c.successes for c in s.checks)
    if s.checks:
        obs.append("stun_checks")
        check_ts = [c.first_ts for c in s.checks if c.first_ts is not None]
        if check_ts:
            ts_candidates.append(min(check_ts))
    if row["check_successes"]:
        obs.append("stun_success")
    nominated = [c for c in s.checks if c.nominated]
    if nominated:
        obs.append("nominated_pair")
        row["nominated_flow_id"] = nominated[0].nominated_flow
    flows = s.flows  # an ordered set (a dict): a set of it cost 32 MB at 10^6 flows
    hs = [d for d in dtls_rows if d.get("flow_id") in flows]
    sel = row.get("nominated_flow_id")
    if sel is None and hs:
        sel = hs[0].get("flow_id")
    media = [r for r in stream_rows if r.get("flow_id") in flows]
    if sel is None and media:
        per: dict[int, int] = defaultdict(int)
        for r in media:
            per[r["flow_id"]] += int(r.get("packets") or 0)
        sel = max(per, key=lambda k: per[k])
    row["selected_flow_id"] = sel
    row["selected_pair"] = flow_eps.get(sel) if sel is not None else None
    # DTLS on the selected flow first, else any flow of the session
    # a relayed handshake is seen on both client<->TURN legs: prefer the leg where the real client speaks
    turn_servers = {al["server"] for al in allocations}
    hs.sort(
        key=lambda d: (d.get("client") in turn_servers, d.get("flow_id") != sel, d.get("first_frame") or 0)
    )
    if hs:
        obs.append("dtls")
        h = hs[0]
        row.update(
            {
                "dtls_flow_id": h.get("flow_id"),
                "dtls_first_frame": h.get("first_frame"),
                "dtls_version": h.get("version"),
                "dtls_client": h.get("client"),
                "client_cert_sha256": h.get("client_cert_sha256"),
                "server_cert_sha256": h.get("server_cert_sha256"),
                "srtp_profile": h.get("srtp_profile"),
            }
        )
        _fingerprint_match(row, s, h)
        if h.get("client_cert_sha256") or h.get("server_cert_sha256"):
            obs.append("dtls_certificates")
    else:
        row["fingerprint_status"] = "not_observable"
    if media:
        obs.append("srtp_streams")
        row["rtp_ssrcs"] = sorted({int(r["ssrc"]) for r in media if r.get("ssrc") is not None})
        row["rtp_packets"] = sum(int(r.get("packets") or 0) for r in media)
        sdp_ssrcs = {x for side in sides for d in side.copies for x in (d.row.get("ssrcs") or [])}
        row["sdp_ssrcs_seen"] = bool(sdp_ssrcs & set(row["rtp_ssrcs"])) if sdp_ssrcs else None
        row["keying"] = sorted({str(r.get("keying")) for r in media if r.get("keying") is not None})
    # TURN: an allocation whose client flow is one of the session's flows, or whose relayed address is a
    # relay candidate of the session
    relays = _relay_addrs(s.offer) | _relay_addrs(s.answer)
    mine = [i for i, al in enumerate(allocations) if al["flow_id"] in flows or al["relayed"] in relays]
    if mine:
        used_allocs.update(mine)
        first = allocations[mine[0]]
        row.update(_alloc_cols(first))
        # every allocation of the session (both peers may relay): peers and channels together
        row["turn_peers"] = list(dict.fromkeys(p for i in mine for p in allocations[i]["peers"]))
        row["turn_channels"] = list(dict.fromkeys(c for i in mine for c in allocations[i]["channels"]))
        row["relay"] = True
        obs.append("turn_allocation")
    else:
        row["relay"] = False if s.checks else None
    row["first_ts"] = min(ts_candidates) if ts_candidates else None
    row["observed"] = obs
    ice = _is_ice(s)
    not_applicable = {"media_endpoints"} if ice else {"stun_checks", "stun_success", "nominated_pair"}
    if row["relay"] is False:
        not_applicable.add("turn_allocation")
    if not ice:
        not_applicable.add("turn_allocation")
    kinds = {k for x in sides for d in x.copies for k in (d.row.get("kinds") or [])}
    if kinds and kinds <= {"application"}:
        not_applicable.add("srtp_streams")  # data channels only: no RTP to expect
    if sides and not any(d.row.get("fingerprints") for x in sides for d in x.copies):
        not_applicable |= {"dtls", "dtls_certificates"}  # SDES or plain RTP: no DTLS to expect
    row["missing"] = [o for o in OBSERVABLES if o not in obs and o not in not_applicable]
    return row


def cert_matches(cert: Any, copies: Iterable[Iterable[str]]) -> bool:
    """A certificate matches a description when its SHA-256 is among the sha-256 fingerprints of every copy of
    that description (a copy rewritten in transit breaks the match). The one place this rule is written."""
    c = str(cert).lower()
    return all(c in set(hs) for hs in copies)


def _fingerprint_match(row: dict[str, Any], s: _Session, h: dict[str, Any]) -> None:
    """Record how the handshake's certificates compare with the fingerprints each side signalled (every copy):
    facts for check DTLS001, which alone decides."""
    offer_setup = (s.offer.first.row.get("setup") if s.offer else None) or ""
    answer_setup = (s.answer.first.row.get("setup") if s.answer else None) or ""
    # RFC 5763 §5: 'active' is the DTLS client; the offerer usually says actpass and the answer decides.
    role = None
    if answer_setup == "active" or offer_setup == "passive":
        role = "server"
    elif answer_setup == "passive" or offer_setup == "active":
        role = "client"
    else:
        role = _role_by_address(s, h)
    row["offerer_dtls_role"] = role
    certs = {"client": h.get("client_cert_sha256"), "server": h.get("server_cert_sha256")}
    results: list[bool] = []
    for name, side in (("offer", s.offer), ("answer", s.answer)):
        if side is None or role is None:
            continue
        dtls_side = role if name == "offer" else ("server" if role == "client" else "client")
        cert = certs.get(dtls_side)
        copies = [hs for hs in side.sha256s() if hs]
        if not cert or not copies:
            continue
        ok = cert_matches(cert, copies)
        row[f"{name}_fingerprint_match"] = ok
        results.append(ok)
    pool = sorted({h for x in (s.offer, s.answer) if x for hs in x.sha256s() for h in hs})
    present = [c for c in certs.values() if c]
    if pool and present:
        row["certs_in_fingerprints"] = all(cert_matches(c, [pool]) for c in present)
        if role is None:  # roles unknown: a certificate must at least match some fingerprint of the session
            results = [row["certs_in_fingerprints"]]
    row["fingerprint_status"] = "not_observable" if not results else ("match" if all(results) else "mismatch")


def _role_by_address(s: _Session, h: dict[str, Any]) -> str | None:
    client = str(h.get("client") or "")
    for name, side in (("offer", s.offer), ("answer", s.answer)):
        if side is None:
            continue
        for d in side.copies:
            for _, _, c in d.candidates():
                if ep(c.address, c.port) == client:
                    return "client" if name == "offer" else "server"
    return None
