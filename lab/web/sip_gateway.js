// SIP over WebSocket (RFC 7118) spoken by the page itself: the browser's own WebRTC stack (ICE, DTLS-SRTP)
// makes the media, this script writes the SIP text. Used by lab/scenarios/sip_gateway.py.
//
// Query: ws (wss:// URL), user, domain, target (request URI), talk/hold/resume (seconds), agent (User-Agent).
// Fragment (never sent to the server): pw (digest password).
// Flow: INVITE -> 407 -> ACK; INVITE with Proxy-Authorization -> 100/180/200 -> ACK; talk; re-INVITE
// a=sendonly (hold) -> 200 -> ACK; re-INVITE a=sendrecv (resume) -> 200 -> ACK; senders stopped; getStats();
// BYE -> 200. Everything the page sent and received is POSTed to /result.
"use strict";

const P = new URLSearchParams(location.search);
const F = new URLSearchParams(location.hash.slice(1));
const R = { userAgent: navigator.userAgent, sip: [], offers: [], errors: [], phases: [] };

function md5(str) {
  // RFC 1321 (WebCrypto has no MD5; SIP digest authentication, RFC 2617/3261, still uses it)
  const bytes = new TextEncoder().encode(str);
  const n = bytes.length;
  const words = new Uint32Array((((n + 8) >>> 6) + 1) * 16);
  for (let i = 0; i < n; i++) words[i >> 2] |= bytes[i] << ((i % 4) * 8);
  words[n >> 2] |= 0x80 << ((n % 4) * 8);
  words[words.length - 2] = n * 8;
  const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const K = new Uint32Array(64);
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  for (let off = 0; off < words.length; off += 16) {
    let A = a0, B = b0, C = c0, D = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (B & C) | (~B & D); g = i; }
      else if (i < 32) { f = (D & B) | (~D & C); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = B ^ C ^ D; g = (3 * i + 5) % 16; }
      else { f = C ^ (B | ~D); g = (7 * i) % 16; }
      f = (f + A + K[i] + words[off + g]) >>> 0;
      const s = S[(i >> 4) * 4 + (i % 4)];
      A = D; D = C; C = B;
      B = (B + ((f << s) | (f >>> (32 - s)))) >>> 0;
    }
    a0 = (a0 + A) >>> 0; b0 = (b0 + B) >>> 0; c0 = (c0 + C) >>> 0; d0 = (d0 + D) >>> 0;
  }
  return [a0, b0, c0, d0]
    .map((w) => [0, 1, 2, 3].map((i) => ((w >>> (8 * i)) & 255).toString(16).padStart(2, "0")).join(""))
    .join("");
}

function rand(n) {
  const a = new Uint8Array(Math.ceil(n / 2));
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, n);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parse(text) {
  const [head, ...rest] = text.split("\r\n\r\n");
  const lines = head.split("\r\n");
  const headers = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
  }
  const all = (name) => headers.filter((h) => h[0] === name).map((h) => h[1]);
  const start = lines[0];
  const code = start.startsWith("SIP/2.0 ") ? parseInt(start.split(" ")[1], 10) : null;
  return { start, code, all, get: (name) => all(name)[0], body: rest.join("\r\n\r\n") };
}

function compose(start, headers, body) {
  const hs = headers.slice();
  if (body) hs.push(["Content-Type", "application/sdp"]);
  hs.push(["Content-Length", String(new TextEncoder().encode(body || "").length)]);
  return start + "\r\n" + hs.map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n" + (body || "");
}

class UA {
  constructor(ws) {
    this.ws = ws;
    this.waiters = [];
    this.viaHost = rand(10) + ".invalid"; // RFC 7118 §5.2
    this.callId = rand(20);
    this.tag = rand(10);
    this.cseq = 0;
    this.aor = `sip:${P.get("user")}@${P.get("domain")}`;
    this.contact = `<sip:${P.get("user")}@${this.viaHost};transport=ws;ob>`;
    ws.onmessage = (ev) => {
      const m = parse(ev.data);
      R.sip.push({ dir: "recv", t: Date.now(), start: m.start, callid: m.get("call-id"), cseq: m.get("cseq"),
                   sdp: m.body || null });
      for (const w of this.waiters.slice()) w(m);
    };
  }
  send(text) {
    const m = parse(text);
    R.sip.push({ dir: "send", t: Date.now(), start: m.start, callid: m.get("call-id"), cseq: m.get("cseq"),
                 sdp: m.body || null });
    this.ws.send(text);
  }
  request(method, ruri, { to, body, branch, cseq, route, auth } = {}) {
    const headers = [
      ["Via", `SIP/2.0/WSS ${this.viaHost};branch=${branch || "z9hG4bK" + rand(12)};rport`],
      ["Max-Forwards", "70"],
      ...(route || []).map((r) => ["Route", r]),
      ["From", `"${P.get("user")}" <${this.aor}>;tag=${this.tag}`],
      ["To", to],
      ["Call-ID", this.callId],
      ["CSeq", `${cseq} ${method}`],
    ];
    if (auth) headers.push(["Proxy-Authorization", auth]);
    if (method === "INVITE") {
      headers.push(["Contact", this.contact], ["Allow", "INVITE,ACK,CANCEL,BYE,OPTIONS"]);
    }
    headers.push(["User-Agent", P.get("agent")]);
    return compose(`${method} ${ruri} SIP/2.0`, headers, body);
  }
  // send a request, resolve with its final response (provisional ones are collected in R.sip)
  transaction(text, cseq, method) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method} ${cseq}: no final response`)), 15000);
      const w = (m) => {
        if (m.code && m.code >= 200 && m.get("cseq") === `${cseq} ${method}`) {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(w), 1);
          resolve(m);
        }
      };
      this.waiters.push(w);
      this.send(text);
    });
  }
}

function digest(challenge, method, uri) {
  const param = (k) => {
    const m = challenge.match(new RegExp(`${k}="?([^",]+)"?`));
    return m ? m[1] : null;
  };
  const realm = param("realm"), nonce = param("nonce"), qop = param("qop");
  const user = P.get("user"), pw = F.get("pw");
  const ha1 = md5(`${user}:${realm}:${pw}`);
  const ha2 = md5(`${method}:${uri}`);
  const cnonce = rand(16), nc = "00000001";
  const resp = qop ? md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
  let h = `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${resp}", algorithm=MD5`;
  if (qop) h += `, qop=auth, cnonce="${cnonce}", nc=${nc}`;
  return h;
}

