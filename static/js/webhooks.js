// The webhooks page: everything goes through the REST API (/api/webhooks/...) with the session.
(function () {
  "use strict";
  const csrf = document.querySelector("#webhooks [name=csrfmiddlewaretoken]").value;
  const notice = document.getElementById("wh-notice");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function say(text, isError) {
    notice.textContent = text;
    notice.classList.toggle("error", !!isError);
    notice.hidden = !text;
  }

  async function api(method, path, body) {
    const response = await fetch("/api/webhooks/" + path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const detail = data && (data.detail || Object.entries(data).map(([k, v]) => k + ": " + [].concat(v).join(" ")).join("; "));
      throw new Error(detail || "Request failed (" + response.status + ")");
    }
    return data;
  }

  function attempt(fn) {
    return async (...args) => {
      try { say(""); await fn(...args); } catch (error) { say(error.message, true); }
    };
  }

  function showSecret(secret) {
    document.getElementById("wh-secret-value").textContent = secret;
    document.getElementById("wh-secret").hidden = false;
  }
  document.getElementById("wh-secret-copy").addEventListener("click", () => {
    navigator.clipboard.writeText(document.getElementById("wh-secret-value").textContent).then(() => say("Secret copied."));
  });

  const DELIVERIES_PAGE = 20;

  // Page 1 replaces the list; "Older deliveries" appends the next page (the API is paginated).
  async function showDeliveries(hook, box, number = 1) {
    const page = await api("GET", hook.id + "/deliveries/?page_size=" + DELIVERIES_PAGE + "&page=" + number);
    const rows = page.results.map((d) => el("li", { class: "delivery delivery-" + d.status },
      el("span", {}, d.event_type + " · " + d.event_id + " · " + d.status + " · attempt " + d.attempt +
        (d.status_code ? " · HTTP " + d.status_code : "") + (d.error ? " · " + d.error : "") +
        (d.next_attempt_at ? " · next " + new Date(d.next_attempt_at).toLocaleString() : "")),
      " ", el("button", { type: "button", class: "link", onclick: attempt(async () => {
        await api("POST", "deliveries/" + d.id + "/redeliver/");
        await showDeliveries(hook, box);
      }) }, "Redeliver")));
    if (number === 1) box.replaceChildren(...rows);
    else { box.querySelector(".more")?.remove(); box.append(...rows); }
    if (page.next) {
      box.append(el("li", { class: "more" }, el("button", { type: "button", class: "link",
        onclick: attempt(() => showDeliveries(hook, box, number + 1)) }, "Older deliveries")));
    }
    if (!box.children.length) box.replaceChildren(el("li", {}, "No deliveries yet."));
  }

  function hookRow(hook) {
    const deliveries = el("ul", { class: "deliveries" });
    const status = hook.active ? "enabled" : "disabled" + (hook.disabled_reason ? ": " + hook.disabled_reason : "");
    return el("li", { class: "card wh-row" + (hook.active ? "" : " wh-disabled"), "data-id": hook.id },
      el("div", {}, el("strong", {}, hook.url), " ", el("span", { class: "wh-status" }, "(" + status + ")")),
      el("div", { class: "muted" }, hook.events.join(", ") + (hook.description ? " — " + hook.description : "")),
      el("div", { class: "wh-actions" },
        el("button", { type: "button", class: "secondary", onclick: attempt(async () => {
          await api("PATCH", hook.id + "/", { active: !hook.active }); await load();
        }) }, hook.active ? "Disable" : "Enable"),
        el("button", { type: "button", class: "secondary", onclick: attempt(async () => {
          await api("POST", hook.id + "/test/"); say("Test event queued."); await showDeliveries(hook, deliveries);
        }) }, "Send test"),
        el("button", { type: "button", class: "secondary", onclick: attempt(() => showDeliveries(hook, deliveries)) }, "Deliveries"),
        el("button", { type: "button", class: "secondary", onclick: attempt(async () => {
          showSecret((await api("POST", hook.id + "/rotate-secret/")).secret);
        }) }, "Rotate secret"),
        el("button", { type: "button", class: "danger", onclick: attempt(async () => {
          if (confirm("Delete this webhook?")) { await api("DELETE", hook.id + "/"); await load(); }
        }) }, "Delete")),
      deliveries);
  }

  function incomingRow(endpoint) {
    const url = location.origin + endpoint.url;
    return el("li", { class: "card wh-row", "data-id": endpoint.id },
      el("div", {}, el("strong", {}, endpoint.kind), " → thread ", el("code", {}, endpoint.thread)),
      el("div", {}, "URL: ", el("code", {}, url)),
      el("div", {}, "Secret: ", el("code", {}, endpoint.secret)),
      el("button", { type: "button", class: "danger", onclick: attempt(async () => {
        if (confirm("Delete this incoming webhook?")) { await api("DELETE", "incoming/" + endpoint.id + "/"); await load(); }
      }) }, "Delete"));
  }

  async function load() {
    const [hooks, incoming] = await Promise.all([api("GET", ""), api("GET", "incoming/")]);
    document.getElementById("wh-list").replaceChildren(...hooks.results.map(hookRow));
    document.getElementById("in-list").replaceChildren(...incoming.results.map(incomingRow));
  }

  document.getElementById("wh-create").addEventListener("submit", attempt(async (event) => {
    event.preventDefault();
    const form = event.target;
    const events = [...form.querySelectorAll("[name=events]:checked")].map((box) => box.value);
    const hook = await api("POST", "", { url: form.url.value, description: form.description.value, events: events.includes("*") ? ["*"] : events });
    showSecret(hook.secret);
    form.reset();
    await load();
  }));

  document.getElementById("in-create").addEventListener("submit", attempt(async (event) => {
    event.preventDefault();
    const form = event.target;
    await api("POST", "incoming/", { thread: form.thread.value, kind: form.kind.value });
    await load();
  }));

  attempt(load)();
})();
