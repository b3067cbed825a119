// The tree page: every branch of a conversation drawn with D3 v7 (static/vendor/d3.min.js).
// Nodes come from GET /api/visualization/{thread}/ through d3.stratify(); long linear runs are
// folded into one "+n" node (click to unfold) so a 2,000-message thread stays readable and fast;
// d3.tree() lays the rest out, d3.zoom pans and zooms. Clicking a message makes its branch the
// active one (PATCH active_leaf) and goes back to the chat at that message.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("tree-config").textContent);
  const canvas = document.getElementById("tree-canvas");
  const tip = document.getElementById("tree-tip");
  const stats = document.getElementById("tree-stats");
  const ROOT = "__root__";
  // A run of single-child messages longer than this shows its ends and folds its middle.
  const FOLD_OVER = 6;
  const DX = 26;
  const DY = 150;
  const unfolded = new Set();
  let hierarchy = null;
  let payload = null;
  let zoomState = null;

  function request(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": config.csrfToken, Accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.detail || data.message || "Request failed (" + response.status + ")");
        return data;
      });
    });
  }

  // The display tree: messages, with each long single-child run's middle replaced by a fold node.
  function displayTree(root) {
    const top = { id: ROOT, kind: "root", data: root.data, children: [] };
    const stack = [[root, top]];
    while (stack.length) {
      const [node, shown] = stack.pop();
      (node.children || []).forEach(function (child) {
        const run = [child];
        let last = child;
        while (last.children && last.children.length === 1) {
          last = last.children[0];
          run.push(last);
        }
        let parentShown = shown;
        if (run.length > FOLD_OVER && !unfolded.has(child.id)) {
          const head = { id: child.id, kind: "msg", data: child.data, children: [] };
          const middle = run.slice(1, -1);
          const fold = {
            id: "fold:" + child.id,
            kind: "fold",
            key: child.id,
            count: middle.length,
            active: middle.some(function (n) { return n.data.on_active_path; }),
            children: [],
          };
          const tail = { id: last.id, kind: "msg", data: last.data, children: [] };
          shown.children.push(head);
          head.children.push(fold);
          fold.children.push(tail);
          stack.push([last, tail]);
          return;
        }
        run.forEach(function (member) {
          const item = { id: member.id, kind: "msg", data: member.data, children: [] };
          parentShown.children.push(item);
          parentShown = item;
        });
        stack.push([last, parentShown]);
      });
    }
    return top;
  }

  function isActive(d) {
    if (d.data.kind === "fold") return d.data.active;
    if (d.data.kind === "root") return true;
    return d.data.data.on_active_path;
  }

  function render() {
    const started = performance.now();
    const shown = d3.hierarchy(displayTree(hierarchy), function (d) { return d.children.length ? d.children : null; });
    d3.tree().nodeSize([DX, DY])(shown);
    canvas.textContent = "";
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    const svg = d3.select(canvas).append("svg").attr("role", "img").attr("aria-label", "Conversation tree");
    const layer = svg.append("g");
    const descendants = shown.descendants();
    layer.append("g")
      .selectAll("path")
      .data(shown.links())
      .join("path")
      .attr("class", function (l) { return "link" + (isActive(l.target) && isActive(l.source) ? " active" : ""); })
      .attr("d", d3.linkHorizontal().x(function (d) { return d.y; }).y(function (d) { return d.x; }));
    const nodes = layer.append("g")
      .selectAll("g")
      .data(descendants)
      .join("g")
      .attr("class", function (d) {
        if (d.data.kind === "root") return "node virtual";
        if (d.data.kind === "fold") return "node fold" + (d.data.active ? " active" : "");
        const m = d.data.data;
        return "node role-" + m.role + " type-" + m.type + (m.on_active_path ? " active" : "") +
          (m.id === payload.active_leaf ? " leaf" : "");
      })
      .attr("data-id", function (d) { return d.data.kind === "msg" ? d.data.id : null; })
      .attr("transform", function (d) { return "translate(" + d.y + "," + d.x + ")"; });
    nodes.filter(function (d) { return d.data.kind !== "fold"; })
      .append("circle")
      .attr("r", function (d) { return d.data.kind === "root" ? 4 : d.data.id === payload.active_leaf ? 9 : 6; });
    const folds = nodes.filter(function (d) { return d.data.kind === "fold"; });
    folds.append("rect").attr("x", -16).attr("y", -9).attr("width", 32).attr("height", 18).attr("rx", 4);
    folds.append("text").attr("text-anchor", "middle").attr("dy", "0.35em").text(function (d) { return "+" + d.data.count; });
    nodes.filter(function (d) { return d.data.kind === "msg"; })
      .append("text")
      .attr("x", 10)
      .attr("dy", "0.35em")
      .text(function (d) {
        const text = d.data.data.preview || "(" + d.data.data.type + ")";
        return text.length > 22 ? text.slice(0, 21) + "…" : text;
      });

    nodes.on("mouseenter", function (event, d) { showTip(event, d); })
      .on("mousemove", function (event) { moveTip(event); })
      .on("mouseleave", function () { tip.hidden = true; })
      .on("click", function (event, d) {
        if (d.data.kind === "fold") {
          unfolded.add(d.data.key);
          render();
        } else if (d.data.kind === "msg") {
          choose(d.data.id);
        }
      });

    const zoom = d3.zoom().scaleExtent([0.05, 3]).on("zoom", function (event) {
      zoomState = event.transform;
      layer.attr("transform", event.transform);
    });
    svg.call(zoom);
    if (zoomState) {
      svg.call(zoom.transform, zoomState);
    } else {
      // Start at the active leaf, with room to see where it came from.
      const leaf = descendants.find(function (d) { return d.data.id === payload.active_leaf; }) || shown;
      svg.call(zoom.transform, d3.zoomIdentity.translate(width * 0.7 - leaf.y, height / 2 - leaf.x));
    }
    const ms = performance.now() - started;
    canvas.dataset.shown = String(descendants.length - 1);
    canvas.dataset.renderMs = ms.toFixed(1);
    stats.textContent = payload.nodes.length + " messages, " + (descendants.length - 1) + " shown · drawn in " +
      Math.round(ms) + " ms";
  }

  function showTip(event, d) {
    tip.textContent = "";
    if (d.data.kind === "root") return;
    const head = document.createElement("strong");
    const body = document.createElement("div");
    if (d.data.kind === "fold") {
      head.textContent = d.data.count + " messages folded";
      body.textContent = "Click to unfold.";
    } else {
      const m = d.data.data;
      head.textContent = (m.role === "user" ? "You" : m.role === "ai" ? "Agent" : "System") + " · " +
        new Date(m.created_at).toLocaleString() + (m.children > 1 ? " · " + m.children + " branches" : "");
      body.textContent = m.preview || "(" + m.type + ")";
    }
    tip.append(head, body);
    tip.hidden = false;
    moveTip(event);
  }

  function moveTip(event) {
    tip.style.left = Math.min(window.innerWidth - 360, event.clientX + 14) + "px";
    tip.style.top = event.clientY + 14 + "px";
  }

  function choose(id) {
    request("PATCH", "/api/threads/" + config.threadId + "/", { active_leaf: id })
      .then(function () { location.href = "/t/" + config.threadId + "/?at=" + encodeURIComponent(id); })
      .catch(function (err) { stats.textContent = err.message; });
  }

  request("GET", "/api/visualization/" + config.threadId + "/")
    .then(function (data) {
      payload = data;
      if (!data.nodes.length) {
        stats.textContent = "No messages yet.";
        return;
      }
      // Several roots (an edited first message) hang from one virtual root.
      const rows = [{ id: ROOT, parent: null }].concat(data.nodes.map(function (n) {
        return Object.assign({}, n, { parent: n.parent || ROOT });
      }));
      hierarchy = d3.stratify().id(function (d) { return d.id; }).parentId(function (d) { return d.parent; })(rows);
      render();
    })
    .catch(function (err) { stats.textContent = "Could not load the tree: " + err.message; });

  window.addEventListener("resize", function () { if (hierarchy) render(); });
})();
