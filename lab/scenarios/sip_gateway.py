"""A browser calling a SIP phone through a WebRTC-SIP gateway, built from the software people run.

Scenario ``sip_gateway``:

    Chromium ──wss (TLS)──> nginx ──ws (clear)──> Kamailio ──SIP/UDP──> baresip
    203.0.113.10            203.0.113.5|10.0.0.5  10.0.0.20              10.0.0.40
        └──── ICE + DTLS-SRTP ────> rtpengine 203.0.113.30|10.0.0.30 ──── plain RTP (PCMU) ────┘

- ``alice`` runs headless Chromium (fake microphone) on ``https://203.0.113.5/sip_gateway.html``
  (``lab/web/sip_gateway.js``): the page writes SIP over WebSocket itself (RFC 7118), the media is Chromium's
  own WebRTC stack. INVITE → 407 (Kamailio's digest challenge) → ACK → INVITE with Proxy-Authorization → 100 →
  200 (SDP answer) → ACK; ~3 s of audio; re-INVITE ``a=sendonly`` (hold) → 200 → ACK; re-INVITE ``a=sendrecv``
  (resume) → 200 → ACK; BYE → 200. Chromium's SSLKEYLOGFILE is ``sip_gateway.keylog`` (browser↔nginx TLS).
- ``proxy``: nginx terminates TLS, serves the page and proxies ``/sip`` (WebSocket upgrade) in clear to
  Kamailio from its back-end address, adding X-Forwarded-For / X-Forwarded-Proto.
- ``sip``: Kamailio (``lab/conf/sip_gateway/kamailio.cfg``): websocket + xhttp, digest auth (auth module,
  ``proxy_challenge`` / ``pv_proxy_authenticate``), Record-Route (double, WS↔UDP), nathelper contact alias,
  rtpengine module (ng protocol over UDP to ``media``) rewriting each SDP, sipdump of every SIP message.
- ``media``: rtpengine in userspace (``--table=-1``): ICE + DTLS-SRTP toward the browser on 203.0.113.30,
  plain RTP/AVP toward baresip on 10.0.0.30.
- ``pbx``: baresip (auto-answer, PCMU, a 440 Hz tone; ``-s`` SIP trace).

Truth from the software: versions from each program's ``--version``/``-v``/``-h`` banner; every SIP message
from Kamailio's sipdump files and baresip's SIP trace (Call-ID, CSeq, which SDP answers which offer); the
media legs from rtpengine's final per-stream statistics, baresip's RTCP summary and Chromium's getStats();
tshark cross-checks the counts and the SIP sequence. The module is also the result collector that runs on
the proxy host: ``python -m lab.scenarios.sip_gateway collect``.
"""

from __future__ import annotations

import http.server
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.pages import command_main
from lab.scenarios.browsers import CHROMIUM_FLAGS as BROWSER_FLAGS
from lab.scenarios.browsers import _kill_namespace

NAME = "sip_gateway"
CONF = T.LAB / "conf" / NAME
WEB = T.LAB / "web"
BROWSER_IP = "203.0.113.10"
PROXY_PUB, PROXY_PRIV = "203.0.113.5", "10.0.0.5"
KAM_IP, KAM_WS_PORT = "10.0.0.20", 8080
MEDIA_PUB, MEDIA_PRIV, NG_PORT = "203.0.113.30", "10.0.0.30", 2223
BARESIP_IP = "10.0.0.40"
COLLECT_PORT = 9000
DOMAIN = "lab.example"
REALM = "lab.example"
USER, CALLEE = "alice", "bob"
PAGE_AGENT = "rtcf-lab-sip-page/0.1"
TALK, HOLD, RESUME = 3, 2, 2


# --------------------------------------------------------------------------------------------------------------
# the result collector (runs on the proxy host, behind nginx on 127.0.0.1: its traffic never reaches the tap)


def collect(out: Path, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(body)
            tmp.replace(out)
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args: Any) -> None:
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()


# --------------------------------------------------------------------------------------------------------------
# versions, as each program reports itself


def _first_line(argv: list[str], pattern: str) -> str:
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    text = r.stdout + r.stderr
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"no version in the output of {' '.join(argv)}: {text[:300]!r}")
    return m.group(1)