async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((r) => {
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
  });
}

async function offer(pc, phase) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  R.offers.push({ phase, sdp: pc.localDescription.sdp });
  return pc.localDescription.sdp;
}

function uriOf(nameAddr) {
  const m = nameAddr.match(/<([^>]+)>/);
  return m ? m[1] : nameAddr.split(";")[0];
}

async function main() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "balanced", rtcpMuxPolicy: "require" });
  const tr = pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv", streams: [stream] });
  pc.ontrack = (ev) => { R.remoteTrack = ev.track.kind; };
  const ws = new WebSocket(P.get("ws"), "sip");
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("ws")); });
  R.wsProtocol = ws.protocol;
  const ua = new UA(ws);
  const target = P.get("target");
  let to = `<${target}>`;

  // initial INVITE: challenged (407), ACKed, re-sent with credentials
  let sdp = await offer(pc, "initial");
  let cseq = ++ua.cseq;
  let branch = "z9hG4bK" + rand(12);
  let res = await ua.transaction(ua.request("INVITE", target, { to, body: sdp, branch, cseq }), cseq, "INVITE");
  if (res.code === 407) {
    ua.send(ua.request("ACK", target, { to: res.get("to"), branch, cseq }));
    const auth = digest(res.get("proxy-authenticate"), "INVITE", target);
    cseq = ++ua.cseq;
    res = await ua.transaction(ua.request("INVITE", target, { to, body: sdp, cseq, auth }), cseq, "INVITE");
  }
  if (res.code !== 200) throw new Error(`INVITE answered ${res.start}`);
  to = res.get("to");
  const route = res.all("record-route").flatMap((v) => v.split(/,(?=\s*<)/).map((x) => x.trim())).reverse();
  const remote = uriOf(res.get("contact"));
  R.routeSet = route;
  R.remoteTarget = remote;
  await pc.setRemoteDescription({ type: "answer", sdp: res.body });
  R.offers[R.offers.length - 1].answer = res.body;
  ua.send(ua.request("ACK", remote, { to, route, cseq }));
  R.phases.push({ phase: "talk", t: Date.now() });
  await sleep(1000 * parseFloat(P.get("talk")));

  // hold and resume: re-INVITEs in the dialog
  for (const [phase, dir, secs] of [["hold", "sendonly", P.get("hold")], ["resume", "sendrecv", P.get("resume")]]) {
    tr.direction = dir;
    sdp = await offer(pc, phase);
    cseq = ++ua.cseq;
    res = await ua.transaction(ua.request("INVITE", remote, { to, body: sdp, cseq, route }), cseq, "INVITE");
    if (res.code !== 200) throw new Error(`re-INVITE (${phase}) answered ${res.start}`);
    await pc.setRemoteDescription({ type: "answer", sdp: res.body });
    R.offers[R.offers.length - 1].answer = res.body;
    ua.send(ua.request("ACK", remote, { to, route, cseq }));
    R.phases.push({ phase, t: Date.now() });
    await sleep(1000 * parseFloat(secs));
  }

  // stop sending so packetsSent is final, then read the stack's own counters
  await tr.sender.replaceTrack(null);
  await sleep(1500);
  const report = await pc.getStats();
  R.stats = [];
  report.forEach((s) => R.stats.push(s));
  R.localDescription = pc.currentLocalDescription && pc.currentLocalDescription.sdp;
  R.remoteDescription = pc.currentRemoteDescription && pc.currentRemoteDescription.sdp;
  cseq = ++ua.cseq;
  res = await ua.transaction(ua.request("BYE", remote, { to, cseq, route }), cseq, "BYE");
  R.bye = res.start;
  pc.close();
  await sleep(300);
  ws.close();
}

async function post() {
  await fetch("/result", { method: "POST", body: JSON.stringify(R) });
  document.getElementById("state").textContent = "done";
}

main().catch((e) => { R.errors.push(String(e && e.stack || e)); }).finally(post);
