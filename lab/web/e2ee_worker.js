// End-to-end encryption of encoded media frames for the rtcforensics capture lab (lab/web/call.js, e2ee=1).
//
// Runs as a dedicated worker. Frames reach it either through RTCRtpScriptTransform ("rtctransform" events) or,
// where only the older Chromium API exists, as the readable/writable pair of createEncodedStreams() posted by
// the page. Every frame is sealed with AES-128-GCM (WebCrypto), laid out like an SFrame ciphertext
// (RFC 9605 §4.3 header: config byte X|K|Y|C, then the counter):
//
//     [clear codec header: video only] [SFrame header: KID, CTR] [ciphertext] [16-byte tag]
//
// Audio frames are sealed whole. A video frame keeps its first bytes in clear (VP8 payload header: 10 bytes on
// key frames, 3 on delta frames) because the browsers' VP8 depacketizer reads the key-frame bit and the
// dimensions there; the clear bytes are authenticated as associated data. Keys: one per sender and media kind
// (KID 0 caller audio, 1 caller video, 2 callee audio, 3 callee video), each with a 96-bit salt, derived with
// HKDF-SHA-256 from the shared secret both pages hold; nonce = salt XOR counter. The receiver derives the key
// named by the KID in the header. Counters of what was done per side and kind are reported to the page.
"use strict";

const TAG_BYTES = 16;
const KID = {caller: {audio: 0, video: 1}, callee: {audio: 2, video: 3}};
let role = null;
let secretReady;
const secretPromise = new Promise((resolve) => { secretReady = resolve; });
const derived = new Map(); // kid -> Promise<{key, salt}>
const counters = new Map(); // kid -> next counter (sender side)
const stats = {}; // "send:audio" -> {...}

function bucket(side, kind) {
  const k = `${side}:${kind}`;
  if (!stats[k]) {
    stats[k] = {side, kind, frames: 0, bytes_in: 0, bytes_out: 0, failures: 0, passed_clear: 0,
                key_frames: 0, ssrcs: [], kids: [], first_error: null};
  }
  return stats[k];
}

function note(b, ssrc, kid) {
  if (ssrc !== undefined && ssrc !== null && !b.ssrcs.includes(ssrc)) b.ssrcs.push(ssrc);
  if (kid !== undefined && kid !== null && !b.kids.includes(kid)) b.kids.push(kid);
}

function keyFor(kid) {
  if (!derived.has(kid)) {
    derived.set(kid, (async () => {
      const secret = await secretPromise;
      const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey", "deriveBits"]);
      const info = (what) => new TextEncoder().encode(`rtcforensics-lab e2ee ${what} kid ${kid}`);
      const hkdf = (what) => ({name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: info(what)});
      const key = await crypto.subtle.deriveKey(hkdf("key"), ikm, {name: "AES-GCM", length: 128}, false,
                                                ["encrypt", "decrypt"]);
      const salt = new Uint8Array(await crypto.subtle.deriveBits(hkdf("salt"), ikm, 96));
      return {key, salt};
    })());
  }
  return derived.get(kid);
}

