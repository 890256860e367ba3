// Self-driving WebRTC call for the rtcforensics capture lab (lab/scenarios/browsers.py).
// URL parameters: role=caller|callee, room, seconds (media time after connect), messages (data channel count).
// Signalling: plain WebSocket ws://<page host>/ws/<room>/<role>, JSON {type, sdp} and trickled
// {candidate, sdpMid, sdpMLineIndex} ({candidate: null} at the end). Everything the browser itself reports
// (local/remote SDP, getStats(), userAgent, candidates, data-channel messages) is POSTed to /result/<room>/<role>.
"use strict";

const params = new URLSearchParams(location.search);
const role = params.get("role");
const room = params.get("room") || "lab";
const seconds = Number(params.get("seconds") || "4");
const nMessages = Number(params.get("messages") || "3");
const out = {role, room, userAgent: navigator.userAgent, events: [], localCandidates: [], remoteCandidates: [],
             dcSent: [], dcReceived: [], errors: []};
const t0 = performance.now();

function log(what) {
  const line = `${((performance.now() - t0) / 1000).toFixed(3)} ${what}`;
  out.events.push(line);
  document.getElementById("log").textContent += line + "\n";
}

async function post(path, body) {
  await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

async function statsList(pc) {
  const report = await pc.getStats();
  const rows = [];
  report.forEach((s) => rows.push(s));
  return rows;
}

async function main() {
  const media = await navigator.mediaDevices.getUserMedia(
      {audio: true, video: {width: 320, height: 240, frameRate: 15}});
  log("getUserMedia ok: " + media.getTracks().map((t) => t.kind + ":" + t.label).join(", "));
  const pc = new RTCPeerConnection({iceServers: []});
  media.getTracks().forEach((t) => pc.addTrack(t, media));
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
