"use strict";
// The managers' dashboard: plots are SVG drawn by the server, each with its numbers as a table and a CSV.
const T = {
  en: {title: "Hospital dashboard", login: "Enter a manager token.", open: "Open", from: "From", to: "To",
       department: "Department", all: "All departments", today: "Today", d7: "7 days", d30: "30 days", d90: "90 days",
       show: "Show", kiosk: "Self-service kiosks", compare: "Before and after", before: "Before", after: "After",
       compare_btn: "Compare", reports: "Weekly reports", make_report: "Make last week's report now", week: "Week",
       language: "Language", created: "Made", download: "Download PDF", csv: "Download CSV", numbers: "Numbers",
       loading: "Loading…", made: "Report written: ", none: "No reports yet.",
       arrivals: "Arrivals", median_wait_min: "Median wait (min)", p90_wait_min: "p90 wait (min)",
       long_waits: "Waits over {n} min", avg_service_min: "Service time (min)", no_shows: "No-shows", recalls: "Recalls",
       survey_avg: "Satisfaction (1-5)", survey_count: "Surveys", help_requests: "Help requests", red_flags: "Red flags",
       not_recorded: "not recorded",
       plot_departments: "Waits by department", plot_rooms: "Waits by room", plot_hours: "Arrivals and waits by hour of day",
       plot_days: "Waits day by day", plot_weeks: "Waits week by week", plot_survey: "Satisfaction by department",
       plot_kiosk: "Kiosk transactions by hour", plot_kiosk_kinds: "Kiosk transactions by kind",
       plot_abandoned: "Where patients gave up", plot_compare: "Before and after",
       share_checkin: "Check-ins at a kiosk: {k} of {t} ({p})", share_reg: "Registrations at a kiosk: {k}, at the desk: {d} ({p} at kiosks)",
       share_pay: "Payments at a kiosk: {k} (desk payments are not recorded by the hospital backend)",
       share_pay_recorded: "Bills paid at a kiosk: {k}, at the cash desk: {d} ({p} at kiosks)",
       advice: "{v} visits a day, {n} kiosks: {per} per kiosk against the rule of thumb of {rule}. {verdict}",
       advice_ok: "Enough kiosks.", advice_more: "{m} more kiosk(s) would bring each under {rule}.", advice_none: "No kiosk has reported in this range."},
  zh: {title: "医院运营看板", login: "请输入管理者令牌。", open: "打开", from: "起", to: "止",
       department: "科室", all: "全部科室", today: "今天", d7: "近7天", d30: "近30天", d90: "近90天",
       show: "查询", kiosk: "自助机", compare: "调整前后对比", before: "调整前", after: "调整后",
       compare_btn: "对比", reports: "周报", make_report: "立即生成上周周报", week: "周", language: "语言",
       created: "生成时间", download: "下载PDF", csv: "下载CSV", numbers: "数据表", loading: "加载中…", made: "周报已生成：",
       none: "暂无周报。",
       arrivals: "到达人数", median_wait_min: "等候中位数（分钟）", p90_wait_min: "90%等候（分钟）",
       long_waits: "等候超过{n}分钟", avg_service_min: "诊疗时长（分钟）", no_shows: "过号未到", recalls: "重呼次数",
       survey_avg: "满意度（1-5）", survey_count: "评价数", help_requests: "求助", red_flags: "危急症状", not_recorded: "未记录",
       plot_departments: "各科室等候时间", plot_rooms: "各诊室等候时间", plot_hours: "各时段到达人数与等候时间",
       plot_days: "每日等候时间趋势", plot_weeks: "每周等候时间趋势", plot_survey: "各科室满意度",
       plot_kiosk: "各时段自助机交易数", plot_kiosk_kinds: "自助机各类业务", plot_abandoned: "自助机中途放弃的页面",
       plot_compare: "调整前后对比",
       share_checkin: "自助机签到：{k}/{t}（{p}）", share_reg: "自助挂号：{k}，窗口挂号：{d}（自助占{p}）",
       share_pay: "自助缴费：{k}（医院系统未记录窗口缴费）",
       share_pay_recorded: "自助机缴费：{k}，收费窗口缴费：{d}（自助占{p}）",
       advice: "日均{v}人次，{n}台自助机：每台{per}人次（经验值{rule}）。{verdict}",
       advice_ok: "自助机数量充足。", advice_more: "建议增加{m}台，使每台不超过{rule}人次。", advice_none: "该时段没有自助机上报数据。"},
};
const QUEUE_PLOTS = ["departments", "rooms", "hours", "days", "weeks", "survey"];
const KIOSK_PLOTS = ["kiosk", "kiosk_kinds", "abandoned"];
const TABLE_ONLY = new Set(["kiosk_kinds"]);
const $ = (id) => document.getElementById(id);
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) { sessionStorage.setItem("clinicflow-dashboard-token", fragment.get("token")); history.replaceState(null, "", location.pathname + location.search); }
let token = sessionStorage.getItem("clinicflow-dashboard-token");
let lang = new URLSearchParams(location.search).get("lang") || localStorage.getItem("clinicflow-dashboard-lang") || "zh";
let figures = null, kiosk = null, generation = 0;
const blobs = [];