// RFC 9605 §4.3: config byte X(1) K(3) Y(1) C(3); KID < 8 inline in K; CTR < 8 inline in C, else C+1 bytes
function encodeHeader(kid, ctr) {
  if (kid > 7) throw new Error("KID > 7 not used here");
  if (ctr < 8) return new Uint8Array([(kid << 4) | ctr]);
  const bytes = [];
  for (let v = ctr; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return new Uint8Array([(kid << 4) | 0x08 | (bytes.length - 1), ...bytes]);
}

function decodeHeader(buf) {
  const cfg = buf[0];
  if (cfg & 0x80) throw new Error("extended KID not used here");
  const kid = (cfg >> 4) & 0x07;
  if (!(cfg & 0x08)) return {kid, ctr: cfg & 0x07, length: 1};
  const n = (cfg & 0x07) + 1;
  if (buf.length < 1 + n) throw new Error("short header");
  let ctr = 0;
  for (let i = 0; i < n; i++) ctr = ctr * 256 + buf[1 + i];
  return {kid, ctr, length: 1 + n};
}

function nonce(salt, ctr) {
  const iv = new Uint8Array(salt);
  let v = ctr;
  for (let i = 11; i >= 0 && v > 0; i--) {
    iv[i] ^= v % 256;
    v = Math.floor(v / 256);
  }
  return iv;
}

function clearBytes(kind, frame) {
  if (kind !== "video") return 0;
  return frame.type === "key" ? 10 : 3; // VP8 payload header (RFC 6386 §9.1: 3-byte tag, +7 on key frames)
}

function meta(frame) {
  try { return frame.getMetadata() || {}; } catch (e) { return {}; }
}

async function seal(kind, frame, controller) {
  await secretPromise; // the page posts the secret (and this side's role) before it attaches any transform
  const kid = KID[role][kind];
  const b = bucket("send", kind);
  const data = new Uint8Array(frame.data);
  note(b, meta(frame).synchronizationSource, kid);
  if (data.length === 0) { // nothing to protect (e.g. an empty frame)
    b.passed_clear++;
    controller.enqueue(frame);
    return;
  }
  const ctr = counters.get(kid) || 0;
  counters.set(kid, ctr + 1);
  const {key, salt} = await keyFor(kid);
  const clear = data.subarray(0, Math.min(clearBytes(kind, frame), data.length));
  const hdr = encodeHeader(kid, ctr);
  const aad = new Uint8Array(clear.length + hdr.length);
  aad.set(clear, 0);
  aad.set(hdr, clear.length);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
      {name: "AES-GCM", iv: nonce(salt, ctr), additionalData: aad, tagLength: TAG_BYTES * 8}, key,
      data.subarray(clear.length)));
  deliver(b, frame, data, aad, sealed, controller);
}

// Replace the frame's bytes by head ‖ body, count it, pass it on.
function deliver(b, frame, data, head, body, controller) {
  const outBuf = new Uint8Array(head.length + body.length);
  outBuf.set(head, 0);
  outBuf.set(body, head.length);
  frame.data = outBuf.buffer;
  b.frames++;
  b.bytes_in += data.length;
  b.bytes_out += outBuf.length;
  if (frame.type === "key") b.key_frames++;
  controller.enqueue(frame);
}

async function open(kind, frame, controller) {
  const b = bucket("receive", kind);
  const data = new Uint8Array(frame.data);
  note(b, meta(frame).synchronizationSource, null);
  if (data.length === 0) {
    b.passed_clear++;
    controller.enqueue(frame);
    return;
  }
  try {
    const n = Math.min(clearBytes(kind, frame), data.length);
    const h = decodeHeader(data.subarray(n));
    note(b, null, h.kid);
    const {key, salt} = await keyFor(h.kid);
    const aad = data.subarray(0, n + h.length);
    const plain = new Uint8Array(await crypto.subtle.decrypt(
        {name: "AES-GCM", iv: nonce(salt, h.ctr), additionalData: aad, tagLength: TAG_BYTES * 8}, key,
        data.subarray(n + h.length)));
    deliver(b, frame, data, data.subarray(0, n), plain, controller);
  } catch (e) {
    b.failures++; // a frame that does not open is dropped, as an E2EE receiver must
    if (!b.first_error) b.first_error = String(e && e.name || e);
  }
}

function attach(side, kind, readable, writable) {
  const fn = side === "send" ? seal : open;
  bucket(side, kind);
  readable
      .pipeThrough(new TransformStream({transform: (frame, controller) => fn(kind, frame, controller)}))
      .pipeTo(writable)
      .catch((e) => { bucket(side, kind).first_error = "pipe: " + String(e); });
}

self.onrtctransform = (event) => { // RTCRtpScriptTransform
  const t = event.transformer;
  attach(t.options.side, t.options.kind, t.readable, t.writable);
};

self.onmessage = (event) => {
  const m = event.data;
  if (m.type === "secret") {
    role = m.role;
    secretReady(new Uint8Array(m.secret));
  } else if (m.type === "streams") {
    attach(m.side, m.kind, m.readable, m.writable);
  } else if (m.type === "stats") {
    self.postMessage({type: "stats", stats: Object.values(stats)});
  }
};
