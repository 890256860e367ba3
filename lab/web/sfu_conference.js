// Self-driving Janus VideoRoom participant for the rtcforensics capture lab (lab/scenarios/sfu_conference.py).
// Plain JS against Janus's WebSocket API (subprotocol "janus-protocol"), no janus.js; log/post/statsList from
// lab_page.js.
// URL parameters: name, janus (ws://host:port), room, feeds (how many other publishers to subscribe to).
// Flow: create session, attach videoroom as publisher, join, publish audio+video (offer, non-trickle), POST
// /published/<name>, then one subscriber handle (its own PeerConnection) per other publisher. When everything is
// connected the page POSTs /ready/<name> and long-polls /wait/stop; then it stops its senders (encodings inactive,
// replaceTrack(null)), waits, takes getStats() of every PeerConnection and POSTs /result/<name>; long-polls
// /wait/leave; leaves, closes, POSTs /closed/<name>.
"use strict";

const params = new URLSearchParams(location.search);
const me = params.get("name");
const janusUrl = params.get("janus");
const room = Number(params.get("room") || "1234");
const expectFeeds = Number(params.get("feeds") || "2");
const out = {name: me, userAgent: navigator.userAgent, events: [], errors: [], publisher: null, subscribers: []};

// ---------------------------------------------------------------------------------------------------- Janus API
let ws;
let sessionId = null;
let txn = 0;
const pending = new Map(); // transaction -> {resolve, reject, wantEvent}
const onEvent = new Map(); // handle id -> callback for events without a pending transaction

function connect() {
  return new Promise((resolve, reject) => {
    ws = new WebSocket(janusUrl, "janus-protocol");
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      const p = msg.transaction && pending.get(msg.transaction);
      if (p) {
        if (msg.janus === "ack" && p.wantEvent) return;
        pending.delete(msg.transaction);
        if (msg.janus === "error") p.reject(new Error(JSON.stringify(msg.error)));
        else if (msg.plugindata && msg.plugindata.data && msg.plugindata.data.error) {
          p.reject(new Error(msg.plugindata.data.error));
        } else p.resolve(msg);
        return;
      }
      if (msg.janus === "ack") return;
      log(`janus ${msg.janus} sender=${msg.sender || ""}` +
          (msg.plugindata ? " " + JSON.stringify(msg.plugindata.data).slice(0, 200) : ""));
      const cb = msg.sender && onEvent.get(msg.sender);
      if (cb) cb(msg);
    };
  });
}

function request(body, wantEvent = false) {
  body.transaction = `${me}-${++txn}`;
  if (sessionId !== null && body.janus !== "create") body.session_id = sessionId;
  return new Promise((resolve, reject) => {
    pending.set(body.transaction, {resolve, reject, wantEvent});
    ws.send(JSON.stringify(body));
  });
}

async function attach() {
  const r = await request({janus: "attach", plugin: "janus.plugin.videoroom"});
  return r.data.id;
}

