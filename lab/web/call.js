// Self-driving WebRTC call for the rtcforensics capture lab (lab/scenarios/browsers.py); log/post/statsList from
// lab_page.js.
// URL parameters: role=caller|callee, room, seconds (media time after connect), messages (data channel count).
// Signalling: plain WebSocket ws://<page host>/ws/<room>/<role>, JSON {type, sdp} and trickled
// {candidate, sdpMid, sdpMLineIndex} ({candidate: null} at the end). Everything the browser itself reports
// (local/remote SDP, getStats(), userAgent, candidates, data-channel messages) is POSTed to /result/<room>/<role>.
// e2ee=1: every encoded audio/video frame is end-to-end encrypted by e2ee_worker.js (AES-GCM, SFrame-style header)
// with a secret both pages get in the URL fragment (#e2ee-secret=<base64url>, never sent to the server); the
// worker's per-kind frame counters are added to the result (the secret is not).
"use strict";

const params = new URLSearchParams(location.search);
const role = params.get("role");
const room = params.get("room") || "lab";
const seconds = Number(params.get("seconds") || "4");
const nMessages = Number(params.get("messages") || "3");
const out = {role, room, userAgent: navigator.userAgent, events: [], localCandidates: [], remoteCandidates: [],
             dcSent: [], dcReceived: [], errors: []};
let e2ee = null;

function startE2ee() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const b64 = (frag.get("e2ee-secret") || "").replace(/-/g, "+").replace(/_/g, "/");
  const secret = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  if (secret.length < 16) throw new Error("e2ee=1 needs #e2ee-secret=<at least 16 bytes, base64url>");
  const worker = new Worker("e2ee_worker.js");
  worker.postMessage({type: "secret", role, secret: secret.buffer});
  // createEncodedStreams(): fallback for Chromium builds without RTCRtpScriptTransform (the lab's Chromium 156 and
  // Firefox ESR 153 both have it)
  const api = typeof RTCRtpScriptTransform === "function" ? "RTCRtpScriptTransform" : "createEncodedStreams";
  const attach = (side, kind, senderOrReceiver) => {
    if (api === "RTCRtpScriptTransform") {
      senderOrReceiver.transform = new RTCRtpScriptTransform(worker, {side, kind});
    } else {
      const {readable, writable} = senderOrReceiver.createEncodedStreams();
      worker.postMessage({type: "streams", side, kind, readable, writable}, [readable, writable]);
    }
  };
  const stats = () => new Promise((resolve) => {
    worker.addEventListener("message", (e) => { if (e.data.type === "stats") resolve(e.data.stats); });
    worker.postMessage({type: "stats"});
  });
  return {api, secretBytes: secret.length, attach, stats, secureContext: window.isSecureContext};
}

