// The staff dashboard: GET /api/dashboard/?window=... every few seconds, drawn with D3 v7
// (static/vendor/d3.min.js): a bar chart of replies per minute, grouped bars of the latency
// percentiles, and tables built as DOM nodes (never HTML strings: model and user names are data).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const updated = document.getElementById("dash-updated");
  const params = new URLSearchParams(location.search);
  let windowName = config.windows.includes(params.get("window")) ? params.get("window") : config.windows[0];
  let timer = null;
  let shown = null;
  let resizing = null;

  const number = d3.format(",");
  const ms = function (v) { return v === null || v === undefined ? "–" : number(Math.round(v)); };
  const percent = d3.format(".1%");
  const bytes = function (v) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return v.toFixed(i ? 1 : 0) + " " + units[i];
  };
  const usd = function (v) { return v === null || v === undefined ? "–" : "$" + (v < 0.01 ? v.toPrecision(2) : v.toFixed(2)); };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cards(data) {
    const box = document.getElementById("dash-cards");
    const workers = data.workers.mode === "embedded"
      ? "embedded"
      : (data.workers.error ? "unavailable" : number(data.workers.workers_alive) + " alive, " + number(data.workers.queue_depth) + " queued");
    const items = [
      ["Replies", number(data.replies.total)],
      ["Per minute", data.replies.per_minute.toFixed(2)],
      ["Errors", percent(data.rates.error)],
      ["Interrupted", percent(data.rates.interrupted)],
      ["Stopped", percent(data.rates.stopped)],
      ["Open streams", number(data.open_streams)],
      ["Workers", workers],
      ["Database", data.database.vendor + ", " + bytes(data.database.size_bytes)],
    ];
    box.replaceChildren.apply(box, items.map(function (item) {
      const card = el("div", "dash-card");
      card.append(el("span", "dash-card-label", item[0]), el("strong", "dash-card-value", item[1]));
      return card;
    }));
  }

  function svgFor(id, height) {
    const box = document.getElementById(id);
    const width = Math.max(280, box.clientWidth || 600);
    d3.select(box).selectAll("*").remove();
    const svg = d3.select(box).append("svg").attr("viewBox", [0, 0, width, height]).attr("role", "img");
    return { svg: svg, width: width, height: height };
  }

  function seriesChart(data) {
    const { svg, width, height } = svgFor("chart-series", 200);
    const margin = { top: 10, right: 10, bottom: 24, left: 40 };
    const points = data.replies.series.map(function (p) { return { t: new Date(p.t), v: p.per_minute, bad: p.not_complete / data.bucket_minutes }; });
    svg.attr("aria-label", "Replies per minute over " + data.window);
    const step = data.bucket_minutes * 60000;
    const x = d3.scaleTime()
      .domain([d3.min(points, function (p) { return p.t; }), new Date(+d3.max(points, function (p) { return p.t; }) + step)])
      .range([margin.left, width - margin.right]);
    const y = d3.scaleLinear().domain([0, d3.max(points, function (p) { return p.v; }) || 1]).nice().range([height - margin.bottom, margin.top]);
    const barWidth = Math.max(1, (width - margin.left - margin.right) / points.length - 1);
    svg.append("g").attr("transform", "translate(0," + (height - margin.bottom) + ")").call(d3.axisBottom(x).ticks(Math.max(2, Math.floor(width / 90))));
    svg.append("g").attr("transform", "translate(" + margin.left + ",0)").call(d3.axisLeft(y).ticks(4));
    const bars = svg.append("g");
    bars.selectAll("rect.ok").data(points).join("rect").attr("class", "bar")
      .attr("x", function (p) { return x(p.t); }).attr("width", barWidth)
      .attr("y", function (p) { return y(p.v); }).attr("height", function (p) { return y(0) - y(p.v); })
      .append("title").text(function (p) { return p.t.toLocaleString() + ": " + p.v.toFixed(2) + "/min"; });
    bars.selectAll("rect.bad").data(points.filter(function (p) { return p.bad > 0; })).join("rect").attr("class", "bar bad")
      .attr("x", function (p) { return x(p.t); }).attr("width", barWidth)
      .attr("y", function (p) { return y(p.bad); }).attr("height", function (p) { return y(0) - y(p.bad); });
  }

  function latencyChart(data) {
    const { svg, width, height } = svgFor("chart-latency", 200);
    const margin = { top: 10, right: 10, bottom: 24, left: 50 };
    const groups = ["queue", "first_chunk", "total"];
    const keys = ["p50", "p95", "p99"];
    svg.attr("aria-label", "Latency percentiles");
    const rows = groups.map(function (g) { return { group: g, values: keys.map(function (k) { return { key: k, v: (data.latency_ms[g] || {})[k] || 0 }; }) }; });
    const x0 = d3.scaleBand().domain(groups).range([margin.left, width - margin.right]).padding(0.2);
    const x1 = d3.scaleBand().domain(keys).range([0, x0.bandwidth()]).padding(0.05);
    const top = d3.max(rows, function (r) { return d3.max(r.values, function (d) { return d.v; }); }) || 1;
    const y = d3.scaleLinear().domain([0, top]).nice().range([height - margin.bottom, margin.top]);
    svg.append("g").attr("transform", "translate(0," + (height - margin.bottom) + ")").call(d3.axisBottom(x0).tickFormat(function (g) { return g.replace("_", " "); }));
    svg.append("g").attr("transform", "translate(" + margin.left + ",0)").call(d3.axisLeft(y).ticks(4));
    const group = svg.append("g").selectAll("g").data(rows).join("g").attr("transform", function (r) { return "translate(" + x0(r.group) + ",0)"; });
    group.selectAll("rect").data(function (r) { return r.values; }).join("rect")
      .attr("class", function (d) { return "bar " + d.key; })
      .attr("x", function (d) { return x1(d.key); }).attr("width", x1.bandwidth())
      .attr("y", function (d) { return y(d.v); }).attr("height", function (d) { return y(0) - y(d.v); })
      .append("title").text(function (d) { return d.key + ": " + ms(d.v) + " ms"; });
  }

  function table(id, columns, rows, empty) {
    const box = document.getElementById(id);
    if (!rows.length) { box.replaceChildren(el("p", "muted", empty || "Nothing in this window.")); return; }
    const t = el("table");
    const head = el("tr");
    columns.forEach(function (c) { head.append(el("th", c.num ? "num" : "", c.label)); });
    t.append(el("thead")); t.tHead.append(head);
    const body = el("tbody");
    rows.forEach(function (row) {
      const tr = el("tr");
      columns.forEach(function (c) { tr.append(el("td", c.num ? "num" : "", c.show(row))); });
      body.append(tr);
    });
    t.append(body);
    box.replaceChildren(t);
  }

  // The daily quotas (GET /api/dashboard/ "quotas"): the UTC day whatever the window.
  function quotaTables(quotas) {
    const limit = function (v) { return v === null ? "unlimited" : number(v); };
    const used = function (key) { return function (r) { return number(r[key].used) + " / " + limit(r[key].limit); }; };
    const columns = [
      { label: "User", show: function (r) { return r.username; } },
      { label: "Replies", num: true, show: used("replies") },
      { label: "Tokens", num: true, show: used("tokens") },
      { label: "Reached", show: function (r) { return r.reached.join(", "); } },
    ];
    document.getElementById("quota-day").textContent = "(resets " + quotas.resets_at.slice(0, 16).replace("T", " ") + " UTC)";
    document.getElementById("quota-over-total").textContent = "(" + number(quotas.over_limit_total) + ")";
    table("table-quotas", columns, quotas.top_users, "No replies today.");
    table("table-quotas-over", columns, quotas.over_limit, "Nobody is at a limit.");
  }

  function render(data) {
    shown = data;
    cards(data);
    seriesChart(data);
    latencyChart(data);
    table("table-models", [
      { label: "Model", show: function (r) { return r.model; } },
      { label: "Replies", num: true, show: function (r) { return number(r.replies); } },
      { label: "Prompt", num: true, show: function (r) { return number(r.prompt_tokens); } },
      { label: "Completion", num: true, show: function (r) { return number(r.completion_tokens); } },
      { label: "Cost", num: true, show: function (r) { return usd(r.cost_usd); } },
    ], data.models);
    table("table-tools", [
      { label: "Tool", show: function (r) { return r.name; } },
      { label: "Calls", num: true, show: function (r) { return number(r.calls); } },
      { label: "Failed", num: true, show: function (r) { return number(r.failures); } },
      { label: "Avg ms", num: true, show: function (r) { return ms(r.avg_ms); } },
    ], data.tools);
    const userColumns = [
      { label: "User", show: function (r) { return r.username; } },
      { label: "Replies", num: true, show: function (r) { return number(r.replies); } },
      { label: "Tokens", num: true, show: function (r) { return number(r.tokens); } },
    ];
    table("table-users-replies", userColumns, data.top_users.by_replies);
    table("table-users-tokens", userColumns, data.top_users.by_tokens);
    quotaTables(data.quotas);
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
  }

  function load() {
    clearTimeout(timer);
    fetch("/api/dashboard/?window=" + encodeURIComponent(windowName), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("The dashboard did not answer (" + response.status + ")");
        return response.json();
      })
      .then(render)
      .catch(function (error) { updated.textContent = error.message; })
      .finally(function () { timer = setTimeout(load, config.refreshSeconds * 1000); });
  }

  document.querySelectorAll(".dash-window").forEach(function (button) {
    button.setAttribute("aria-pressed", String(button.dataset.window === windowName));
    button.addEventListener("click", function () {
      windowName = button.dataset.window;
      document.querySelectorAll(".dash-window").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      history.replaceState(null, "", "?window=" + windowName);
      load();
    });
  });
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () { if (shown) render(shown); }, 200);
  });
  load();

  // Profiles: py-spy recordings (POST/GET /api/profiling/). The list is asked again every second
  // while one records, else with the dashboard's own refresh; flame graphs are shown in an <img>
  // (our own SVG; an image runs no script), speedscope JSON is a download.
  const profileForm = document.getElementById("profile-form");
  const profileStatus = document.getElementById("profile-status");
  const targetSelect = document.getElementById("profile-target");
  const pidLabel = document.getElementById("profile-pid-label");
  const csrf = profileForm.querySelector("[name=csrfmiddlewaretoken]").value;
  let profileTimer = null;

  function errorText(body, status) {
    if (!body) return "Failed (" + status + ")";
    if (body.detail) return body.detail;
    return Object.keys(body).map(function (field) { return field + ": " + [].concat(body[field]).join(" "); }).join("; ");
  }

  function showProfile(profile) {
    const view = document.getElementById("profile-view");
    document.getElementById("profile-view-caption").textContent = "Process " + profile.pid + ", " + profile.seconds + " s, " + new Date(profile.created_at).toLocaleString();
    document.getElementById("profile-view-img").src = profile.data_url;
    view.hidden = false;
  }

  function profileActions(profile) {
    const cell = el("span");
    if (profile.status === "done") {
      if (profile.format === "flamegraph") {
        const view = el("button", "", "View");
        view.type = "button";
        view.addEventListener("click", function () { showProfile(profile); });
        cell.append(view);
      }
      const link = el("a", "", "Download");
      link.href = profile.data_url;
      link.setAttribute("download", "");
      cell.append(link);
    } else if (profile.status === "failed") {
      cell.append(el("span", "error", profile.error));
    } else {
      cell.append(el("span", "muted", "recording…"));
    }
    return cell;
  }

  function renderProfiles(page) {
    const box = document.getElementById("table-profiles");
    if (!page.results.length) { box.replaceChildren(el("p", "muted", "No recordings yet.")); return; }
    const t = el("table");
    const head = el("tr");
    ["Started", "Target", "Pid", "Seconds", "Format", "Status", "Size", ""].forEach(function (label) { head.append(el("th", "", label)); });
    t.append(el("thead")); t.tHead.append(head);
    const body = el("tbody");
    page.results.forEach(function (p) {
      const tr = el("tr");
      tr.dataset.profile = p.id;
      [new Date(p.created_at).toLocaleTimeString(), p.target, String(p.pid), String(p.seconds), p.format, p.status, p.size === null ? "–" : bytes(p.size)]
        .forEach(function (text) { tr.append(el("td", "", text)); });
      const actions = el("td");
      actions.append(profileActions(p));
      tr.append(actions);
      body.append(tr);
    });
    t.append(body);
    box.replaceChildren(t);
  }

  function loadProfiles() {
    clearTimeout(profileTimer);
    fetch("/api/profiling/?page_size=20", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("The profiles did not load (" + response.status + ")");
        return response.json();
      })
      .then(function (page) {
        renderProfiles(page);
        const running = page.results.some(function (p) { return p.status === "running"; });
        if (!running && profileStatus.textContent.indexOf("Recording") === 0) profileStatus.textContent = "Recorded.";
        profileTimer = setTimeout(loadProfiles, running ? 1000 : config.refreshSeconds * 1000);
      })
      .catch(function (error) {
        profileStatus.textContent = error.message;
        profileTimer = setTimeout(loadProfiles, config.refreshSeconds * 1000);
      });
  }

  targetSelect.addEventListener("change", function () { pidLabel.hidden = targetSelect.value !== "pid"; });
  profileForm.addEventListener("submit", function (event) {
    event.preventDefault();
    const seconds = Number(document.getElementById("profile-seconds").value);
    const target = targetSelect.value === "pid" ? Number(document.getElementById("profile-pid").value) : targetSelect.value;
    const format = document.getElementById("profile-format").value;
    profileStatus.className = "profile-status";
    profileStatus.textContent = "Starting…";
    fetch("/api/profiling/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify({ target: target, seconds: seconds, format: format }),
    })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (response.status !== 202) throw new Error(errorText(body, response.status));
          profileStatus.textContent = "Recording process " + body.pid + " for " + body.seconds + " s…";
          loadProfiles();
        });
      })
      .catch(function (error) {
        profileStatus.className = "profile-status error";
        profileStatus.textContent = error.message;
      });
  });
  loadProfiles();
})();
