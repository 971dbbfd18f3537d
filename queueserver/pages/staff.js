// Shared by the staff pages (console, desk): requests with one Idempotency-Key per intended action,
// the help-item list with 我来处理 / resolve, and the insistent tone for escalated items.
// Plain HTTP on a hospital LAN is an insecure origin: nothing here may need a secure context
// (no crypto.randomUUID); crypto.getRandomValues works everywhere.
"use strict";

function cfNewKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// One action = one key: a retry after a network failure sends the same key, so the server does it once.
async function cfRequest(token, method, path, body, key) {
  const headers = { "Authorization": "Bearer " + token };
  if (method !== "GET") headers["Idempotency-Key"] = key || cfNewKey();
  if (body) headers["Content-Type"] = "application/json";
  let lastError = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    let res;
    try {
      res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    } catch (e) { lastError = e; await new Promise((r) => setTimeout(r, 400 * (attempt + 1))); continue; }
    const data = await res.json().catch(() => ({ detail: T("The server answered {status}.", { status: res.status }) }));
    if (!res.ok) { const err = new Error(data.detail || ("Error " + res.status)); err.status = res.status; throw err; }
    return data;
  }
  const err = new Error(T("The server cannot be reached. Check the network and try again."));
  err.cause = lastError; throw err;
}

function cfAgo(seconds) {
  if (seconds < 60) return T("{n} s ago", { n: seconds });
  return T("{n} min ago", { n: Math.floor(seconds / 60) });
}

const CF_KIND = { help: N_("Help call"), red_flag: N_("Red flag"), long_wait: N_("Long wait") };
const CF_REASON = { help: N_("asks for staff"), red_flag: N_("red-flag symptom"), payment: N_("payment problem"),
                    printer: N_("printer problem"), other: N_("other"), long_wait: N_("waited past the limit") };

// Render help items into <ul>; onAnswer(item, "acknowledge"|"resolve", button) does the request.
function cfRenderHelp(ul, items, receivedAt, onAnswer, busy) {
  const since = Math.floor((Date.now() - receivedAt) / 1000);
  ul.replaceChildren(...items.map((it) => {
    const li = document.createElement("li");
    li.className = "help-item kind-" + it.kind + " status-" + it.status + (it.escalated ? " escalated" : "");
    li.dataset.help = it.help_id;
    const what = document.createElement("div"); what.className = "what";
    const where = it.device ? T("Kiosk {id}", { id: it.device }) : (it.room ? T("Room {id}", { id: it.room }) : T("Hall"));
    what.textContent = T(CF_KIND[it.kind] || it.kind) + " · " + where;
    const detail = document.createElement("div"); detail.className = "detail";
    const parts = [cfAgo(it.age_s + since), T(CF_REASON[it.reason] || it.reason)];
    if (it.ticket) parts.push(T("ticket {number}", { number: it.ticket }));
    if (it.kind !== "long_wait" && it.message) parts.push(it.message);  // the kiosk's words (red flags: the symptoms)
    else if (it.symptoms && it.symptoms.length) parts.push(T("symptoms: {list}", { list: it.symptoms.join(", ") }));
    if (it.escalated && it.status === "open") parts.push(T("nobody has answered yet"));
    if (it.acknowledged_by) parts.push(T("{who} is on the way", { who: it.acknowledged_by }));
    detail.textContent = parts.join(" · ");
    li.append(what, detail);
    const buttons = document.createElement("div");
    if (it.status === "open") {
      const ack = document.createElement("button"); ack.className = "danger ack";
      ack.textContent = T("I'll take it"); ack.disabled = !!busy[it.help_id];
      ack.onclick = () => onAnswer(it, "acknowledge", ack); buttons.append(ack);
    }
    const done = document.createElement("button"); done.className = "resolve";
    done.textContent = T("Resolved"); done.disabled = !!busy[it.help_id];
    done.onclick = () => onAnswer(it, "resolve", done); buttons.append(done);
    li.append(buttons);
    return li;
  }));
}

// The insistent tone: while any escalated item is unanswered, beep every 1.5 s (Web Audio; it starts
// once the page has had a touch or click, as browsers require).
const cfAlarm = { on: false, timer: null, ctx: null };
function cfSetAlarm(on) {
  document.body.dataset.alarm = on ? "on" : "off";
  const banner = document.getElementById("alarm");
  if (banner) banner.hidden = !on;
  if (on === cfAlarm.on) return;
  cfAlarm.on = on;
  clearInterval(cfAlarm.timer);
  if (on) { cfBeep(); cfAlarm.timer = setInterval(cfBeep, 1500); }
}
function cfBeep() {
  try {
    cfAlarm.ctx = cfAlarm.ctx || new (window.AudioContext || window.webkitAudioContext)();
    const ctx = cfAlarm.ctx;
    if (ctx.state === "suspended") ctx.resume();
    for (const [start, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = freq; gain.gain.value = 0.25;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(ctx.currentTime + start); osc.stop(ctx.currentTime + start + 0.2);
    }
    window.cfBeeps = (window.cfBeeps || 0) + 1;
  } catch (e) { /* no audio device: the banner and the flashing item remain */ }
}
document.addEventListener("pointerdown", () => { if (cfAlarm.ctx && cfAlarm.ctx.state === "suspended") cfAlarm.ctx.resume(); });
