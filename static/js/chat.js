// The chat page: send over the WebSocket, show messages and streamed replies live, reconnect with
// back-off and resume from the last message seen. The protocol is documented in README.md.
// Conversations are trees: the page shows the active branch only. Each message can be copied
// and forked (a new thread with the branch up to it); a user message edited (a new sibling
// branch), an AI reply regenerated (a new sibling reply), a streaming reply stopped; "< 2/3 >"
// switches between siblings; older messages of the branch load 50 at a time when scrolled to the top.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("message-input");
  const fileInput = document.getElementById("file-input");
  const connStatus = document.getElementById("conn-status");
  const notice = document.getElementById("notice");
  const upload = document.getElementById("upload");
  const uploadProgress = document.getElementById("upload-progress");
  const uploadLabel = document.getElementById("upload-label");
  const sendButton = document.getElementById("send-button");

  // Close codes (README, WebSocket protocol).
  const CLOSE_SIGNED_OUT = 4401;
  const CLOSE_FORBIDDEN = 4403;
  const CLOSE_NOT_FOUND = 4404;
  const CLOSE_THREAD_DELETED = 4410;
  const CLOSE_TOO_MANY = 4429;
  const CLOSE_UNAVAILABLE = 4503;

  let socket = null;
  let retries = 0;
  // Told to slow down (rate_limited, overloaded, too_many_replies): nothing is sent before this
  // time, then the outbox.
  let holdUntil = 0;
  let holdTimer = null;
  let lastRetryAfter = 0;
  let openedAt = 0;
  let lastMessageId = config.lastMessageId;
  // Frames not yet confirmed by the server, by client_id: resent after a reconnect (idempotent).
  const outbox = new Map();
  // Streams being shown, by stream_id: { node, text, nextSeq }.
  const streams = new Map();
  // Messages shown, by id: what the actions need (content to copy, parent to edit from, siblings).
  const byId = new Map();
  let lastCreatedAt = "";
  let loadingOlder = false;

  list.querySelectorAll(".msg[data-id]").forEach(function (li) {
    const content = li.querySelector(".content");
    const message = {
      id: li.dataset.id,
      role: li.dataset.role,
      type: li.dataset.type,
      parent: li.dataset.parent || null,
      sibling_ids: li.dataset.siblings ? li.dataset.siblings.split(",") : [li.dataset.id],
      content: content.textContent,
    };
    byId.set(message.id, message);
    ChatMarkdown.renderInto(content, message.content);
    decorate(li, message);
  });
  if (config.at) {
    const target = list.querySelector('[data-id="' + CSS.escape(config.at) + '"]');
    if (target) {
      target.classList.add("highlight");
      target.scrollIntoView({ block: "center" });
    }
  } else {
    scrollToEnd(true);
  }

  function scrollToEnd(force) {
    const nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    if (force || nearEnd) list.scrollTop = list.scrollHeight;
  }

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
    if (text) setTimeout(function () { if (notice.textContent === text) notice.hidden = true; }, 6000);
  }

  function setConn(state, label) {
    connStatus.dataset.state = state;
    connStatus.textContent = label;
  }

  function bubble(role, id) {
    const li = document.createElement("li");
    li.className = "msg msg-" + role;
    if (id) li.dataset.id = id;
    const body = document.createElement("div");
    body.className = "bubble";
    const content = document.createElement("div");
    content.className = "content";
    body.appendChild(content);
    li.appendChild(body);
    list.appendChild(li);
    return li;
  }

  function fillMessage(li, message) {
    li.dataset.id = message.id;
    li.dataset.role = message.role;
    li.dataset.parent = message.parent || "";
    li.className = "msg msg-" + message.role + (message.type === "error" ? " msg-error" : "");
    const body = li.querySelector(".bubble");
    body.querySelectorAll(".attachment, .note, .pending-note").forEach(function (n) { n.remove(); });
    ChatMarkdown.renderInto(body.querySelector(".content"), message.content);
    (message.attachments || []).forEach(function (attachment) {
      const a = document.createElement("a");
      a.className = "attachment";
      a.href = attachment.url;
      a.textContent = "📎 " + attachment.filename;
      body.appendChild(a);
    });
    const streamStatus = (message.metadata || {}).stream_status;
    if (streamStatus === "interrupted") addNote(body, "Reply interrupted");
    if (streamStatus === "stopped") addNote(body, "Stopped");
    const unavailable = (message.metadata || {}).model_unavailable;
    if (unavailable) addNote(body, fallbackNote(unavailable, message.metadata.model));
    byId.set(message.id, message);
    decorate(li, message);
    // The newest message seen (in time, on any branch) is where a reconnect resumes.
    if (!message.created_at || message.created_at >= lastCreatedAt) {
      lastCreatedAt = message.created_at || lastCreatedAt;
      lastMessageId = message.id;
    }
  }

  // --- Tree actions ----------------------------------------------------------------------------

  function button(label, className, title, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "act " + className;
    b.textContent = label;
    if (title) { b.title = title; b.setAttribute("aria-label", title); }
    b.addEventListener("click", onClick);
    return b;
  }

  // The row under a message: copy; edit (yours) or regenerate (the agent's); "< 2/3 >" when it has siblings.
  function decorate(li, message) {
    li.querySelectorAll(".actions").forEach(function (n) { n.remove(); });
    const row = document.createElement("div");
    row.className = "actions";
    const siblings = message.sibling_ids || [message.id];
    if (siblings.length > 1) {
      const at = siblings.indexOf(message.id);
      const prev = button("‹", "sib-prev", "Previous version", function () { switchTo(siblings[at - 1]); });
      const next = button("›", "sib-next", "Next version", function () { switchTo(siblings[at + 1]); });
      prev.disabled = at <= 0;
      next.disabled = at >= siblings.length - 1;
      const pos = document.createElement("span");
      pos.className = "sib-pos";
      pos.textContent = (at + 1) + "/" + siblings.length;
      row.append(prev, pos, next);
    }
    row.appendChild(button("Copy", "act-copy", "Copy this message", function (e) { copyText(message.content, e.target); }));
    if (message.role === "user" && message.type === "text") {
      row.appendChild(button("Edit", "act-edit", "Edit this message", function () { startEdit(li, message); }));
    }
    if (message.role === "ai" && message.parent) {
      row.appendChild(button("Regenerate", "act-regen", "Answer again", function () { regenerate(message); }));
    }
    row.appendChild(button("Fork", "act-fork", "Continue from here in a new thread", function (e) { fork(message, e.target); }));
    li.appendChild(row);
  }

  // A new thread holding the branch up to this message (this one stays as it is); it opens.
  function fork(message, control) {
    control.disabled = true;
    api("POST", "/api/threads/" + config.threadId + "/fork/", { message_id: message.id, mode: "path" })
      .then(function (thread) { location.href = "/t/" + thread.id + "/"; })
      .catch(function (err) {
        control.disabled = false;
        showNotice(err.message);
      });
  }

  function copyText(text, control) {
    function done() {
      control.textContent = "Copied";
      setTimeout(function () { control.textContent = "Copy"; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { copyFallback(text); done(); });
    } else {
      copyFallback(text);
      done();
    }
  }

  function copyFallback(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (err) { /* nothing more to try */ }
    area.remove();
  }

  // Everything shown after the message (not the messages still being sent).
  function removeAfter(id) {
    let node = id ? list.querySelector('[data-id="' + CSS.escape(id) + '"]') : null;
    if (id && !node) return false;
    const doomed = [];
    for (let next = node ? node.nextElementSibling : list.firstElementChild; next; next = next.nextElementSibling) {
      if (next.classList.contains("msg") && !next.classList.contains("pending")) doomed.push(next);
      if (!id && next.classList.contains("more")) doomed.push(next);
    }
    doomed.forEach(function (n) {
      if (n.dataset.streamId) streams.delete(n.dataset.streamId);
      n.remove();
    });
    return true;
  }

  function isShown(id) {
    return !id || !!list.querySelector('.msg[data-id="' + CSS.escape(id) + '"]');
  }

  function startEdit(li, message) {
    if (li.querySelector(".editor")) return;
    const body = li.querySelector(".bubble");
    const editor = document.createElement("form");
    editor.className = "editor";
    const area = document.createElement("textarea");
    area.value = message.content;
    area.rows = Math.min(8, message.content.split("\n").length + 1);
    area.setAttribute("aria-label", "Edit message");
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Send edit";
    const cancel = button("Cancel", "secondary", "", function () { editor.remove(); body.hidden = false; });
    editor.append(area, save, cancel);
    body.hidden = true;
    li.insertBefore(editor, body.nextSibling);
    area.focus();
    editor.addEventListener("submit", function (e) {
      e.preventDefault();
      const content = area.value;
      if (!content.trim()) return;
      // The original stays on the server; its branch is left for the edit's.
      removeAfter(message.parent);
      queue({ type: "message", content: content, parent: message.parent || null }, content);
    });
  }

  function regenerate(message) {
    if (!send({ type: "regenerate", message_id: message.id, client_id: newClientId() })) {
      showNotice("Offline: try again when the connection is back.");
      return;
    }
    removeAfter(message.parent);
  }

  function api(method, url, body) {
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

  function pathUrl(params) {
    return "/api/threads/" + config.threadId + "/messages/?" + new URLSearchParams(params).toString();
  }

  // Another version of a message: the newest branch under it becomes active, shown without a page load.
  function switchTo(id) {
    api("PATCH", "/api/threads/" + config.threadId + "/", { active_leaf: id })
      .then(loadBranch)
      .then(function () {
        const target = list.querySelector('[data-id="' + CSS.escape(id) + '"]');
        if (target) target.scrollIntoView({ block: "nearest" });
      })
      .catch(function (err) { showNotice(err.message); });
  }

  // Show the active branch's last page afresh (messages still being sent stay).
  function loadBranch() {
    return api("GET", pathUrl({ path: "active", page: "last", page_size: config.pageSize }))
      .then(fillPage)
      .then(function (messages) {
        list.querySelectorAll(".msg:not(.pending), .more").forEach(function (n) {
          if (n.dataset.streamId) streams.delete(n.dataset.streamId);
          n.remove();
        });
        messages.forEach(function (message) { fillMessage(bubble(message.role, message.id), message); });
        olderMarker(messages);
        return messages;
      });
  }

  // A "last page" can be short (the path's length is not a multiple of the page size): fill it up
  // from the page before it, so that older messages come exactly a page size at a time.
  function fillPage(page) {
    if (page.results.length >= config.pageSize || !page.previous) return Promise.resolve(page.results);
    return fetch(page.previous, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (before) { return before.results.concat(page.results).slice(-config.pageSize); });
  }

  function olderMarker(messages) {
    let more = document.getElementById("load-older");
    const first = messages.length ? messages[0] : null;
    if (first && first.parent) {
      if (!more) {
        more = document.createElement("li");
        more.className = "more";
        more.id = "load-older";
        const link = document.createElement("a");
        link.href = "?all=1";
        more.appendChild(link);
        list.insertBefore(more, list.firstChild);
      }
      more.querySelector("a").textContent = "Load earlier messages";
    } else if (more) {
      more.remove();
    }
  }

  function loadOlder() {
    const first = list.querySelector(".msg[data-id]");
    const firstMessage = first && byId.get(first.dataset.id);
    if (loadingOlder || !firstMessage || !firstMessage.parent) return;
    loadingOlder = true;
    api("GET", pathUrl({ leaf: firstMessage.parent, page: "last", page_size: config.pageSize }))
      .then(fillPage)
      .then(function (messages) {
        const height = list.scrollHeight;
        messages.forEach(function (message) {
          const li = bubble(message.role, message.id);
          list.insertBefore(li, first);
          fillMessage(li, message);
        });
        olderMarker(messages);
        list.scrollTop += list.scrollHeight - height;
      })
      .catch(function (err) { showNotice(err.message); })
      .finally(function () { loadingOlder = false; });
  }

  list.addEventListener("scroll", function () {
    if (list.scrollTop < 40 && document.getElementById("load-older")) loadOlder();
  });
  list.addEventListener("click", function (e) {
    if (e.target.closest("#load-older a")) {
      e.preventDefault();
      loadOlder();
    }
  });

  // The same words as the page renders for a reply whose thread's model was removed.
  function fallbackNote(wanted, used) {
    return "The model '" + wanted + "' is not available any more; this thread now uses '" + used + "'.";
  }

  function addNote(body, text, className) {
    const note = document.createElement("div");
    note.className = className || "note";
    note.textContent = text;
    body.appendChild(note);
    return note;
  }

  function showMessage(message) {
    const streamId = (message.metadata || {}).stream_id;
    if (streamId && streams.has(streamId)) {
      endStream(streamId, { message: message, status: message.metadata.stream_status });
      return;
    }
    let li = list.querySelector('[data-id="' + message.id + '"]');
    if (!li && message.client_id) li = list.querySelector('[data-client-id="' + CSS.escape(message.client_id) + '"]');
    if (!li) {
      // A message of a branch not shown (another tab worked elsewhere in the tree) stays there.
      if (!isShown(message.parent)) return;
      removeAfter(message.parent);
      li = bubble(message.role, message.id);
    }
    li.classList.remove("pending", "failed");
    fillMessage(li, message);
    if (message.client_id) outbox.delete(message.client_id);
    scrollToEnd(message.role === "user");
  }

  function startStream(streamId, replyTo) {
    // A replayed start (after a reconnect) restarts the text: the chunks follow from seq 0.
    let state = streams.get(streamId);
    if (!state) {
      // A reply on a branch not shown is not shown either.
      if (replyTo && !isShown(replyTo)) return;
      // A regenerated reply replaces what followed its question on the page.
      if (replyTo) removeAfter(replyTo);
      const li = bubble("ai");
      li.classList.add("streaming");
      li.dataset.streamId = streamId;
      li.dataset.parent = replyTo || "";
      const stop = button("Stop", "act-stop", "Stop this reply", function () {
        stop.disabled = true;
        send({ type: "stop", stream_id: streamId });
      });
      const row = document.createElement("div");
      row.className = "actions";
      row.appendChild(stop);
      li.appendChild(row);
      state = { node: li, text: "", nextSeq: 0 };
      streams.set(streamId, state);
    }
    state.text = "";
    state.nextSeq = 0;
    state.node.querySelector(".content").textContent = "";
    state.node.querySelectorAll(".steps, .note").forEach(function (n) { n.remove(); });
    scrollToEnd(false);
  }

  function appendChunk(event) {
    const state = streams.get(event.stream_id);
    if (!state || event.seq < state.nextSeq) return;
    if (event.seq > state.nextSeq) {
      // The server fills gaps itself; should one still show, ask for everything again.
      send({ type: "sync", after: lastMessageId });
      return;
    }
    state.nextSeq += 1;
    state.text += event.delta;
    ChatMarkdown.renderInto(state.node.querySelector(".content"), state.text);
    scrollToEnd(false);
  }

  function showStep(event) {
    const state = streams.get(event.stream_id);
    if (!state) return;
    const body = state.node.querySelector(".bubble");
    if (event.step === "model_fallback") {
      // The thread's model was removed: say so, and show the model that now answers here.
      addNote(body, event.message);
      const select = document.getElementById("model-select");
      if (select && event.model) select.value = event.model;
      return;
    }
    let steps = body.querySelector(".steps");
    if (!steps) {
      steps = document.createElement("ul");
      steps.className = "steps";
      body.insertBefore(steps, body.firstChild);
    }
    const item = document.createElement("li");
    item.className = "step step-" + (event.step || "info");
    const tool = event.tool ? event.tool + ": " : "";
    let detail = event.step === "tool_end" ? event.output : event.input;
    if (detail != null && typeof detail === "object") detail = JSON.stringify(detail);
    item.textContent = (event.step === "tool_start" ? "⚙ " : "✓ ") + tool + (detail == null ? "" : String(detail).slice(0, 200));
    steps.appendChild(item);
    scrollToEnd(false);
  }

  function endStream(streamId, event) {
    const state = streams.get(streamId);
    let li = state ? state.node : null;
    streams.delete(streamId);
    if (!li) li = list.querySelector('[data-id="' + event.message.id + '"]');
    if (!li) {
      if (!isShown(event.message.parent)) return;
      removeAfter(event.message.parent);
      li = bubble("ai");
    }
    li.classList.remove("streaming");
    fillMessage(li, event.message);
    if (event.status === "error") li.classList.add("msg-error");
    scrollToEnd(false);
  }

  function onEvent(event) {
    switch (event.type) {
      case "message": showMessage(event.message); break;
      case "stream_start": startStream(event.stream_id, event.reply_to); break;
      case "stream_chunk": appendChunk(event); break;
      case "stream_status": showStep(event); break;
      case "stream_end": endStream(event.stream_id, event); break;
      case "error": onError(event); break;
      case "resync_required": resync(event); break;
      default: break;
    }
  }

  function onError(event) {
    // Told to slow down, or the server could not store it just now (its database or Redis is
    // down: nothing was stored): keep it pending and send it again after retry_after.
    if (["rate_limited", "overloaded", "too_many_replies", "unavailable"].includes(event.code)) {
      backOff(event);
      return;
    }
    if (event.client_id && outbox.has(event.client_id)) {
      outbox.delete(event.client_id);
      const li = list.querySelector('[data-client-id="' + CSS.escape(event.client_id) + '"]');
      if (li) {
        li.classList.remove("pending");
        li.classList.add("failed");
        li.querySelectorAll(".pending-note").forEach(function (n) { n.remove(); });
        addNote(li.querySelector(".bubble"), "Not sent: " + event.message, "note error");
      }
    }
    showNotice(event.message);
  }

  // This page is too far behind for the server to replay what it missed (more than its
  // WEBSOCKET_REPLAY_LIMIT messages): drop this socket, load the branch again over REST, then
  // connect again after its newest message. Unsent messages stay in the outbox and go out then.
  let resyncedAt = 0;
  function resync(event) {
    if (!socket) return;
    const old = socket;
    socket = null;
    old.onmessage = null;
    old.onclose = null;
    old.close();
    // Reloaded a moment ago and still too far behind (a flood on another branch): connect without
    // `after` rather than reload for ever; only open streams are replayed then.
    const again = Date.now() - resyncedAt < 10000;
    resyncedAt = Date.now();
    setConn("connecting", "Catching up…");
    showNotice(event.missed + " messages came while this page was away: reloading the conversation.");
    loadBranch().then(
      function () { connect(again); },
      function (err) {
        showNotice(err.message);
        retries += 1;
        setTimeout(connect, Math.min(15000, 500 * Math.pow(2, retries)));
      },
    );
  }

  // The frame was not taken (too fast, or too many waiting): keep everything unconfirmed and send it
  // again once the server's retry_after has passed. Resending is safe: frames carry their client_id.
  function backOff(event) {
    const seconds = Math.max(1, event.retry_after || 1);
    lastRetryAfter = seconds;
    holdUntil = Math.max(holdUntil, Date.now() + seconds * 1000);
    clearTimeout(holdTimer);
    holdTimer = setTimeout(function () { holdTimer = null; flushOutbox(); }, holdUntil - Date.now());
    outbox.forEach(function (frame) {
      const li = list.querySelector('[data-client-id="' + CSS.escape(frame.client_id) + '"]');
      const note = li && li.querySelector(".pending-note");
      if (note) note.textContent = "Waiting " + seconds + " s…";
    });
    showNotice(event.message);
  }

  function canSend() {
    return socket && socket.readyState === WebSocket.OPEN && Date.now() >= holdUntil;
  }

  function flushOutbox() {
    if (!canSend()) return;
    outbox.forEach(function (frame) {
      const li = list.querySelector('[data-client-id="' + CSS.escape(frame.client_id) + '"]');
      const note = li && li.querySelector(".pending-note");
      if (note) note.textContent = "Sending…";
      socket.send(JSON.stringify(frame));
    });
  }

  function send(frame) {
    if (canSend()) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // The server will not take this page's socket again (thread deleted, or not this user's): say so, stop.
  function closeForGood(label) {
    setConn("closed", label);
    showNotice(label + ".");
    [input, fileInput, sendButton].forEach(function (control) { control.disabled = true; });
    list.querySelectorAll(".actions button").forEach(function (control) { control.disabled = true; });
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function queue(frame, previewText) {
    frame.client_id = newClientId();
    outbox.set(frame.client_id, frame);
    const li = bubble("user");
    li.classList.add("pending");
    li.dataset.clientId = frame.client_id;
    ChatMarkdown.renderInto(li.querySelector(".content"), previewText);
    addNote(li.querySelector(".bubble"), "Sending…", "pending-note");
    scrollToEnd(true);
    send(frame);
    return frame;
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const content = input.value;
    if (!content.trim()) return;
    if (content.length > config.maxMessageChars) {
      showNotice("Messages are limited to " + config.maxMessageChars + " characters.");
      return;
    }
    queue({ type: "message", content: content }, content);
    input.value = "";
    autosize();
  });

  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 200) + "px";
  }
  input.addEventListener("input", autosize);

  fileInput.addEventListener("change", function () {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > config.maxUploadBytes) {
      showNotice(file.name + " is larger than " + Math.round(config.maxUploadBytes / 1048576) + " MB.");
      return;
    }
    const reader = new FileReader();
    reader.onload = function () {
      const data = String(reader.result).split(",", 2)[1] || "";
      const caption = input.value;
      input.value = "";
      queue(
        { type: "file", filename: file.name, content_type: file.type, data: data, content: caption },
        "📎 " + file.name + (caption ? "\n\n" + caption : ""),
      );
      watchUpload(file.name, data.length);
    };
    reader.onerror = function () { showNotice("Could not read " + file.name + "."); };
    reader.readAsDataURL(file);
  });

  // The browser reports what is still queued on the socket: that is the upload's progress.
  function watchUpload(name, total) {
    upload.hidden = false;
    uploadLabel.textContent = "Uploading " + name;
    const timer = setInterval(function () {
      const left = socket ? socket.bufferedAmount : total;
      uploadProgress.value = Math.max(0, Math.min(100, 100 - (100 * left) / total));
      if (!socket || left === 0) {
        clearInterval(timer);
        upload.hidden = true;
      }
    }, 100);
  }

  function connect(fresh) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const after = lastMessageId && fresh !== true ? "?after=" + encodeURIComponent(lastMessageId) : "";
    socket = new WebSocket(scheme + location.host + "/ws/" + config.threadId + "/" + config.userId + "/" + after);
    setConn("connecting", retries ? "Reconnecting…" : "Connecting…");
    socket.onopen = function () {
      openedAt = Date.now();
      setConn("open", "Live");
      flushOutbox();
    };
    socket.onmessage = function (e) {
      try {
        onEvent(JSON.parse(e.data));
      } catch (err) {
        console.error("bad event", err);
      }
    };
    socket.onclose = function (e) {
      socket = null;
      // Signed out (here or in another tab), deactivated: the login page says what to do.
      if (e.code === CLOSE_SIGNED_OUT) { location.href = "/accounts/login/?next=" + encodeURIComponent(location.pathname); return; }
      if (e.code === CLOSE_THREAD_DELETED) { closeForGood("This thread was deleted"); return; }
      if (e.code === CLOSE_FORBIDDEN || e.code === CLOSE_NOT_FOUND) { closeForGood("This thread is not available"); return; }
      // Only a connection that lived a while resets the back-off: one the server closes at once
      // (4503 while Redis or the database is down) keeps backing off.
      if (openedAt && Date.now() - openedAt > 10000) retries = 0;
      openedAt = 0;
      // Exponential back-off with jitter, at most 15 s between attempts.
      let delay = Math.min(15000, 500 * Math.pow(2, retries)) * (0.5 + Math.random() / 2);
      let label = "Offline";
      if (e.code === CLOSE_TOO_MANY) {
        // Closed for sending too much: wait at least what the server last asked, and no less than 10 s.
        delay = Math.max(delay, 1000 * lastRetryAfter, 10000);
        label = "Too many requests";
      }
      retries += 1;
      if (e.code === CLOSE_UNAVAILABLE) label = "Server unavailable";
      setConn("closed", label + ", retrying in " + Math.ceil(delay / 1000) + " s");
      setTimeout(connect, delay);
    };
  }

  window.addEventListener("online", function () { if (!socket) connect(); });
  connect();
})();

// Choosing a model switches at once (the form still works without JavaScript, with its button).
(() => {
  const form = document.getElementById("model-form");
  const select = document.getElementById("model-select");
  if (!form || !select) return;
  form.classList.add("js");
  select.addEventListener("change", () => form.requestSubmit());
})();