def versions() -> dict[str, dict[str, str]]:
    return {
        "chromium": {
            "version": _first_line(["chromium", "--version"], r"Chromium (\S+)"),
            "banner": "chromium --version",
        },
        "nginx": {"version": _first_line(["nginx", "-v"], r"nginx/(\S+)"), "banner": "nginx -v"},
        "kamailio": {
            "version": _first_line(["kamailio", "-v"], r"version: kamailio (\S+)"),
            "banner": "kamailio -v",
        },
        "rtpengine": {
            "version": _first_line(["rtpengine", "--version"], r"Version: (\S+)"),
            "banner": "rtpengine --version",
        },
        "baresip": {"version": _first_line(["baresip", "-h"], r"baresip v(\S+)"), "banner": "baresip -h"},
    }


# --------------------------------------------------------------------------------------------------------------
# configuration


def _fill(template: Path, dest: Path, **values: Any) -> Path:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z][A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{template.name}: unfilled placeholders {sorted(set(left))}")
    dest.write_text(text)
    return dest


def _configs(work: Path, password: str) -> dict[str, Path]:
    (work / "sipdump").mkdir()
    (work / "nginx_tmp").mkdir()
    (work / "baresip").mkdir()
    T.make_cert(work, "proxy", PROXY_PUB)
    common = {
        "WORK": work,
        "KAM_IP": KAM_IP,
        "KAM_WS_PORT": KAM_WS_PORT,
        "BARESIP_IP": BARESIP_IP,
    }
    kam = _fill(
        CONF / "kamailio.cfg",
        work / "kamailio.cfg",
        **common,
        DOMAIN=DOMAIN,
        REALM=REALM,
        USER=USER,
        CALLEE=CALLEE,
        PASSWORD=password,
        RTPENGINE_IP=MEDIA_PRIV,
        NG_PORT=NG_PORT,
    )
    ngx = _fill(
        CONF / "nginx.conf",
        work / "nginx.conf",
        **common,
        PUBLIC_IP=PROXY_PUB,
        PRIVATE_IP=PROXY_PRIV,
        WEB=WEB,
        COLLECT_PORT=COLLECT_PORT,
    )
    _fill(CONF / "baresip.config", work / "baresip" / "config", **common)
    (work / "baresip" / "accounts").write_text(
        f"<sip:{CALLEE}@{BARESIP_IP}>;regint=0;answermode=auto;audio_codecs=PCMU\n"
    )
    (work / "baresip" / "contacts").write_text("")
    return {"kamailio": kam, "nginx": ngx}


# --------------------------------------------------------------------------------------------------------------
# the scenario


# Chromium as lab/scenarios/browsers.py runs it, plus trust in the proxy's self-signed certificate
CHROMIUM_FLAGS = [*BROWSER_FLAGS, "--ignore-certificate-errors"]


def _run(work: Path, cap: Path, raw_keylog: Path, password: str) -> None:
    from lab.netns import Lab

    confs = _configs(work, password)
    profile = Path(tempfile.mkdtemp(prefix="rtcf-chromium-sipgw-"))
    url = (
        f"https://{PROXY_PUB}/sip_gateway.html?ws=wss://{PROXY_PUB}/sip&user={USER}&domain={DOMAIN}"
        f"&target=sip:{CALLEE}@{DOMAIN}&talk={TALK}&hold={HOLD}&resume={RESUME}&agent={PAGE_AGENT}"
        f"#pw={password}"
    )
    result = work / "result.json"
    try:
        with Lab(NAME) as lab:
            alice = lab.host("alice", f"{BROWSER_IP}/24")
            proxy = lab.host("proxy", f"{PROXY_PUB}/24")
            proxy.run("ip", "addr", "add", f"{PROXY_PRIV}/24", "dev", "eth0")
            sip = lab.host("sip", f"{KAM_IP}/24")
            media = lab.host("media", f"{MEDIA_PUB}/24")
            media.run("ip", "addr", "add", f"{MEDIA_PRIV}/24", "dev", "eth0")
            pbx = lab.host("pbx", f"{BARESIP_IP}/24")
            with lab.capture(cap):
                rtpe = media.popen(
                    [
                        "rtpengine",
                        "--config-file=none",
                        "--foreground",
                        "--log-stderr",
                        "--no-log-timestamps",
                        "--table=-1",
                        f"--interface=pub/{MEDIA_PUB}",
                        f"--interface=priv/{MEDIA_PRIV}",
                        f"--listen-ng={MEDIA_PRIV}:{NG_PORT}",
                        "--listen-cli=127.0.0.1:9900",
                        "--port-min=30000",
                        "--port-max=30099",
                        "--log-level=6",
                        "--delete-delay=0",
                        f"--pidfile={work / 'rtpengine.pid'}",
                    ],
                    log=work / "rtpengine.log",
                )
                media.wait_listening(NG_PORT, proto="udp", proc=rtpe)
                bare = pbx.popen(
                    ["baresip", "-s", "-v", "-f", str(work / "baresip")], log=work / "baresip.log"
                )
                pbx.wait_listening(5060, proto="udp", proc=bare)
                kam = sip.popen(
                    [
                        "kamailio",
                        "-DD",
                        "-E",
                        "-f",
                        str(confs["kamailio"]),
                        "-Y",
                        str(work),
                        "-m",
                        "64",
                        "-M",
                        "8",
                    ],
                    log=work / "kamailio.log",
                )
                sip.wait_listening(KAM_WS_PORT, proc=kam)
                coll = proxy.popen(
                    [
                        T.PY,
                        "-m",
                        "lab.scenarios.sip_gateway",
                        "collect",
                        "--out",
                        str(result),
                        "--port",
                        str(COLLECT_PORT),
                    ],
                    log=work / "collect.log",
                    cwd=str(T.ROOT),
                )
                proxy.wait_listening(COLLECT_PORT, proc=coll)
                ngx = proxy.popen(
                    ["nginx", "-c", str(confs["nginx"]), "-p", str(work), "-g", "daemon off;"],
                    log=work / "nginx.log",
                )
                proxy.wait_listening(443, proc=ngx)
                alice.popen(
                    ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                    log=work / "chromium.log",
                    env={"HOME": str(profile), "SSLKEYLOGFILE": str(raw_keylog)},
                )
                deadline = time.monotonic() + TALK + HOLD + RESUME + 45
                while not result.exists() and time.monotonic() < deadline:
                    time.sleep(0.3)
                time.sleep(1.0)  # rtpengine logs its final statistics once Kamailio deletes the call
                lab.stop_all()
                _kill_namespace(alice)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not result.exists():
        raise RuntimeError(f"the page posted no result; see {work}")


def sip_gateway(out: Path) -> dict[str, Any]:
    work = T.workdir(NAME)
    cap = out / f"{NAME}.pcapng"
    keylog = out / f"{NAME}.keylog"
    if keylog.exists():
        keylog.unlink()
    raw_keylog = work / "chromium.keylog"
    password = secrets.token_urlsafe(12)
    _run(work, cap, raw_keylog, password)
    cap.chmod(0o644)
    res = json.loads((work / "result.json").read_text())
    if res.get("errors"):
        raise RuntimeError(f"the page reported errors: {res['errors']}")
    return _truth(work, cap, keylog, raw_keylog, res, password)


# --------------------------------------------------------------------------------------------------------------
# truth from the software's own records


def _sip_facts(text: str) -> dict[str, Any]:
    """Start line, Call-ID, CSeq and SDP facts of one SIP message as a program logged it."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    hdr: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdr.setdefault(k.strip().lower(), v.strip())
    row: dict[str, Any] = {"start": lines[0].strip(), "call_id": hdr.get("call-id"), "cseq": hdr.get("cseq")}
    for k in ("user-agent", "server", "proxy-authorization", "proxy-authenticate"):
        if k in hdr:
            row[k.replace("-", "_")] = hdr[k] if not k.startswith("proxy") else hdr[k].split()[0]
    if body.strip().startswith("v=0"):
        media = [x for x in body.split("\n") if x.startswith("m=")]
        row["sdp"] = {
            "origin": next((x[2:].strip() for x in body.split("\n") if x.startswith("o=")), None),
            "media": [x[2:].strip() for x in media],
            "protos": [x.split()[2] for x in media],
            "connection": next((x[2:].strip() for x in body.split("\n") if x.startswith("c=")), None),
            "direction": next(
                (
                    x[2:].strip()
                    for x in body.split("\n")
                    if x.strip() in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
                ),
                None,
            ),
            "fingerprint": next(
                (x.split(":", 1)[1].strip() for x in body.split("\n") if x.startswith("a=fingerprint:")), None
            ),
            "crypto": any(x.startswith("a=crypto:") for x in body.split("\n")),
            "tool": next(
                (x.split(":", 1)[1].strip() for x in body.split("\n") if x.startswith("a=tool:")), None
            ),
        }
    return row


def _sipdump(work: Path) -> list[dict[str, Any]]:
    """Every SIP message Kamailio received or sent (sipdump module, text mode), in order."""
    rows = []
    for f in sorted((work / "sipdump").glob("*.data")):
        for block in f.read_text(errors="replace").split("====================\n")[1:]:
            meta_text, _, msg = block.partition("~~~~~~~~~~~~~~~~~~~~\n")
            meta = dict(
                (k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in meta_text.splitlines()) if k
            )
            msg = msg.split("||||||||||||||||||||")[0]
            if meta.get("proto", "").startswith("tcp"):
                continue  # the WebSocket upgrade (HTTP), not SIP
            row = _sip_facts(msg)
            row.update(
                {
                    "dir": "recv" if meta["tag"] == "rcv" else "send",
                    "proto": meta["proto"].split()[0],
                    "src": f"{meta['srcip']}:{meta['srcport']}",
                    "dst": f"{meta['dstip']}:{meta['dstport']}",
                    "time": float(meta["time"]),
                }
            )
            rows.append(row)
    return sorted(rows, key=lambda r: r["time"])


def _baresip_trace(log: str) -> list[dict[str, Any]]:
    """SIP messages from baresip's own trace (-s): '#', 'UDP src -> dst', the message."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    rows = []
    for m in re.finditer(r"^#\n(UDP|TCP) (\S+) -> (\S+)\n(.*?)(?=^#\n|\Z)", clean, re.S | re.M):
        row = _sip_facts(m.group(4).strip("\n") + "\n")
        row.update(
            {
                "src": m.group(2),
                "dst": m.group(3),
                "dir": "send" if m.group(2).startswith(BARESIP_IP) else "recv",
            }
        )
        rows.append(row)
    return rows


def _offer_answer(msgs: list[dict[str, Any]], leg: str) -> list[dict[str, Any]]:
    """Which SDP answers which offer on one leg: INVITE (offer) and the 200 OK with the same Call-ID/CSeq."""
    pairs = []
    for m in msgs:
        if m["start"].startswith("INVITE ") and m.get("sdp"):
            ans = next(
                (
                    r
                    for r in msgs
                    if r["start"].startswith("SIP/2.0 200")
                    and r["call_id"] == m["call_id"]
                    and r["cseq"] == m["cseq"]
                    and r.get("sdp")
                ),
                None,
            )
            pairs.append(
                {
                    "leg": leg,
                    "call_id": m["call_id"],
                    "cseq": m["cseq"],
                    "offer": {
                        k: m["sdp"][k] for k in ("origin", "protos", "connection", "direction", "fingerprint")
                    },
                    "answer": {
                        k: ans["sdp"][k]
                        for k in ("origin", "protos", "connection", "direction", "fingerprint")
                    }
                    if ans
                    else None,
                    "offer_from": m["src"],
                    "answer_from": ans["src"] if ans else None,
                }
            )
    return pairs


_STATS_LINE = re.compile(
    r"Port\s+(\S+):(\d+) <>\s+(\S+):(\d+)(?: \((RTCP)\))?, SSRC ([0-9a-f]+), (\d+) p, (\d+) b, (\d+) e"
)


def _rtpengine_final(log: str) -> list[dict[str, Any]]:
    """rtpengine's 'Final packet stats' at call deletion: per local port, packets/bytes/errors it received."""
    rows = []
    media = None
    for line in log.splitlines():
        if "------ Media #" in line:
            media = line.split("------ ", 1)[1].strip()
        m = _STATS_LINE.search(line)
        if m and "Final packet stats" in log:
            rows.append(
                {
                    "local": f"{m.group(1)}:{m.group(2)}",
                    "remote": f"{m.group(3)}:{m.group(4)}",
                    "rtcp": bool(m.group(5)),
                    "last_ssrc": int(m.group(6), 16),
                    "packets_received": int(m.group(7)),
                    "bytes_received": int(m.group(8)),
                    "errors": int(m.group(9)),
                    "media": media,
                }
            )
    return rows


def _baresip_rtpstat(log: str) -> dict[str, Any]:
    """baresip's X-RTP-Stat line at the end of the call (PR/PS: RTP packets received/sent)."""
    m = re.search(r"^EX=BareSip;(.*)$", log, re.M)
    if not m:
        raise RuntimeError("baresip printed no RTP statistics")
    kv = dict(x.split("=", 1) for x in m.group(1).strip(";").split(";"))
    local, remote = kv["IP"].split(",")
    return {
        "packets_received": int(kv["PR"]),
        "packets_sent": int(kv["PS"]),
        "local": local,
        "remote": remote,
        "raw": "EX=BareSip;" + m.group(1),
    }


def _tshark_wire(cap: Path, keylog: Path) -> dict[str, Any]:
    rtp: Counter = Counter()
    for ssrc, s, sp, d, dp in T.tshark_fields(
        cap,
        ["rtp.ssrc", "ip.src", "udp.srcport", "ip.dst", "udp.dstport"],
        display_filter="rtp && !rtcp && !icmp",
        first_only=True,
    ):
        if ssrc:
            rtp[(int(ssrc, 16), f"{s}:{sp}", f"{d}:{dp}")] += 1
    sip = T.tshark_fields(
        cap,
        ["frame.number", "ip.src", "ip.dst", "sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.CSeq"],
        display_filter="sip",
        keylog=keylog,
        first_only=True,
    )
    hello = T.tshark_fields(
        cap,
        ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.handshake.random", "dtls.handshake.type"],
        display_filter="dtls.handshake.type == 1",
        first_only=True,
    )
    return {"rtp": rtp, "sip": sip, "client_hello": hello}


def _truth(work: Path, cap: Path, keylog: Path, raw_keylog: Path, res: dict, password: str) -> dict[str, Any]:
    import base64
    import hashlib

    if not raw_keylog.exists():
        raise RuntimeError("Chromium wrote no SSLKEYLOGFILE")
    lines = [x for x in raw_keylog.read_text().splitlines() if x.strip() and not x.startswith("#")]
    keylog.write_text("\n".join(dict.fromkeys(lines)) + "\n")
    keylog.chmod(0o644)
    kam = _sipdump(work)
    bare = _baresip_trace((work / "baresip.log").read_text(errors="replace"))
    rtpe = _rtpengine_final((work / "rtpengine.log").read_text(errors="replace"))
    bstat = _baresip_rtpstat((work / "baresip.log").read_text(errors="replace"))
    wire = _tshark_wire(cap, keylog)
    problems: list[str] = []

    # SIP: the WebSocket leg (nginx <-> Kamailio, what the browser sent and got) and the UDP leg (Kamailio <-> baresip)
    ws_leg = [m for m in kam if m["proto"] == "ws"]
    udp_leg = [m for m in kam if m["proto"] == "udp"]
    page = [(s["dir"], s["start"], s["cseq"]) for s in res["sip"]]
    kam_ws = [("send" if m["dir"] == "recv" else "recv", m["start"], m["cseq"]) for m in ws_leg]
    # Kamailio's UDP workers may relay a 180 and a 200 of one transaction in either order: compare as sets
    if sorted(page) != sorted(kam_ws):
        problems.append(f"page SIP {page} != Kamailio's WebSocket leg {kam_ws}")
    kam_udp = [("recv" if m["dir"] == "recv" else "send", m["start"], m["cseq"]) for m in udp_leg]
    bare_udp = [("recv" if m["dir"] == "send" else "send", m["start"], m["cseq"]) for m in bare]
    if sorted(kam_udp) != sorted(bare_udp):
        problems.append(f"Kamailio's UDP leg {kam_udp} != baresip's trace {bare_udp}")

    def key(start: str) -> str:
        return start.split()[1] if start.startswith("SIP/") else start.split()[0]

    wire_kam = sorted((r[5], r[6], r[3] or r[4]) for r in wire["sip"] if KAM_IP in (r[1], r[2]))
    logged = sorted((m["call_id"], m["cseq"], key(m["start"])) for m in kam)
    if wire_kam != logged:
        problems.append(f"tshark SIP on Kamailio's legs {wire_kam} != Kamailio's sipdump {logged}")
    wire_tls = sorted((r[5], r[6], r[3] or r[4]) for r in wire["sip"] if BROWSER_IP in (r[1], r[2]))
    sent = sorted((s["callid"], s["cseq"], key(s["start"])) for s in res["sip"])
    # tshark 4.0 does not reassemble a SIP message spanning several TLS records: it may miss one there
    tls_missing = sorted((Counter(sent) - Counter(wire_tls)).elements())
    if Counter(wire_tls) - Counter(sent) or len(tls_missing) > 2:
        problems.append(f"tshark SIP inside the browser's TLS (keylog) {wire_tls} != the page's log {sent}")

    # media: Chromium's getStats, rtpengine's final stats, baresip's X-RTP-Stat, tshark per SSRC and leg
    stats = res["stats"]
    ids = {s["id"]: s for s in stats}
    out = next(s for s in stats if s["type"] == "outbound-rtp")
    inb = next(s for s in stats if s["type"] == "inbound-rtp")
    tr = next(s for s in stats if s["type"] == "transport")
    pair = ids[tr["selectedCandidatePairId"]]
    lc, rc = ids[pair["localCandidateId"]], ids[pair["remoteCandidateId"]]
    b_ep = f"{lc.get('address') or lc.get('ip')}:{lc['port']}"
    r_ep = f"{rc.get('address') or rc.get('ip')}:{rc['port']}"
    plain = next(r for r in rtpe if r["local"].startswith(MEDIA_PRIV) and not r["rtcp"])
    legs = [
        {
            "ssrc": out["ssrc"],
            "src": b_ep,
            "dst": r_ep,
            "leg": "browser->rtpengine",
            "encryption": "SRTP",
            "stack_packets": out["packetsSent"],
            "stack": "chromium getStats outbound-rtp packetsSent",
        },
        {
            "ssrc": out["ssrc"],
            "src": plain["local"],
            "dst": plain["remote"],
            "leg": "rtpengine->baresip",
            "encryption": "none",
            "stack_packets": out["packetsSent"],
            "stack": "chromium getStats outbound-rtp packetsSent (rtpengine forwards every packet)",
        },
        {
            "ssrc": inb["ssrc"],
            "src": plain["remote"],
            "dst": plain["local"],
            "leg": "baresip->rtpengine",
            "encryption": "none",
            "stack_packets": plain["packets_received"],
            "stack_final": False,  # counted when Kamailio deleted the call on BYE; baresip sends until BYE
            "stack": "rtpengine final stats (packets received on its private port)",
        },
        {
            "ssrc": inb["ssrc"],
            "src": r_ep,
            "dst": b_ep,
            "leg": "rtpengine->browser",
            "encryption": "SRTP",
            "stack_packets": inb["packetsReceived"],
            "stack_final": False,  # getStats() a moment before BYE; baresip sends until BYE
            "stack": "chromium getStats inbound-rtp packetsReceived",
        },
    ]
    for leg in legs:
        leg.setdefault("stack_final", True)
        leg["wire_packets"] = wire["rtp"].get((leg["ssrc"], leg["src"], leg["dst"]), 0)
        late = leg["wire_packets"] - leg["stack_packets"]
        if late != 0 if leg["stack_final"] else not 0 <= late <= 5:
            problems.append(
                f"{leg['leg']} SSRC {leg['ssrc']:#x}: {leg['stack']} {leg['stack_packets']}, tshark {leg['wire_packets']}"
            )
    if problems:
        raise RuntimeError("sip_gateway facts disagree: " + "; ".join(problems))
    # rows the generic tshark test checks: one per SSRC, every packet counted on each leg it crosses
    rtp = []
    for ssrc in (out["ssrc"], inb["ssrc"]):
        mine = [x for x in legs if x["ssrc"] == ssrc]
        if len({x["wire_packets"] for x in mine}) == 1:
            rtp.append(
                {
                    "ssrc": ssrc,
                    "packets": mine[0]["wire_packets"],
                    "src": mine[0]["src"],
                    "dst": mine[0]["dst"],
                    "pt": 0,
                    "kind": "audio",
                    "wire_copies": 2,
                    "codec": "PCMU/8000",
                }
            )

    # DTLS between rtpengine (client: a=setup:active in its answer) and Chromium (server)
    hello = [h for h in wire["client_hello"] if f"{h[0]}:{h[1]}" == r_ep and f"{h[2]}:{h[3]}" == b_ep]
    if not hello:
        raise RuntimeError("tshark sees no ClientHello from rtpengine to the browser")
    local_cert = ids[tr["localCertificateId"]]
    remote_cert = ids[tr["remoteCertificateId"]]
    der = lambda c: hashlib.sha256(base64.b64decode(c["base64Certificate"])).hexdigest()  # noqa: E731
    dtls = [
        {
            "client": r_ep,
            "server": b_ep,
            "client_software": "rtpengine",
            "server_software": "chromium",
            "client_random": hello[0][4].replace(":", "").lower(),
            "version": {"FEFD": "DTLS 1.2", "FEFC": "DTLS 1.3"}.get(
                tr["tlsVersion"].upper(), tr["tlsVersion"]
            ),
            "cipher_suite": tr["dtlsCipher"],
            "srtp_profile": tr["srtpCipher"]
            if tr["srtpCipher"].startswith("SRTP_")
            else "SRTP_" + tr["srtpCipher"],
            "client_cert_sha256": der(remote_cert),
            "server_cert_sha256": der(local_cert),
            "encrypted_handshake": tr["tlsVersion"].upper() == "FEFC",
            "completed": tr.get("dtlsState") == "connected",
            "reported_by": "chromium getStats (transport, certificate)",
            # Chromium's SSLKEYLOGFILE has TLS secrets only; rtpengine logs none: the keylog cannot open it
            "keylog_has_secret": False,
        }
    ]
    offers = _offer_answer(ws_leg, "nginx<->kamailio (WebSocket, from the browser)") + _offer_answer(
        udp_leg, "kamailio<->baresip (UDP)"
    )
    ver = versions()
    hosts = {
        "alice": {
            "address": BROWSER_IP,
            "software": "chromium",
            **ver["chromium"],
            "user_agent": res["userAgent"],
        },
        "proxy": {"address": [PROXY_PUB, PROXY_PRIV], "software": "nginx", **ver["nginx"]},
        "sip": {"address": KAM_IP, "software": "kamailio", **ver["kamailio"]},
        "media": {"address": [MEDIA_PUB, MEDIA_PRIV], "software": "rtpengine", **ver["rtpengine"]},
        "pbx": {"address": BARESIP_IP, "software": "baresip", **ver["baresip"]},
    }
    kam_server = next(m["server"] for m in ws_leg if m.get("server", "").startswith("kamailio"))
    bare_server = next(m["server"] for m in bare if m.get("server"))
    sdp_tool = next(o["answer"] for o in offers if o["answer"])
    nginx_server = f"nginx/{ver['nginx']['version']}"
    ws_ep = [PROXY_PRIV, f"{KAM_IP}:{KAM_WS_PORT}"]
    udp_ep = [KAM_IP, f"{BARESIP_IP}:5060"]
    auth = next(m for m in ws_leg if m.get("proxy_authorization"))
    relayed = [
        {
            "header": "HTTP User-Agent (WebSocket upgrade)",
            "value": res["userAgent"],
            "originated_by": BROWSER_IP,
            "relayed_by": PROXY_PRIV,
            "seen_on": ws_ep,
        },
        {
            "header": "SIP User-Agent",
            "value": PAGE_AGENT,
            "originated_by": BROWSER_IP,
            "relayed_by": [PROXY_PRIV, KAM_IP],
            "seen_on": [ws_ep, udp_ep],
        },
        {
            "header": "SIP Server",
            "value": bare_server,
            "originated_by": BARESIP_IP,
            "relayed_by": KAM_IP,
            "seen_on": [ws_ep],
        },
    ]
    return {
        "description": (
            "headless Chromium calls a SIP phone through a WebRTC-SIP gateway: nginx terminates wss:// and "
            "proxies SIP over WebSocket in clear to Kamailio (407 digest challenge, Record-Route), rtpengine "
            "turns the browser's ICE/DTLS-SRTP into plain RTP (PCMU) for baresip; hold/resume re-INVITEs"
        ),
        "stacks": {h["software"]: h["version"] for h in hosts.values()},
        "keylog": keylog.name,
        "findings": [
            {
                "slug": "rtp-unencrypted",
                "endpoints": [plain["local"], plain["remote"]],
                "evidence": {"ssrc": [out["ssrc"], inb["ssrc"]]},
            },
            {"slug": "sdp-plain-rtp-offered", "endpoints": udp_ep, "evidence": {"protos": ["RTP/AVP"]}},
            {
                "slug": "signalling-plaintext",
                "endpoints": ws_ep,
                "evidence": {"transport": "websocket", "sip": True},
            },
            {"slug": "signalling-plaintext", "endpoints": udp_ep, "evidence": {"sip": True}},
            {
                "slug": "signalling-secret-exposed",
                "endpoints": ws_ep,
                "evidence": {"kinds": ["sip-proxy-authorization/digest"]},
            },
            {"slug": "ice-no-mdns", "severity": "low", "endpoints": [BROWSER_IP]},
            {
                "slug": "software-disclosure",
                "endpoints": [BROWSER_IP],
                "evidence": {"user_agent": res["userAgent"]},
            },
            {"slug": "software-disclosure", "endpoints": [PROXY_PUB], "evidence": {"server": nginx_server}},
            {"slug": "software-disclosure", "endpoints": [KAM_IP], "evidence": {"server": kam_server}},
            {
                "slug": "software-disclosure",
                "endpoints": [BARESIP_IP],
                "evidence": {"sip_server": bare_server},
            },
        ],
        "absent_findings": [
            "sdes-key-exposed",
            "dtls-weak-version",
            "dtls-handshake-failed",
            "dtls-cert-weak",
            "srtp-null-cipher",
            "srtp-weak-profile",
            "dtls-fingerprint-mismatch",
            "fingerprint-weak-hash",
            "signalling-weak-tls",
            "stun-no-integrity",
            "turn-open-relay",
            "turn-internal-peer",
            "ice-ipv6-eui64",
            "unsolicited-media",
        ],
        "relayed_headers": relayed,
        "hosts": hosts,
        "sip": {
            "call_id": res["sip"][0]["callid"],
            "kamailio": [{k: v for k, v in m.items() if k != "time"} for m in kam],
            "baresip": bare,
            "page": [{k: v for k, v in s.items() if k not in ("sdp", "t")} for s in res["sip"]],
            "digest": {
                "realm": REALM,
                "user": USER,
                "challenge": "407",
                "qop": "auth",
                "authorized_cseq": auth["cseq"],
            },
            "route_set": res.get("routeSet"),
            "remote_target": res.get("remoteTarget"),
            "tshark_messages": len(wire["sip"]),
            "tshark_tls_leg_not_dissected": [list(x) for x in tls_missing],
        },
        "offer_answer": offers,
        "sdp_tool_attribute": sdp_tool.get("tool") if isinstance(sdp_tool, dict) else None,
        "media_legs": legs,
        "rtpengine_final_stats": rtpe,
        "baresip_rtp_stat": bstat,
        "rtp": rtp,
        "dtls": dtls,
        "sdp": [
            {
                # first on the wire: browser -> nginx, inside TLS (then relayed unchanged in clear)
                **T.sdp_facts(res["offers"][0]["sdp"], "offer", "sip-websocket", True),
                "sip": "INVITE",
                "leg": "browser->nginx",
            },
            {
                # first on the wire: Kamailio -> nginx, in clear (then relayed unchanged inside TLS)
                **T.sdp_facts(res["offers"][0]["answer"], "answer", "sip-websocket", False),
                "sip": "200 OK",
                "leg": "kamailio->nginx",
            },
        ],
        "phases": res["phases"],
        "secrets": {"sip_digest_password": password},
        "notes": (
            "Truth from the programs: Kamailio's sipdump (every SIP message it received/sent on the WebSocket "
            "and UDP legs), baresip's SIP trace (-s) and X-RTP-Stat, rtpengine's 'Final packet stats', "
            "Chromium's getStats() and the messages the page itself sent (lab/web/sip_gateway.js); versions from "
            "each program's own banner. tshark (with the keylog for the browser<->nginx TLS) agrees on the SIP "
            "messages per Call-ID/CSeq and on every media leg's packet count per SSRC. rtpengine keeps the SSRCs "
            "when it bridges SRTP<->RTP: 'rtp' lists an SSRC (wire_copies 2) only when every packet crossed "
            "both legs; 'media_legs' has each leg with its own count. Counts: Chromium's packetsSent (read "
            "after its sender stopped) is final and equals both legs of its SSRC; baresip sends until the BYE, "
            "so rtpengine's final stats (taken when Kamailio deletes the call) and Chromium's packetsReceived "
            "(getStats a moment before the BYE) may miss its last few packets (stack_final false: 0..5 short "
            "of the wire). baresip's X-RTP-Stat (PR/PS) is recorded as printed but does not match the wire "
            "(its counters restart with the re-INVITEs), so it is not used. Kamailio may relay a 180 and a 200 "
            "of one transaction in either order (two UDP workers). The digest password never travels "
            "(only the MD5 response, in clear behind nginx: signalling-secret-exposed). relayed_headers: "
            "software strings that nginx and Kamailio only relayed; a software-disclosure naming the relay for "
            "them is wrong. The ng control protocol (bencode over UDP 2223) between Kamailio and rtpengine "
            "is on the wire too, and so is the page's result POST (inside TLS, to nginx -> a collector on "
            "127.0.0.1): lab plumbing carrying the SDPs and getStats() as JSON. Each SDP of the WebSocket leg "
            "is on the wire twice, in TLS (browser<->nginx) and in clear (nginx<->Kamailio); 'sdp' describes "
            "the first copy of each. No DTLS secret is in the keylog: Chromium's SSLKEYLOGFILE covers TLS "
            "only and rtpengine logs no DTLS secrets."
        ),
    }


SCENARIOS = {NAME: sip_gateway}


def main(argv: list[str] | None = None) -> None:
    options = [("--out", {"type": Path, "required": True}), ("--port", {"type": int, "required": True})]
    command_main("lab.scenarios.sip_gateway", {"collect": (lambda a: collect(a.out, a.port), options)}, argv)


if __name__ == "__main__":
    main()
