// photostore operator dashboard: sign in with the admin token, then poll /v1/admin/stats.
//
// The token stays in sessionStorage (this tab only). Each poll replaces the cards, bars and tables;
// the line charts keep their series here, one point per poll, computed from the growth of the
// process's counters between two polls (requests/s, cache hit ratio, latency quantiles of the
// interval: the way `photostore top` reads /metrics). Every text from the server goes in through
// textContent, never as HTML.
(function () {
  "use strict";

  const TOKEN_KEY = "photostore.adminToken";
  const STATS_URL = "/v1/admin/stats";
  const REFRESH_MS = 5000;
  const HISTORY = 180; // points kept per line chart: 15 minutes at one poll per 5 s
  const CHART_HEIGHT = 220;

  const $ = (id) => document.getElementById(id);

  let timer = null;
  let previous = null; // the last stats document, for rates over the interval
  const charts = {};
  const history = { t: [], ratio: [], rps: [], p50: [], p95: [], p99: [] };

  // --- formatting ------------------------------------------------------------------------------

  function integer(value) {
    return value === null || value === undefined ? "?" : String(Math.round(value));
  }

  function bytes(value) {
    if (value === null || value === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(size) : size.toFixed(size < 10 ? 2 : 1)) + " " + units[unit];
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(1) + " %";
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return (value < 10 ? value.toFixed(2) : value.toFixed(0)) + " ms";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- signing in and polling ------------------------------------------------------------------

  async function fetchStats(token) {
    const response = await fetch(STATS_URL, {
      headers: { authorization: "Bearer " + token, accept: "application/json" },
      cache: "no-store",
    });
    if (response.ok) return response.json();
    let detail = "the server answered " + response.status;
    try {
      const problem = await response.json();
      if (problem && problem.detail) detail = problem.detail;
    } catch (_) {
      // not JSON: keep the status
    }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }

  function showSignIn(message) {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    $("dashboard").hidden = true;
    $("admin-sign-out").hidden = true;
    $("sign-in").hidden = false;
    const error = $("sign-in-error");
    error.textContent = message || "";
    error.hidden = !message;
    setStatus("");
    $("admin-token").focus();
  }

  function showDashboard() {
    $("sign-in").hidden = true;
    $("sign-in-error").hidden = true;
    $("dashboard").hidden = false;
    $("admin-sign-out").hidden = false;
    makeCharts();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $("admin-token").value.trim();
    const error = $("sign-in-error");
    if (!token) {
      error.textContent = "enter the admin token";
      error.hidden = false;
      return;
    }
    const button = $("admin-sign-in");
    button.disabled = true;
    try {
      const stats = await fetchStats(token);
      sessionStorage.setItem(TOKEN_KEY, token);
      $("admin-token").value = "";
      previous = null;
      showDashboard();
      render(stats);
      schedule();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    previous = null;
    showSignIn("");
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, REFRESH_MS);
  }

  async function poll() {
    timer = null;
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showSignIn("");
      return;
    }
    if (document.hidden) {
      schedule(); // no requests from a tab nobody looks at; visibilitychange polls on return
      return;
    }
    try {
      render(await fetchStats(token));
    } catch (failure) {
      if (failure.status === 401 || failure.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        showSignIn(failure.message);
        return;
      }
      setStatus("refresh failed: " + failure.message + " (showing the last figures)", "failed");
    }
    schedule();
  }

  function setStatus(text, kind) {
    const status = $("status");
    status.textContent = text;
    status.className = kind || "";
  }

  // --- rendering -------------------------------------------------------------------------------

  function render(stats) {
    const at = Date.parse(stats.generated_at) / 1000;
    const interval = intervalFigures(previous, stats, at);
    previous = { stats: stats, at: at };
    renderCards(stats, interval);
    renderShards(stats.shards);
    renderBuckets(stats.buckets, stats.shards.bucket_map_version);
    renderTopics(stats.topics);
    renderRegions(stats.regions);
    renderRoutes(stats.requests);
    pushHistory(at, interval);
    $("process").textContent =
      "figures of process " + stats.process.service + " (region " + stats.process.region + ")" +
      "; requests, latency, uploads and cache since it started";
    const when = new Date(at * 1000).toLocaleTimeString();
    setStatus("updated " + when + " · gathered in " + stats.elapsed_ms + " ms");
  }

  function quantile(q, buckets) {
    // Prometheus' histogram_quantile over cumulative [upper bound, count] pairs, bounds ascending.
    if (!buckets.length) return null;
    const total = buckets[buckets.length - 1][1];
    if (total <= 0) return null;
    const rank = q * total;
    let lowerBound = 0;
    let lowerCount = 0;
    for (const [bound, count] of buckets) {
      if (count >= rank) {
        if (!isFinite(bound)) return lowerBound;
        const width = count - lowerCount;
        return lowerBound + (bound - lowerBound) * (width ? (rank - lowerCount) / width : 1);
      }
      lowerBound = bound;
      lowerCount = count;
    }
    return lowerBound;
  }

  function bucketCounts(stats) {
    return stats.requests.latency.buckets.map(([le, count]) => [
      le === "+Inf" ? Infinity : Number(le),
      count,
    ]);
  }

  function intervalFigures(before, stats, at) {
    const figures = { rps: null, ratio: null, p50: null, p95: null, p99: null };
    if (!before || at <= before.at) return figures;
    const seconds = at - before.at;
    const earlier = before.stats;
    const requests = stats.requests.total - earlier.requests.total;
    if (requests < 0) return figures; // the process restarted
    figures.rps = requests / seconds;
    const hits = stats.cache.hits - earlier.cache.hits;
    const misses = stats.cache.misses - earlier.cache.misses;
    figures.ratio = hits + misses > 0 ? hits / (hits + misses) : null;
    const old = new Map(bucketCounts(earlier).map(([bound, count]) => [bound, count]));
    const grown = bucketCounts(stats).map(([bound, count]) => [
      bound,
      Math.max(0, count - (old.get(bound) || 0)),
    ]);
    for (const [name, q] of [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]]) {
      const seconds_ = quantile(q, grown);
      figures[name] = seconds_ === null ? null : seconds_ * 1000;
    }
    return figures;
  }

  function renderCards(stats, interval) {
    const totals = stats.shards.totals;
    $("stat-users").textContent = totals ? integer(totals.users) : "?";
    $("stat-photos").textContent = totals ? integer(totals.photos) : "?";
    $("stat-bytes").textContent = totals ? bytes(totals.bytes) : "?";
    $("stat-uploads").textContent = String(stats.uploads.created);
    $("stat-deduplicated").textContent = String(stats.uploads.deduplicated);
    $("stat-cache").textContent = percent(stats.cache.hit_ratio);
    $("stat-rps").textContent = interval.rps === null ? "–" : interval.rps.toFixed(1);
    $("stat-p99").textContent = ms(interval.p99 !== null ? interval.p99 : stats.requests.latency.p99_ms);
  }

  function sectionError(name, data) {
    const box = $(name + "-error");
    box.textContent = data.error || "";
    box.hidden = !data.error;
  }

  function renderBars(name, rows, empty) {
    // rows: [{label, value, text, className, failed}]; bars are scaled to the largest value.
    const box = $("bars-" + name);
    const largest = Math.max(1, ...rows.map((row) => row.value || 0));
    const nodes = rows.map((row) => {
      const line = element("div", "bar-row" + (row.failed ? " failed" : ""));
      line.title = row.title || row.label + ": " + row.text;
      const track = element("div", "bar-track");
      const fill = element("div", "bar-fill" + (row.className ? " " + row.className : ""));
      fill.style.width = ((100 * (row.value || 0)) / largest).toFixed(2) + "%";
      track.append(fill);
      line.append(element("span", "bar-label", row.label), track, element("span", "bar-value", row.text));
      return line;
    });
    if (!nodes.length) nodes.push(element("p", "empty", empty));
    box.replaceChildren(...nodes);
  }

  function renderShards(shards) {
    sectionError("shards", shards);
    const note =
      "map v" + shards.shard_map_version + ", routing v" + shards.routing_version +
      (shards.totals ? ", users: " + integer(shards.totals.users) : "");
    $("shards-note").textContent = note;
    renderBars(
      "shards",
      shards.items.map((s) => ({
        label: "shard " + s.shard,
        value: s.photos,
        text: integer(s.photos),
        title: "shard " + s.shard + ": " + s.photos + " photos, " + s.users + " users, " + bytes(s.bytes),
      })),
      "no shard figures",
    );
  }

  function renderBuckets(buckets, mapVersion) {
    sectionError("buckets", buckets);
    $("buckets-note").textContent =
      "map v" + mapVersion +
      (buckets.age_s ? ", listed " + Math.round(buckets.age_s) + " s ago" : "");
    renderBars(
      "buckets",
      buckets.items.map((b) => ({
        label: b.bucket + (b.tier === "cold" ? " (cold)" : ""),
        value: b.bytes,
        text: b.error ? "error" : bytes(b.bytes),
        className: b.tier === "cold" ? "cold" : "",
        failed: Boolean(b.error),
        title: b.error ? b.bucket + ": " + b.error : b.bucket + ": " + b.objects + " objects, " + bytes(b.bytes),
      })),
      "no buckets",
    );
  }

  function renderTopics(topics) {
    // One column chart per topic and group: a column per partition, its height the partition's lag.
    sectionError("topics", topics);
    const total = topics.items.reduce((sum, t) => sum + t.groups.reduce((s, g) => s + g.total, 0), 0);
    $("topics-note").textContent = "total lag " + total;
    const largest = Math.max(1, ...topics.items.flatMap((t) => t.groups.map((g) => g.max)));
    const blocks = [];
    for (const topic of topics.items) {
      for (const group of topic.groups) {
        const block = element("div", "lag-topic");
        const head = element("div", "lag-head");
        head.append(
          element("span", "lag-name", topic.topic + " · " + group.group),
          element(
            "span",
            "lag-summary" + (group.total > 0 ? " lagging" : ""),
            "lag " + group.total + ", max " + group.max + " · " + topic.partitions + " partitions",
          ),
        );
        const columns = element("div", "lag-columns");
        columns.setAttribute("role", "img");
        columns.setAttribute("aria-label", "lag of " + group.group + " per partition of " + topic.topic);
        group.lag.forEach((lag, partition) => {
          const column = element("div", "lag-col" + (lag > 0 ? " lagging" : ""));
          column.style.height = (lag > 0 ? Math.max(4, (100 * lag) / largest) : 2).toFixed(1) + "%";
          column.title = topic.topic + "/" + partition + " (" + group.group + "): " + lag + " behind";
          columns.append(column);
        });
        block.append(head, columns);
        blocks.push(block);
      }
    }
    if (!blocks.length) blocks.push(element("p", "empty", "no topics"));
    $("bars-topics").replaceChildren(...blocks);
  }

  function renderRegions(regions) {
    sectionError("regions", regions);
    $("regions-note").textContent = regions.items.length ? "" : "no regions configured";
    $("regions-table").hidden = !regions.items.length;
    const rows = regions.items.map((region) => {
      const row = element("tr");
      row.append(element("td", "", region.name + (region.local ? " (this process)" : "")));
      row.append(element("td", "", region.role));
      const health = element("td");
      health.append(element("span", "badge " + (region.healthy ? "healthy" : "down"), region.healthy ? "healthy" : "down"));
      row.append(health);
      const endpoints = element("td");
      for (const endpoint of region.endpoints) {
        const latency = endpoint.latency_ms === null ? "" : ", " + endpoint.latency_ms + " ms";
        endpoints.append(
          element("span", "endpoint" + (endpoint.healthy ? "" : " down"), endpoint.url + ": " + endpoint.reason + latency),
        );
      }
      row.append(endpoints);
      return row;
    });
    $("regions-body").replaceChildren(...rows);
  }

  function renderRoutes(requests) {
    const rows = Object.entries(requests.by_route).map(([route, classes]) => {
      const row = element("tr");
      row.append(element("td", "", route));
      for (const name of ["2xx", "3xx", "4xx", "5xx"]) row.append(element("td", "", integer(classes[name] || 0)));
      const latency = requests.latency_by_route[route] || {};
      row.append(element("td", "", latency.p50_ms === undefined ? "–" : ms(latency.p50_ms).replace(" ms", "")));
      row.append(element("td", "", latency.p99_ms === undefined ? "–" : ms(latency.p99_ms).replace(" ms", "")));
      return row;
    });
    $("routes-body").replaceChildren(...rows);
  }

  // --- line charts (uPlot) -----------------------------------------------------------------------

  // Until two refreshes have come there is no interval to plot: the charts show the last five
  // minutes, empty (uPlot would otherwise pick an arbitrary span of years for a chart with no data).
  function padded(columns) {
    const times = columns[0];
    if (times.length >= 2) return columns;
    const now = times.length ? times[times.length - 1] : Date.now() / 1000;
    return [[now - 300, now], ...columns.slice(1).map(() => [null, null])];
  }

  function makeChart(id, series, yRange, format) {
    const box = $(id);
    const options = {
      width: Math.max(280, box.clientWidth),
      height: CHART_HEIGHT,
      scales: { x: { time: true }, y: yRange ? { range: yRange } : { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1] } },
      axes: [{}, { size: 60, values: (u, ticks) => ticks.map(format) }],
      cursor: { drag: { x: false, y: false } },
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          points: { show: false },
          value: (u, v) => (v === null || v === undefined ? "–" : format(v)),
        })),
      ],
    };
    const chart = new uPlot(options, padded([[], ...series.map(() => [])]), box);
    new ResizeObserver(() => chart.setSize({ width: Math.max(280, box.clientWidth), height: CHART_HEIGHT })).observe(box);
    return chart;
  }

  function makeCharts() {
    if (charts.made || typeof uPlot === "undefined") return;
    charts.made = true;
    charts.cache = makeChart("chart-cache", [{ label: "hit ratio", color: "#1f9d55" }], [0, 1], (v) =>
      (v * 100).toFixed(0) + "%",
    );
    charts.rps = makeChart("chart-rps", [{ label: "requests/s", color: "#2f6fde" }], null, (v) => v.toFixed(1));
    charts.latency = makeChart(
      "chart-latency",
      [
        { label: "p50", color: "#1f9d55" },
        { label: "p95", color: "#b7791f" },
        { label: "p99", color: "#d64545" },
      ],
      null,
      (v) => (v < 10 ? v.toFixed(1) : v.toFixed(0)),
    );
  }

  function pushHistory(at, interval) {
    history.t.push(at);
    for (const name of ["ratio", "rps", "p50", "p95", "p99"]) history[name].push(interval[name]);
    if (history.t.length > HISTORY) {
      for (const key of Object.keys(history)) history[key].shift();
    }
    if (!charts.made) return;
    charts.cache.setData(padded([history.t, history.ratio]));
    charts.rps.setData(padded([history.t, history.rps]));
    charts.latency.setData(padded([history.t, history.p50, history.p95, history.p99]));
  }

  // --- start -----------------------------------------------------------------------------------

  function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("admin-sign-out").addEventListener("click", signOut);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer !== null && sessionStorage.getItem(TOKEN_KEY)) {
        clearTimeout(timer);
        poll();
      }
    });
    if (sessionStorage.getItem(TOKEN_KEY)) {
      showDashboard();
      setStatus("loading…");
      poll();
    } else {
      showSignIn("");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