function t(key, vars) {
  let s = (T[lang] && T[lang][key]) || T.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
  return s;
}
function fmt(v) { return v === null || v === undefined ? "–" : String(v); }
function pct(v) { return v === null || v === undefined ? "–" : Math.round(v * 1000) / 10 + "%"; }

async function api(path, options) {
  const res = await fetch(path, {...(options || {}), headers: {"Authorization": "Bearer " + token, ...((options || {}).headers || {})}});
  if (res.status === 401) { sessionStorage.removeItem("clinicflow-dashboard-token"); showLogin(); throw new Error("token"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return res;
}
function params(extra) {
  const p = new URLSearchParams({first: $("first").value, last: $("last").value, lang: lang, ...(extra || {})});
  if ($("department").value) p.set("department", $("department").value);
  return p.toString();
}
function iso(d) { return d.toISOString().slice(0, 10); }
function setRange(days) {
  const end = new Date(); const start = new Date(end.getTime() - (days - 1) * 86400000);
  $("first").value = iso(start); $("last").value = iso(end);
}

function parseCsv(text) {
  const rows = []; let row = [], cell = "", quoted = false;
  text = text.replace(/^\ufeff/, "");
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n") { row.push(cell.replace(/\r$/, "")); rows.push(row); row = []; cell = ""; }
    else cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}
function tableFrom(rows) {
  const table = document.createElement("table");
  const thead = table.createTHead().insertRow();
  for (const h of rows[0] || []) { const th = document.createElement("th"); th.textContent = h; thead.appendChild(th); }
  const body = table.createTBody();
  for (const r of rows.slice(1)) { const tr = body.insertRow(); for (const v of r) tr.insertCell().textContent = v === "" ? "–" : v; }
  return table;
}

function plotBox(name, query) {
  const fig = document.createElement("figure"); fig.className = "plot"; fig.id = "plot-" + name;
  const h = document.createElement("h3"); h.textContent = t("plot_" + name); fig.appendChild(h);
  if (!TABLE_ONLY.has(name)) { const img = document.createElement("img"); img.alt = t("plot_" + name); fig.appendChild(img); }
  const details = document.createElement("details"); details.open = TABLE_ONLY.has(name);
  const summary = document.createElement("summary"); summary.textContent = t("numbers"); details.appendChild(summary);
  const scroll = document.createElement("div"); scroll.className = "scroll"; details.appendChild(scroll);
  fig.appendChild(details);
  const tools = document.createElement("div"); tools.className = "tools";
  const a = document.createElement("a"); a.textContent = t("csv"); a.className = "csv"; tools.appendChild(a);
  fig.appendChild(tools);
  fill(fig, name, query, generation);
  return fig;
}
async function fill(fig, name, query, gen) {
  try {
    const [svg, csv] = await Promise.all([
      TABLE_ONLY.has(name) ? null : api(`/api/v1/dashboard/plots/${name}.svg?${query}`).then((r) => r.blob()),
      api(`/api/v1/dashboard/tables/${name}.csv?${query}`).then((r) => r.text())]);
    if (gen !== generation) return;
    if (svg) { const url = URL.createObjectURL(svg); blobs.push(url); fig.querySelector("img").src = url; }
    fig.querySelector(".scroll").replaceChildren(tableFrom(parseCsv(csv)));
    const url = URL.createObjectURL(new Blob(["\ufeff" + csv.replace(/^\ufeff/, "")], {type: "text/csv"})); blobs.push(url);
    const a = fig.querySelector("a.csv"); a.href = url; a.download = `clinicflow-${name}-${$("first").value}-${$("last").value}.csv`;
  } catch (e) { if (e.message !== "token") $("message").textContent = e.message; }
}

function cards(total, help) {
  const box = $("cards"); box.replaceChildren();
  const items = [["arrivals", total.arrivals], ["median_wait_min", total.median_wait_min], ["p90_wait_min", total.p90_wait_min],
                 ["long_waits", total.long_waits], ["avg_service_min", total.avg_service_min], ["no_shows", total.no_shows],
                 ["recalls", total.recalls], ["survey_avg", total.survey_avg], ["survey_count", total.survey_count],
                 ["help_requests", help ? help.help_requests : t("not_recorded")], ["red_flags", help ? help.red_flags : t("not_recorded")]];
  for (const [k, v] of items) {
    const c = document.createElement("div"); c.className = "card"; c.id = "card-" + k;
    const val = document.createElement("div"); val.className = "v"; val.textContent = fmt(v);
    const key = document.createElement("div"); key.className = "k"; key.textContent = t(k, {n: figures.long_wait_min});
    c.append(val, key); box.appendChild(c);
  }
}
function kioskText(k) {
  const s = k.share, a = k.advice;
  const li = (text) => { const e = document.createElement("li"); e.textContent = text; return e; };
  $("kiosk-share").replaceChildren(
    li(t("share_checkin", {k: s.check_in_at_kiosk, t: s.check_in_tickets, p: pct(s.check_in_kiosk_share)})),
    li(t("share_reg", {k: s.registration_at_kiosk, d: s.registration_at_desk, p: pct(s.registration_kiosk_share)})),
    li(s.payments_recorded
      ? t("share_pay_recorded", {k: s.payments_paid_at_kiosk, d: s.payments_paid_at_desk, p: pct(s.payment_kiosk_share)})
      : t("share_pay", {k: s.payment_at_kiosk})));
  const verdict = !a.kiosks ? t("advice_none") : a.kiosks_needed > a.kiosks
    ? t("advice_more", {m: a.kiosks_needed - a.kiosks, rule: a.rule_of_thumb}) : t("advice_ok");
  $("kiosk-advice").textContent = a.kiosks ? t("advice", {v: a.visits_per_day, n: a.kiosks, per: a.visits_per_kiosk, rule: a.rule_of_thumb, verdict}) : verdict;
}

async function refresh() {
  generation++; $("message").textContent = t("loading");
  while (blobs.length) URL.revokeObjectURL(blobs.pop());
  try {
    const q = params();
    [figures, kiosk] = await Promise.all([
      api(`/api/v1/dashboard/queue?${q}`).then((r) => r.json()),
      api(`/api/v1/dashboard/kiosk?${params({department: ""})}`).then((r) => r.json())]);
    fillDepartments();
    cards(figures.total, figures.help);
    kioskText(kiosk);
    $("plots").replaceChildren(...QUEUE_PLOTS.map((n) => plotBox(n, q)));
    const kq = new URLSearchParams({first: $("first").value, last: $("last").value, lang}).toString();
    $("kiosk-plots").replaceChildren(...KIOSK_PLOTS.map((n) => plotBox(n, kq)));
    $("message").textContent = "";
    loadReports();
  } catch (e) { if (e.message !== "token") $("message").textContent = e.message; }
}
function fillDepartments() {
  const sel = $("department"); const keep = sel.value;
  const all = document.createElement("option"); all.value = ""; all.textContent = t("all");
  const opts = [all];
  for (const d of (sel.dataset.loaded ? JSON.parse(sel.dataset.loaded) : figures.departments)) {
    const o = document.createElement("option"); o.value = d.id; o.textContent = d.name[lang] || d.name.en || d.id; opts.push(o);
  }
  if (!sel.dataset.loaded && !figures.department) sel.dataset.loaded = JSON.stringify(figures.departments.map((d) => ({id: d.id, name: d.name})));
  sel.replaceChildren(...opts); sel.value = keep;
}
async function compare() {
  const p = new URLSearchParams({before: `${$("b-first").value}..${$("b-last").value}`, after: `${$("a-first").value}..${$("a-last").value}`, lang});
  if ($("department").value) p.set("department", $("department").value);
  generation++;
  $("compare-out").replaceChildren(plotBox("compare", p.toString()));
}
async function loadReports() {
  const list = await (await api("/api/v1/dashboard/reports")).json();
  const body = $("reports"); body.replaceChildren();
  if (!list.length) { const tr = body.insertRow(); const td = tr.insertCell(); td.colSpan = 4; td.textContent = t("none"); }
  for (const r of list) {
    const tr = body.insertRow();
    tr.insertCell().textContent = `${r.first_day} – ${r.last_day}`;
    tr.insertCell().textContent = r.language === "zh" ? "中文" : "English";
    tr.insertCell().textContent = new Date(r.created_at).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
    const b = document.createElement("button"); b.type = "button"; b.textContent = t("download");
    b.addEventListener("click", async () => {
      const blob = await (await api(r.url)).blob(); const a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = r.name; a.click(); setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    });
    tr.insertCell().appendChild(b);
  }
}
async function makeReport() {
  $("make-report").disabled = true;
  try {
    const r = await (await api("/api/v1/dashboard/reports", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({language: lang})})).json();
    $("message").textContent = t("made") + r.name; await loadReports();
  } catch (e) { if (e.message !== "token") $("message").textContent = e.message; }
  finally { $("make-report").disabled = false; }
}
function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = "clinicflow · " + t("title");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang-zh").setAttribute("aria-pressed", String(lang === "zh")); $("lang-en").setAttribute("aria-pressed", String(lang === "en"));
}
function setLanguage(l) { lang = l; localStorage.setItem("clinicflow-dashboard-lang", l); applyLanguage(); if (token) refresh(); }
function showLogin() { $("login").hidden = false; $("app").hidden = true; }
function start() {
  applyLanguage();
  $("lang-zh").addEventListener("click", () => setLanguage("zh"));
  $("lang-en").addEventListener("click", () => setLanguage("en"));
  $("token-save").addEventListener("click", () => { token = $("token-input").value.trim(); sessionStorage.setItem("clinicflow-dashboard-token", token); $("login").hidden = true; $("app").hidden = false; refresh(); });
  if (!token) { showLogin(); return; }
  $("app").hidden = false;
  const q = new URLSearchParams(location.search);
  if (q.get("first") && q.get("last")) { $("first").value = q.get("first"); $("last").value = q.get("last"); } else setRange(7);
  const b = new Date($("first").value), prevEnd = new Date(b.getTime() - 86400000), span = (new Date($("last").value) - b) / 86400000;
  $("a-first").value = $("first").value; $("a-last").value = $("last").value;
  $("b-last").value = iso(prevEnd); $("b-first").value = iso(new Date(prevEnd.getTime() - span * 86400000));
  for (const btn of document.querySelectorAll("[data-days]")) btn.addEventListener("click", () => { setRange(Number(btn.dataset.days)); refresh(); });
  $("refresh").addEventListener("click", refresh);
  $("department").addEventListener("change", refresh);
  $("compare").addEventListener("click", compare);
  $("make-report").addEventListener("click", makeReport);
  refresh();
}
start();
