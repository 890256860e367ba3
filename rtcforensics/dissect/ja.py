"""JA3 / JA3S and JA4 fingerprints of DTLS hellos.

JA3 (Salesforce): ``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`` with values in
decimal, ``-``-joined, GREASE (RFC 8701) removed, and its MD5. For DTLS the version is the ClientHello's
``legacy_version`` as on the wire (65277 for DTLS 1.2, 65279 for DTLS 1.0), which is what Wireshark's
``dtls.handshake.ja3`` computes too. JA3S: ``SSLVersion,Cipher,Extensions``.

JA4 (FoxIO, technical_details/JA4.md): the specification defines the protocol character ``d`` for DTLS
(beside ``t`` for TLS over TCP and ``q`` for QUIC) and the DTLS version codes ``d1`` (0xfeff), ``d2``
(0xfefd) and ``d3`` (0xfefc), the version being "the highest value" of supported_versions (GREASE removed)
when present, else ``legacy_version``. We follow the text literally, as the independent ja4plus 1.4.0 does:
DTLS version codes count down, so a client offering DTLS 1.3 *and* 1.2 (0xfefc, 0xfefd) gets ``d2``, not
``d3`` — fingerprints stay comparable with other JA4 tools and databases; what a client really offers is in
the `dtls` frame's ``versions_offered``. Other codes give ``00``.
"""

from __future__ import annotations

import hashlib

from .dtls import ClientHello, ServerHello, is_grease

_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def _dec(values: list[int] | None) -> str:
    return "-".join(str(v) for v in (values or []) if not is_grease(v))


def ja3_string(ch: ClientHello) -> str:
    e = ch.ext
    return ",".join(
        [
            str(ch.version),
            _dec(ch.cipher_suites),
            _dec(e.types),
            _dec(e.supported_groups),
            _dec(e.ec_point_formats),
        ]
    )


def ja3(ch: ClientHello) -> tuple[str, str]:
    """(JA3 string, its MD5 hex)."""
    s = ja3_string(ch)
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


def ja3s(sh: ServerHello) -> tuple[str, str]:
    s = ",".join([str(sh.version), str(sh.cipher_suite), _dec(sh.ext.types)])
    return s, hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


def _alpn_chars(alpn: list[str] | None) -> str:
    if not alpn or not alpn[0]:
        return "00"
    raw = alpn[0].encode("latin-1")
    first, last = raw[:1], raw[-1:]
    if first.isalnum() and last.isalnum() and first.isascii() and last.isascii():
        return (first + last).decode()
    h = raw.hex()
    return h[0] + h[-1]


def _sha12(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()[:12]


def ja4_parts(ch: ClientHello, proto: str = "d") -> tuple[str, list[str], list[str], list[str]]:
    """(section a, sorted cipher hex list, sorted extension hex list without SNI/ALPN, signature
    algorithm hex list in wire order)."""
    e = ch.ext
    versions = [v for v in (e.supported_versions or []) if not is_grease(v)]
    version = max(versions) if versions else ch.version  # the spec's "highest value", literally
    ciphers = [f"{c:04x}" for c in ch.cipher_suites if not is_grease(c)]
    exts = [f"{t:04x}" for t in e.types if not is_grease(t)]
    a = (
        f"{proto}{_JA4_VERSIONS.get(version, '00')}{'d' if e.sni is not None else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_alpn_chars(e.alpn)}"
    )
    ext_sorted = sorted(x for x in exts if x not in ("0000", "0010"))
    sigs = [f"{s:04x}" for s in (e.signature_algorithms or []) if not is_grease(s)]
    return a, sorted(ciphers), ext_sorted, sigs


def ja4_from_parts(a: str, ciphers: list[str], exts: list[str], sigs: list[str]) -> str:
    b = _sha12(",".join(ciphers)) if ciphers else "000000000000"
    if exts:
        c_in = ",".join(exts) + ("_" + ",".join(sigs) if sigs else "")
        c = _sha12(c_in)
    else:
        c = "000000000000"
    return f"{a}_{b}_{c}"


def ja4(ch: ClientHello, proto: str = "d") -> str:
    return ja4_from_parts(*ja4_parts(ch, proto))


def ja4_r(ch: ClientHello, proto: str = "d") -> str:
    """JA4 raw (sorted) form: ``a_ciphers_extensions_sigalgs``."""
    a, ciphers, exts, sigs = ja4_parts(ch, proto)
    return f"{a}_{','.join(ciphers)}_{','.join(exts)}" + (f"_{','.join(sigs)}" if sigs else "")