function message(handle, body, jsep) {
  const m = {janus: "message", handle_id: handle, body};
  if (jsep) m.jsep = jsep;
  return request(m, true);
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

function connectedPc(pc, label) {
  return new Promise((resolve) => {
    const check = () => {
      log(`${label} connectionState ${pc.connectionState}`);
      if (pc.connectionState === "connected") resolve();
    };
    pc.addEventListener("connectionstatechange", check);
  });
}

// ------------------------------------------------------------------------------------------ publish / subscribe
const subs = new Map(); // feed id -> {handle, pc, ...}
let subscribedAll;
const allSubscribed = new Promise((resolve) => { subscribedAll = resolve; });

async function subscribe(feed) {
  if (subs.has(feed.id) || subs.size >= expectFeeds) return;
  const entry = {feed: feed.id, display: feed.display, handle: null, pc: null};
  subs.set(feed.id, entry);
  entry.handle = await attach();
  const r = await message(entry.handle, {request: "join", ptype: "subscriber", room, streams: [{feed: feed.id}]});
  const pc = new RTCPeerConnection({iceServers: []});
  entry.pc = pc;
  const up = connectedPc(pc, `sub ${feed.display}`);
  pc.ontrack = (e) => {
    if (e.track.kind !== "audio") return;
    const sink = new Audio();
    sink.srcObject = new MediaStream([e.track]);
    sink.play().catch(() => {});
  };
  entry.remoteOffer = r.jsep.sdp;
  await pc.setRemoteDescription(r.jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  entry.localAnswer = pc.localDescription.sdp;
  await message(entry.handle, {request: "start", room}, {type: "answer", sdp: pc.localDescription.sdp, trickle: false});
  await up;
  log(`subscribed to ${feed.display} (feed ${feed.id}, handle ${entry.handle})`);
  if ([...subs.values()].filter((s) => s.pc && s.pc.connectionState === "connected").length >= expectFeeds) {
    subscribedAll();
  }
}

function noteFeeds(list) {
  for (const f of list || []) subscribe(f).catch((err) => { out.errors.push(String(err)); log("ERROR " + err); });
}

async function main() {
  const media = await navigator.mediaDevices.getUserMedia(
      {audio: true, video: {width: 160, height: 120, frameRate: 8}});
  log("getUserMedia ok: " + media.getTracks().map((t) => t.kind).join(", "));
  await connect();
  sessionId = (await request({janus: "create"})).data.id;
  const keepalive = setInterval(() => request({janus: "keepalive"}).catch(() => {}), 15000);
  const pubHandle = await attach();
  onEvent.set(pubHandle, (msg) => {
    if (msg.plugindata && msg.plugindata.data) noteFeeds(msg.plugindata.data.publishers);
  });
  const joined = await message(pubHandle, {request: "join", ptype: "publisher", room, display: me});
  const myId = joined.plugindata.data.id;
  log(`joined room ${room} as ${myId}`);
  const pc = new RTCPeerConnection({iceServers: []});
  const senders = media.getTracks().map((t) => pc.addTrack(t, media));
  for (const s of senders) {
    if (s.track.kind !== "video") continue;
    const p = s.getParameters();
    if (!p.encodings || !p.encodings.length) p.encodings = [{}];
    p.encodings[0].maxBitrate = 48000;
    await s.setParameters(p).catch((err) => log("setParameters: " + err));
  }
  const up = connectedPc(pc, "pub");
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const localOffer = pc.localDescription.sdp;
  const conf = await message(pubHandle, {request: "configure", audio: true, video: true},
                             {type: "offer", sdp: localOffer, trickle: false});
  await pc.setRemoteDescription(conf.jsep);
  await up;
  log("publishing");
  out.publisher = {id: myId, handle: pubHandle, localOffer, remoteAnswer: conf.jsep.sdp};
  await post(`/published/${me}`, {id: myId});
  noteFeeds(joined.plugindata.data.publishers);
  await allSubscribed;
  await post(`/ready/${me}`, {session: sessionId});
  await fetch("/wait/stop");
  // stop every RTP stream for good: inactive encodings (a null video track still sends a frame a second)
  for (const s of senders) {
    const p = s.getParameters();
    for (const e of p.encodings || []) e.active = false;
    await s.setParameters(p).catch((err) => log("setParameters(active=false): " + err));
    await s.replaceTrack(null);
  }
  log("senders stopped");
  await new Promise((r) => setTimeout(r, 2000));
  out.sessionId = sessionId;
  out.publisher.stats = await statsList(pc);
  for (const s of subs.values()) {
    out.subscribers.push({feed: s.feed, display: s.display, handle: s.handle, remoteOffer: s.remoteOffer,
                          localAnswer: s.localAnswer, stats: await statsList(s.pc)});
  }
  await post(`/result/${me}`, out);
  await fetch("/wait/leave");
  for (const s of subs.values()) {
    await message(s.handle, {request: "leave"}).catch(() => {});
    s.pc.close();
  }
  await message(pubHandle, {request: "leave"}).catch(() => {});
  pc.close();
  clearInterval(keepalive);
  await request({janus: "destroy"}).catch(() => {});
  ws.close();
  log("left");
  await post(`/closed/${me}`, {events: out.events});
}

main().catch(async (err) => {
  out.errors.push(String(err && err.stack || err));
  log("ERROR " + err);
  await post(`/result/${me}`, out);
});
