// threadline playground: the signed-in key (this tab only), the compose-and-stream
// form, nothing else. Pages are rendered by the server and fetched by htmx.
(function () {
  "use strict";
  var KEY = "threadline.apiKey";
  var key = function () { return sessionStorage.getItem(KEY); };
  var bearer = function () { return { Authorization: "Bearer " + key() }; };

  document.addEventListener("htmx:configRequest", function (event) {
    if (key()) event.detail.headers.Authorization = "Bearer " + key();
  });

  // What the server answers outside the playground's pages (a 413 for an upload
  // over the limit, a 500) is OpenAI's JSON envelope: shown as its message.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status < 400 || !(xhr.getResponseHeader("Content-Type") || "").includes("json")) return;
    var message = "HTTP " + xhr.status;
    try { message = JSON.parse(xhr.responseText).error.message; } catch (e) { /* not the envelope */ }
    var alert = document.createElement("p");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.textContent = message;
    event.detail.serverResponse = alert.outerHTML;
    event.detail.shouldSwap = true;
  });

  async function apiError(response) {
    try {
      var body = await response.json();
      return body.error.message;
    } catch (e) {
      return "HTTP " + response.status;
    }
  }

  async function api(method, path, body) {
    var options = { method: method, headers: bearer() };
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    var response = await fetch("/v1" + path, options);
    if (!response.ok) throw new Error(await apiError(response));
    return response;
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  async function signIn(event) {
    event.preventDefault();
    var form = event.target;
    var error = document.getElementById("signin-error");
    var typed = form.key.value.trim();
    var response = await fetch("/v1/assistants?limit=1", { headers: { Authorization: "Bearer " + typed } });
    if (!response.ok) {
      show(error, "That key was not accepted: " + (await apiError(response)));
      return;
    }
    sessionStorage.setItem(KEY, typed);
    var next = new URLSearchParams(location.search).get("next");
    location.assign(next && next.startsWith("/playground/") ? next : "/playground/assistants");
  }

  // --- the thread page: send a message, then run it and stream the answer ---------
  function events(onEvent) {
    var buffer = "";
    return function (chunk) {
      buffer += chunk.replace(/\r\n/g, "\n");
      var end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        var name = "message", data = [];
        block.split("\n").forEach(function (line) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        });
        onEvent(name, data.join("\n"));
      }
    };
  }

  async function streamRun(threadId, assistantId) {
    var box = document.getElementById("stream");
    var text = document.getElementById("stream-text");
    var status = document.getElementById("stream-status");
    var link = document.getElementById("stream-run");
    box.hidden = false;
    text.textContent = "";
    var setStatus = function (s) { status.textContent = s; status.className = "badge " + s; };
    setStatus("queued");
    var response = await api("POST", "/threads/" + threadId + "/runs",
      { assistant_id: assistantId, stream: true });
    var feed = events(function (name, data) {
      if (name === "done" || !data) return;
      var object = JSON.parse(data);
      if (object.object === "thread.run") {
        setStatus(object.status);
        link.textContent = object.id;
        link.href = "/playground/threads/" + threadId + "/runs/" + object.id;
      }
      if (name === "thread.message.delta") {
        (object.delta.content || []).forEach(function (part) {
          if (part.type === "text" && part.text && part.text.value) text.textContent += part.text.value;
        });
      }
      if (name === "error") setStatus("failed");
    });
    var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      var read = await reader.read();
      if (read.done) break;
      feed(read.value);
    }
    box.dataset.finished = status.textContent;
  }

  async function compose(event) {
    event.preventDefault();
    var form = event.target;
    var error = document.getElementById("compose-error");
    var button = form.querySelector("button[type=submit]");
    var threadId = form.dataset.thread;
    show(error, "");
    button.disabled = true;
    try {
      var attachments = [];
      for (var file of form.files.files) {
        var upload = new FormData();
        upload.append("purpose", "assistants");
        upload.append("file", file);
        var made = await (await api("POST", "/files", upload)).json();
        attachments.push({ file_id: made.id, tools: [{ type: form.attach_tool.value }] });
      }
      var message = { role: "user", content: form.content.value };
      if (attachments.length) message.attachments = attachments;
      await api("POST", "/threads/" + threadId + "/messages", message);
      var sent = document.createElement("article");
      sent.className = "message user";
      sent.innerHTML = "<header><strong>user</strong></header><div class=\"text\"></div>";
      sent.querySelector(".text").textContent = message.content;
      document.getElementById("messages").appendChild(sent);
      form.content.value = "";
      form.files.value = "";
      var empty = document.getElementById("no-messages");
      if (empty) empty.remove();
      await streamRun(threadId, form.assistant_id.value);
      var finished = document.getElementById("stream").dataset.finished;
      var again = location.pathname + "?assistant=" + encodeURIComponent(form.assistant_id.value);
      htmx.ajax("GET", again, { target: "#main" }).then(function () {
        var note = document.getElementById("compose-error");
        if (finished === "requires_action" && note) {
          note.className = "alert ok";
          show(note, "The run waits for tool outputs: open it from the list of runs.");
        }
      });
    } catch (e) {
      show(error, e.message);
    } finally {
      button.disabled = false;
    }
  }

  // A file's content needs the key, so a plain link cannot fetch it.
  async function download(link) {
    var response = await api("GET", "/files/" + link.dataset.download + "/content");
    var url = URL.createObjectURL(await response.blob());
    var save = document.createElement("a");
    save.href = url;
    save.download = link.dataset.name || link.dataset.download;
    document.body.appendChild(save);
    save.click();
    save.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-download]");
    if (!link) return;
    event.preventDefault();
    download(link).catch(function (e) { alert("Download failed: " + e.message); });
  });

  document.addEventListener("submit", function (event) {
    if (event.target.id === "signin-form") signIn(event);
    else if (event.target.id === "compose") compose(event);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.dataset.shell && !key()) {
      location.replace("/playground?next=" + encodeURIComponent(location.pathname));
      return;
    }
    var out = document.getElementById("sign-out");
    if (out) out.addEventListener("click", function () {
      sessionStorage.removeItem(KEY);
      location.assign("/playground");
    });
  });
})();
