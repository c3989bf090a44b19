// callpulse wallboard: live KPI tiles from the Server-Sent Events stream. No build step, no
// dependencies, no polling: figures arrive as `kpis` events, alerts as `alert` events.
// URL: /wallboard?queues=a,b&window=15m&access_token=T (docs/WALLBOARD.md).
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const config = {
    window: params.get("window") || "15m",
    queues: (params.get("queues") || "").split(",").map((q) => q.trim()).filter(Boolean),
    token: params.get("access_token") || "",
  };

  // --- colours: green / amber / red (docs/WALLBOARD.md has the table) -----------------------
  const SL_AMBER_POINTS = 0.1; // up to 10 points under the target is amber, further is red
  const ABANDON_AMBER = 0.05; // abandonment from 5 % is amber...
  const ABANDON_RED = 0.1; // ...and from 10 % red
  const EPSILON = 1e-9; // 0.7 must equal 0.8 - 0.1, which floating point does not

  const levels = {
    service_level(k) {
      if (k.service_level == null || k.service_level_target == null) return "none";
      if (k.service_level >= k.service_level_target - EPSILON) return "green";
      return k.service_level >= k.service_level_target - SL_AMBER_POINTS - EPSILON ? "amber" : "red";
    },
    abandon_rate(k) {
      if (k.abandon_rate == null) return "none";
      if (k.abandon_rate < ABANDON_AMBER - EPSILON) return "green";
      return k.abandon_rate < ABANDON_RED - EPSILON ? "amber" : "red";
    },
    // Waits against the queue's own threshold T: a call answered within T still meets it.
    longest_wait_s(k, waitS) {
      const t = k.service_level_threshold_s;
      if (waitS == null || t == null) return waitS == null ? "green" : "none";
      if (waitS <= t) return "green";
      return waitS <= 2 * t ? "amber" : "red";
    },
    // ASA above T/2 means many calls come close to the threshold; above T most miss it.
    asa_s(k) {
      const t = k.service_level_threshold_s;
      if (k.asa_s == null || t == null) return "none";
      if (k.asa_s <= t / 2) return "green";
      return k.asa_s <= t ? "amber" : "red";
    },
    calls_waiting(k) {
      const waiting = k.calls_waiting || 0;
      const agents = k.agents || {};
      if (waiting === 0 || waiting <= (agents.available || 0)) return "green";
      // No agent logged in: either nobody is there or the PBX sends no agent states; amber,
      // not red, so a centre without agent data is not red all day.
      if (!agents.logged_in) return "amber";
      return agents.available > 0 ? "amber" : "red";
    },
    agents_available(k) {
      const agents = k.agents || {};
      if ((agents.available || 0) > 0) return "green";
      if ((k.calls_waiting || 0) > 0) return "red";
      return agents.logged_in ? "amber" : "none";
    },
  };

  // --- formats --------------------------------------------------------------------------------
  const DASH = "\u2014";
  const format = {
    count: (v) => (v == null ? DASH : String(v)),
    percent: (v) => (v == null ? DASH : `${Math.round(v * 100)}%`),
    percent1: (v) => (v == null ? DASH : `${(Math.round(v * 1000) / 10).toFixed(1)}%`),
    duration(v) {
      if (v == null) return DASH;
      const s = Math.floor(v);
      if (s < 60) return `${s}s`;
      const m = Math.floor(s / 60);
      return `${m}:${String(s % 60).padStart(2, "0")}`;
    },
  };

  // A snapshot's longest wait is the oldest call's age when the server sent it; between
  // snapshots it keeps ageing, so the board adds the time since the snapshot arrived. Only
  // differences of this browser's clock are used: a skewed TV clock does not matter.
  let receivedMs = Date.now();
  function longestWaitNow(k, nowMs) {
    if (k.longest_wait_s == null) return null;
    return k.longest_wait_s + Math.max(0, nowMs - receivedMs) / 1000;
  }

  const TILES = [
    { kpi: "calls_waiting", label: "Calls waiting", value: (k) => k.calls_waiting, format: format.count },
    { kpi: "longest_wait_s", label: "Longest wait", value: longestWaitNow, format: format.duration },
    { kpi: "service_level", label: "Service level", value: (k) => k.service_level, format: format.percent },
    { kpi: "abandon_rate", label: "Abandoned", value: (k) => k.abandon_rate, format: format.percent1 },
    { kpi: "asa_s", label: "ASA", value: (k) => k.asa_s, format: format.duration },
    {
      kpi: "agents_available",
      label: "Agents available",
      value: (k) => (k.agents ? k.agents.available : null),
      format: format.count,
    },
  ];

  // --- rendering ------------------------------------------------------------------------------
  const board = document.getElementById("board");
  const rows = new Map(); // queue name ("" for the total) -> row element
  let latest = null; // the last `kpis` snapshot
  let snapshots = 0;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text; // text, never markup: names come from events
    return node;
  }

  function rowFor(key, title, isTotal) {
    let row = rows.get(key);
    if (row) return row;
    row = el("section", isTotal ? "row total" : "row");
    row.dataset.queue = key;
    row.appendChild(el("h2", "name", title));
    for (const tile of TILES) {
      const node = el("div", "tile");
      node.dataset.kpi = tile.kpi;
      node.dataset.level = "none";
      node.appendChild(el("span", "value", DASH));
      node.appendChild(el("span", "label", tile.label));
      row.appendChild(node);
    }
    rows.set(key, row);
    return row;
  }

  function fillRow(row, kpis, nowMs) {
    row.classList.toggle("no-data", kpis == null);
    for (const tile of TILES) {
      const node = row.querySelector(`[data-kpi="${tile.kpi}"]`);
      const value = kpis == null ? null : tile.value(kpis, nowMs);
      const text = tile.format(value);
      if (node.firstChild.textContent !== text) node.firstChild.textContent = text;
      node.dataset.level = kpis == null ? "none" : levels[tile.kpi](kpis, value);
      node.dataset.value = value == null ? "" : String(value);
      node.title = `${tile.label}: ${text}`;
    }
  }

  function render() {
    if (latest == null) return;
    const nowMs = Date.now();
    const byName = new Map(latest.queues.map((k) => [k.queue, k]));
    // The URL's order; a requested queue the API does not know still gets a row, so a typo
    // shows as an empty row instead of a silently missing one.
    const names = config.queues.length ? config.queues : latest.queues.map((k) => k.queue);
    const wanted = [];
    for (const name of names) {
      const row = rowFor(name, name, false);
      fillRow(row, byName.get(name) || null, nowMs);
      wanted.push(row);
    }
    // With chosen queues the stream's total is still the whole centre's: say so.
    const total = rowFor("", config.queues.length ? "Centre total" : "Total", true);
    fillRow(total, latest.total, nowMs);
    wanted.push(total);
    const current = Array.from(board.querySelectorAll(".row"));
    if (current.length !== wanted.length || current.some((row, i) => row !== wanted[i])) {
      board.replaceChildren(...wanted);
    }
    board.style.setProperty("--rows", String(wanted.length));
    markAlertingRows();
  }

  function onKpis(event) {
    latest = JSON.parse(event.data);
    receivedMs = Date.now();
    snapshots += 1;
    document.body.dataset.snapshots = String(snapshots);
    document.getElementById("window").textContent = `window ${latest.window}`;
    render();
  }

  // --- alerts ---------------------------------------------------------------------------------
  const alerts = new Map(); // key -> alert object, firing only
  const RESOLVED = new Set(["resolved", "cancelled", "inactive", "ok", "cleared"]);

  // Keyed by queue and rule: a rule has at most one active alert per queue.
  function alertKey(a) {
    return [a.queue, a.rule || a.name || a.alertname].join("|");
  }

  // GET /v1/alerts and the `alert` event may carry a list, an object holding one, or one alert.
  function alertItems(body) {
    if (Array.isArray(body)) return { full: true, items: body };
    for (const key of ["firing", "active", "alerts"]) {
      if (body && Array.isArray(body[key])) return { full: true, items: body[key] };
    }
    return { full: false, items: body ? [body] : [] };
  }

  function applyAlerts(body) {
    const { full, items } = alertItems(body);
    if (full) alerts.clear();
    for (const a of items) {
      const state = String(a.state || a.status || "firing").toLowerCase();
      if (RESOLVED.has(state) || state === "pending") alerts.delete(alertKey(a));
      else alerts.set(alertKey(a), a);
    }
    renderAlerts();
  }

  function renderAlerts() {
    const section = document.getElementById("alerts");
    const list = document.getElementById("alert-list");
    section.hidden = false;
    list.replaceChildren(
      ...Array.from(alerts.values()).map((a) => {
        const item = el("li", `alert severity-${String(a.severity || "warning").toLowerCase()}`);
        item.appendChild(el("strong", "alert-queue", a.queue || "centre"));
        item.appendChild(el("span", "alert-name", a.rule || a.name || a.alertname || "alert"));
        const text = a.summary || a.message || "";
        if (text) item.appendChild(el("span", "alert-text", text));
        const since = a.fired_at || a.since || a.activeAt;
        if (since) item.appendChild(el("span", "alert-since", `since ${clockText(Date.parse(since))}`));
        return item;
      }),
    );
    document.getElementById("no-alerts").hidden = alerts.size > 0;
    markAlertingRows();
  }

  function markAlertingRows() {
    const queues = new Set(Array.from(alerts.values()).map((a) => a.queue));
    for (const [name, row] of rows) row.classList.toggle("alerting", name !== "" && queues.has(name));
  }

  async function loadAlerts() {
    const headers = config.token ? { Authorization: `Bearer ${config.token}` } : {};
    try {
      const reply = await fetch(apiUrl("v1/alerts"), { headers, cache: "no-store" });
      if (reply.status === 404) return; // no alert engine in this API: the panel stays hidden
      if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
      applyAlerts(await reply.json());
    } catch (error) {
      document.getElementById("no-alerts").textContent = `Alerts unavailable (${error.message})`;
      document.getElementById("alerts").hidden = false;
    }
  }

  // --- connection -----------------------------------------------------------------------------
  // Relative to the page, so a prefix in front of callpulse (a proxy path) is kept.
  function apiUrl(path, query) {
    const url = new URL(path, document.baseURI);
    for (const [key, value] of Object.entries(query || {})) if (value) url.searchParams.set(key, value);
    return url.toString();
  }

  const STALE_AFTER_MS = 10000; // figures older than this without a connection are dimmed
  let retryMs = 1000;
  let staleTimer = null;

  function setConnection(state, text) {
    const node = document.getElementById("connection");
    node.dataset.state = state;
    node.textContent = text;
    if (state === "live") {
      clearTimeout(staleTimer);
      staleTimer = null;
      board.classList.remove("stale");
    } else if (staleTimer == null) {
      staleTimer = setTimeout(() => board.classList.add("stale"), STALE_AFTER_MS);
    }
  }

  function connect() {
    // EventSource cannot send headers: the stream takes the token as `access_token`.
    const source = new EventSource(
      apiUrl("v1/stream", {
        window: config.window,
        queues: config.queues.join(","),
        access_token: config.token,
      }),
    );
    source.addEventListener("kpis", onKpis);
    source.addEventListener("alert", (event) => applyAlerts(JSON.parse(event.data)));
    source.addEventListener("open", () => {
      retryMs = 1000;
      setConnection("live", "live");
      loadAlerts(); // catch up on alert changes missed while disconnected
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection("reconnecting", "reconnecting…"); // the browser retries by itself
        return;
      }
      // An HTTP error (401, 502 from a proxy, ...) closes an EventSource for good: retry with
      // a growing delay, or a wallboard would stay frozen after a restart.
      setConnection("down", "connection lost");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    });
  }

  function clockText(ms) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    return new Date(ms).toLocaleTimeString([], options);
  }

  function tick() {
    document.getElementById("clock").textContent = clockText(Date.now());
    render(); // the longest wait ages every second without a new snapshot
  }

  document.getElementById("window").textContent = `window ${config.window}`;
  tick();
  setInterval(tick, 1000);
  connect();

  // For the browser tests and for anyone debugging a board from the console.
  window.callpulseWallboard = { config, levels, format, longestWaitNow, alerts };
})();
