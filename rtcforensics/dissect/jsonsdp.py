"""SDP, trickled candidates and ICE/DTLS parameters inside JSON signalling, at any depth.

Real apps wrap SDP in their own envelopes: ``{"type":"offer","sdp":"v=0\\r\\n..."}`` (the W3C
RTCSessionDescriptionInit), Janus ``{"janus":"message","jsep":{...}}`` and ``{"janus":"trickle",
"candidate":{...}}``, LiveKit-like ``{"offer":{...}}`` / ``{"trickle":{"candidateInit":"<JSON string>"}}``,
mediasoup-like transport parameters (``iceParameters``, ``iceCandidates``, ``dtlsParameters``) that carry
the same facts without SDP. :func:`find` walks any JSON value (strings holding JSON are parsed too) and
returns what it found with a JSON path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError
from .sdp import Candidate, looks_like_sdp

MAX_DEPTH = 64
ROLES = {"offer", "answer", "pranswer", "rollback"}


@dataclass
class Found:
    """One thing found in a JSON message.

    ``kind``: ``sdp`` (a description), ``candidate`` (one trickled candidate line; ``text`` empty means
    end-of-candidates), or ``params`` (mediasoup-like ICE/DTLS parameters without SDP)."""

    kind: str
    path: str
    text: str | None = None
    role: str | None = None
    envelope: str = "plain"
    mid: str | None = None
    mline_index: int | None = None
    ufrag: str | None = None
    # params: ice_ufrag, ice_pwd_secret, ice_lite, fingerprints [(algo, hex)], dtls_role, candidates
    # [Candidate], problems [(anomaly name, detail)]
    params: dict[str, Any] = field(default_factory=dict)


MAX_INT_DIGITS = 4000  # Python refuses int() beyond 4,300 digits; longer numbers are kept as their text


def _int(text: str) -> int | str:
    return int(text) if len(text) <= MAX_INT_DIGITS else text


def json_loads(text: str) -> Any:
    """``json.loads`` that keeps integers too long for Python's int conversion as text (a hostile 5,000-digit
    number must not make a whole message, or a whole frame, unreadable). Raises what ``json.loads`` raises."""
    return json.loads(text, parse_int=_int)


def loads(text: str) -> Any:
    """``json.loads`` raising DecodeError(json_invalid) with the position instead of a traceback."""
    try:
        return json_loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise DecodeError("json_invalid", f"JSON message is invalid: {e}") from None


def envelope_of(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = set(obj)
        if "janus" in keys or "jsep" in keys:
            return "janus"
        if keys & {"iceParameters", "dtlsParameters", "iceCandidates"} or (
            isinstance(obj.get("data"), dict) and set(obj["data"]) & {"iceParameters", "dtlsParameters"}
        ):
            return "mediasoup"
        if keys & {"trickle", "offer", "answer"} and "type" not in keys and "sdp" not in keys:
            return "livekit"
    return "plain"


def find(obj: Any) -> list[Found]:
    """Everything SDP-like in a parsed JSON value (see module docstring)."""
    out: list[Found] = []
    _walk(obj, "$", None, envelope_of(obj), out, 0)
    return out


def find_in_text(text: str) -> list[Found]:
    """Parse ``text`` as JSON and :func:`find` in it. Raises DecodeError(json_invalid)."""
    return find(loads(text))


def _role_near(d: dict[str, Any], parent_key: str | None) -> str | None:
    t = d.get("type")
    if isinstance(t, str) and t.lower() in ROLES:
        return t.lower()
    if parent_key and parent_key.lower() in ROLES:
        return parent_key.lower()
    return None


def _walk(obj: Any, path: str, parent_key: str | None, env: str, out: list[Found], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError("json_too_deep", f"JSON message nests deeper than {MAX_DEPTH} levels at {path}")
    if isinstance(obj, dict):
        inner_env = env if env != "plain" else envelope_of(obj)
        skip: set[str] = set()
        cand = obj.get("candidate", 0)
        if cand is None and ("sdpMid" in obj or "sdpMLineIndex" in obj or len(obj) == 1):
            cand = ""  # {"candidate": null}: end of candidates (as aiortc apps and some browsers send it)
        if isinstance(cand, str) and (cand == "" or cand.lstrip().startswith(("candidate:", "a=candidate:"))):
            out.append(
                Found(
                    "candidate",
                    f"{path}.candidate",
                    text=cand.strip(),
                    envelope=inner_env,
                    mid=_str(obj.get("sdpMid")),
                    mline_index=_intv(obj.get("sdpMLineIndex")),
                    ufrag=_str(obj.get("usernameFragment")),
                )
            )
            skip.add("candidate")
        if obj.get("completed") is True and inner_env == "janus" and parent_key == "candidate":
            out.append(Found("candidate", f"{path}.completed", text="", envelope=inner_env))
        if any(k in obj for k in ("iceParameters", "dtlsParameters", "iceCandidates")):
            out.append(_params(obj, path, inner_env))
            skip |= {"iceParameters", "dtlsParameters", "iceCandidates"}
        for k, v in obj.items():
            if k in skip:
                continue
            p = f"{path}.{k}"
            if isinstance(v, str):
                _string(v, p, k, obj, inner_env, out, depth)
            else:
                _walk(v, p, k, inner_env, out, depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            p = f"{path}[{i}]"
            if isinstance(v, str):
                _string(v, p, parent_key, None, env, out, depth)
            else:
                _walk(v, p, parent_key, env, out, depth + 1)


def _string(
    v: str, path: str, key: str | None, holder: dict[str, Any] | None, env: str, out: list[Found], depth: int
) -> None:
    s = v.strip()
    if looks_like_sdp(s):
        role = _role_near(holder, key) if holder is not None else None
        if role is None and holder is not None and key not in ("sdp",):
            role = key.lower() if key and key.lower() in ROLES else None
        out.append(Found("sdp", path, text=v, role=role, envelope=env))
    elif s.startswith(("candidate:", "a=candidate:")):
        out.append(Found("candidate", path, text=s, envelope=env))
    elif s[:1] in "{[" and s[-1:] in "}]":
        try:
            inner = json_loads(s)
        except (json.JSONDecodeError, RecursionError):
            return
        _walk(inner, path + "<json>", key, env if env != "plain" else envelope_of(inner), out, depth + 1)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _intv(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _params(obj: dict[str, Any], path: str, env: str) -> Found:
    p: dict[str, Any] = {"fingerprints": [], "candidates": [], "problems": []}
    ice = obj.get("iceParameters")
    if isinstance(ice, dict):
        p["ice_ufrag"] = _str(ice.get("usernameFragment"))
        p["ice_pwd_secret"] = _str(ice.get("password"))
        p["ice_lite"] = bool(ice.get("iceLite", False))
    dtls = obj.get("dtlsParameters")
    if isinstance(dtls, dict):
        p["dtls_role"] = _str(dtls.get("role"))
        for fp in dtls.get("fingerprints") or []:
            if (
                isinstance(fp, dict)
                and isinstance(fp.get("value"), str)
                and isinstance(fp.get("algorithm"), str)
            ):
                p["fingerprints"].append((fp["algorithm"].lower(), fp["value"].replace(":", "").lower()))
    for i, c in enumerate(obj.get("iceCandidates") or []):
        if not isinstance(c, dict):
            continue
        try:
            p["candidates"].append(
                Candidate(
                    foundation=str(c.get("foundation", "")),
                    component=int(c.get("component", 1)),
                    transport=str(c.get("protocol", "udp")).lower(),
                    priority=int(c.get("priority", 0)),
                    address=str(c.get("ip") or c.get("address") or ""),
                    port=int(c.get("port", 0)),
                    type=str(c.get("type", "host")).lower(),
                    tcptype=_str(c.get("tcpType")),
                )
            )
        except (TypeError, ValueError):
            p["problems"].append(
                (
                    "json_candidate_malformed",
                    f"JSON iceCandidates[{i}] has a non-numeric port or priority at {path}",
                )
            )
    return Found("params", path, envelope=env if env != "plain" else "mediasoup", params=p)
