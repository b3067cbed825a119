// The chat page: send over the WebSocket, show messages and streamed replies live, reconnect with
// back-off and resume from the last message seen. The protocol is documented in README.md.
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

  document.querySelectorAll("[data-markdown]").forEach(function (node) {
    ChatMarkdown.renderInto(node, node.textContent);
  });
  scrollToEnd(true);

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
    lastMessageId = message.id;
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
    if (!li) li = bubble(message.role, message.id);
    li.classList.remove("pending", "failed");
    fillMessage(li, message);
    if (message.client_id) outbox.delete(message.client_id);
    scrollToEnd(message.role === "user");
  }

  function startStream(streamId) {
    // A replayed start (after a reconnect) restarts the text: the chunks follow from seq 0.
    let state = streams.get(streamId);
    if (!state) {
      const li = bubble("ai");
      li.classList.add("streaming");
      li.dataset.streamId = streamId;
      state = { node: li, text: "", nextSeq: 0 };
      streams.set(streamId, state);
    }
    state.text = "";
    state.nextSeq = 0;
    state.node.querySelector(".content").textContent = "";
    state.node.querySelectorAll(".steps").forEach(function (n) { n.remove(); });
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
    if (!li) li = list.querySelector('[data-id="' + event.message.id + '"]') || bubble("ai");
    li.classList.remove("streaming");
    fillMessage(li, event.message);
    if (event.status === "error") li.classList.add("msg-error");
    scrollToEnd(false);
  }

  function onEvent(event) {
    switch (event.type) {
      case "message": showMessage(event.message); break;
      case "stream_start": startStream(event.stream_id); break;
      case "stream_chunk": appendChunk(event); break;
      case "stream_status": showStep(event); break;
      case "stream_end": endStream(event.stream_id, event); break;
      case "error": onError(event); break;
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

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const after = lastMessageId ? "?after=" + encodeURIComponent(lastMessageId) : "";
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