async function main() {
  if (params.get("e2ee") === "1") e2ee = startE2ee();
  const media = await navigator.mediaDevices.getUserMedia(
      {audio: true, video: {width: 320, height: 240, frameRate: 15}});
  log("getUserMedia ok: " + media.getTracks().map((t) => t.kind + ":" + t.label).join(", "));
  const pc = new RTCPeerConnection(e2ee && e2ee.api === "createEncodedStreams"
                                   ? {iceServers: [], encodedInsertableStreams: true} : {iceServers: []});
  media.getTracks().forEach((t) => {
    const sender = pc.addTrack(t, media);
    if (e2ee) {
      // the transceiver addTrack made carries both directions (both pages add audio+video before negotiating):
      // its receiver gets the decrypting transform before any frame can arrive (Chromium 156 passed no frame to
      // a receive transform set later, in ontrack during setRemoteDescription(offer))
      const tr = pc.getTransceivers().find((x) => x.sender === sender);
      e2ee.attach("send", t.kind, sender);
      e2ee.attach("receive", t.kind, tr.receiver);
    }
  });
  if (e2ee) {
    pc.ontrack = (e) => {
      log("track " + e.track.kind + " mid " + e.transceiver.mid);
      if (e.track.kind !== "audio") return;
      // play the decrypted audio, so the receiver's inbound-rtp counts decoded samples (Chromium decodes remote
      // audio only for a sink)
      const sink = new Audio();
      sink.srcObject = new MediaStream([e.track]);
      sink.play().then(() => log("playing remote audio"), (err) => log("audio sink: " + err));
    };
  }
  const ws = new WebSocket(`ws://${location.host}/ws/${room}/${role}`);
  const wsOpen = new Promise((resolve) => { ws.onopen = resolve; });
  const send = async (obj) => { await wsOpen; ws.send(JSON.stringify(obj)); };

  let dc = null;
  let dcDone;
  const dcFinished = new Promise((resolve) => { dcDone = resolve; });
  const connected = new Promise((resolve) => {
    pc.onconnectionstatechange = () => {
      log("connectionState " + pc.connectionState);
      if (pc.connectionState === "connected") resolve();
    };
  });
  const gathered = new Promise((resolve) => {
    pc.onicecandidate = (e) => {
      if (e.candidate) {
        out.localCandidates.push(e.candidate.candidate);
        send({candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex});
      } else {
        send({candidate: null});
        resolve();
      }
    };
  });

  function wire(channel) {
    dc = channel;
    channel.onmessage = (e) => {
      out.dcReceived.push(e.data);
      if (role === "callee") {
        const reply = "echo: " + e.data;
        channel.send(reply);
        out.dcSent.push(reply);
      }
      if (out.dcReceived.length >= nMessages) dcDone();
    };
    channel.onopen = () => {
      log("datachannel open " + channel.label);
      if (role === "caller") {
        for (let i = 1; i <= nMessages; i++) {
          const m = `hello ${i} from ${role}`;
          channel.send(m);
          out.dcSent.push(m);
        }
      }
    };
  }
  if (role === "caller") wire(pc.createDataChannel("chat"));
  pc.ondatachannel = (e) => wire(e.channel);

  let peerDone;
  const peerFinished = new Promise((resolve) => { peerDone = resolve; });
  ws.onmessage = async (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "done") { peerDone(); return; }
    try {
      if (msg.type === "offer" || msg.type === "answer") {
        out.remoteDescription = {type: msg.type, sdp: msg.sdp};
        await pc.setRemoteDescription(msg);
        log("remote description " + msg.type);
        if (msg.type === "offer") {
          await pc.setLocalDescription(await pc.createAnswer());
          out.localDescriptionSent = {type: "answer", sdp: pc.localDescription.sdp};
          await send({type: "answer", sdp: pc.localDescription.sdp});
        }
      } else if ("candidate" in msg) {
        out.remoteCandidates.push(msg.candidate);
        if (msg.candidate) await pc.addIceCandidate(msg);
        else await pc.addIceCandidate(null);
      }
    } catch (err) {
      out.errors.push(String(err));
      log("error " + err);
    }
  };

  if (role === "caller") {
    await pc.setLocalDescription(await pc.createOffer());
    out.localDescriptionSent = {type: "offer", sdp: pc.localDescription.sdp};
    await send({type: "offer", sdp: pc.localDescription.sdp});
  }
  await connected;
  await Promise.race([dcFinished, new Promise((r) => setTimeout(r, 10000))]);
  await gathered;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  // stop sending media before reading the counters, so getStats() packetsSent is what crossed the wire
  for (const s of pc.getSenders()) await s.replaceTrack(null);
  await new Promise((r) => setTimeout(r, 1500));
  out.localDescription = {type: pc.localDescription.type, sdp: pc.localDescription.sdp};
  out.currentRemoteDescription = {type: pc.remoteDescription.type, sdp: pc.remoteDescription.sdp};
  out.stats = await statsList(pc);
  out.senders = pc.getSenders().map((s) => ({kind: s.track ? s.track.kind : null,
                                             params: s.getParameters()}));
  if (e2ee) {
    out.e2ee = {api: e2ee.api, secret_bytes: e2ee.secretBytes, secure_context: e2ee.secureContext,
                transforms: await e2ee.stats()};
  }
  log("stats collected");
  await post(`/result/${room}/${role}`, out);
  // wait for the other side's result before closing, so its counters are not disturbed
  await send({type: "done"});
  await Promise.race([peerFinished, new Promise((r) => setTimeout(r, 15000))]);
  pc.close();
  ws.close();
  await post(`/closed/${room}/${role}`, {events: out.events});
}

main().catch(async (err) => {
  out.errors.push(String(err && err.stack || err));
  await post(`/result/${room}/${role}`, out);
});
