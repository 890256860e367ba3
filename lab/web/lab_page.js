// Helpers shared by the capture lab's self-driving pages (call.js, sfu_conference.js; loaded before them):
// a timestamped event log kept in the page's own `out.events` and shown in #log, JSON POSTs back to the page
// server, and getStats() as a plain list.
"use strict";

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
