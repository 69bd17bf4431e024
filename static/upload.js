// Upload page: sends each file as a raw PUT body (so progress events work), a few at a time,
// retries only what is worth retrying, and lists what the server stored for the item.
// Plain script, no build step, no external resource: Nginx serves it as is.
(function () {
  "use strict";

  var CONFIG = {
    parallel: 3,          // uploads in flight at once
    maxAttempts: 3,       // first try + 2 retries
    backoffBaseMs: 1000,  // 1 s, 2 s, ... with jitter
    backoffMaxMs: 8000,
    retryAfterMaxMs: 60000, // honour Retry-After up to this; longer means "give up, say when"
    pageSize: 50,
  };

  var ITEM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
  // RFC 6750 b64token, as the server checks it: anything else could not even go into a header.
  var TOKEN = /^[A-Za-z0-9._~+\/-]+=*$/;
  var TOKEN_MAX = 1024;
  var TOKEN_KEY = "landing.accessToken"; // in sessionStorage: this tab only, gone when it closes
  var BLOB_URL_LIFETIME_MS = 40000;      // long enough for the browser to start the download
  // Statuses where a new try can succeed; every other 4xx is final (the same body would fail again).
  var RETRYABLE = { 0: true, 408: true, 429: true, 502: true, 503: true, 504: true };

  var el = {};
  var queue = [];   // tasks waiting for a slot
  var active = 0;   // tasks holding a slot (sending or waiting to retry)
  var mediaCursor = null;
  var mediaItem = null;
  var mediaRequest = 0; // ignores answers to list requests that a newer one replaced
  // Whether reading needs a token (auth on, public_reads off): null until a request sent
  // without one tells. Only then must a download go through fetch, which can send the header.
  var readsNeedToken = null;
  var probingReads = false;

  // ---- small helpers ------------------------------------------------------------------------

  function uuid() {
    // randomUUID exists only in secure contexts; getRandomValues everywhere.
    if (window.isSecureContext && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); });
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    var units = ["KiB", "MiB", "GiB", "TiB"];
    var v = bytes, i = -1;
    do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[i];
  }

  function parseJson(text) {
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  // FastAPI's own 422 carries a list of {loc, msg}; ours carry a string.
  function detailText(body) {
    if (!body || body.detail === undefined || body.detail === null) return "";
    var d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d.map(function (e) { return e && e.msg ? e.msg : JSON.stringify(e); }).join("; ");
    }
    return JSON.stringify(d);
  }

  function errorMessage(status, body, statusText) {
    var detail = detailText(body);
    var say = function (lead) { return detail ? lead + ": " + detail : lead; };
    switch (status) {
      case 0: return "Network error: the connection to the server was lost";
      case 400: return say("Rejected by the server");
      case 401: case 403: return say("Access token missing or not accepted");
      case 404: return say("Not found");
      case 408: return "The server timed out waiting for the file";
      case 409: return say("Conflict");
      case 413: return "File too large (" + (detail || "over the server's limit") + ")";
      case 415: return say("File type not accepted");
      case 422: return say("Invalid request");
      case 429: return "Too many uploads right now";
      case 502: case 503: case 504: return "Server unavailable (HTTP " + status + ")";
      case 507: return "The server is out of storage space";
      default: return say("Upload failed (HTTP " + status + (statusText ? " " + statusText : "") + ")");
    }
  }

  // Retry-After is either delay-seconds or an HTTP date; anything else is ignored.
  function retryAfterMs(header) {
    if (!header) return null;
    if (/^\s*\d+\s*$/.test(header)) return parseInt(header, 10) * 1000;
    var at = Date.parse(header);
    return isNaN(at) ? null : Math.max(0, at - Date.now());
  }

  function backoffMs(attempt) {
    var base = Math.min(CONFIG.backoffMaxMs, CONFIG.backoffBaseMs * Math.pow(2, attempt - 1));
    return Math.round(base * (0.75 + Math.random() * 0.5)); // jitter: clients do not retry in step
  }

  function itemUrl(itemId) {
    return "/api/items/" + encodeURIComponent(itemId) + "/media";
  }

  // ---- one upload -----------------------------------------------------------------------------

  function makeRow(file) {
    var row = el.rowTemplate.content.firstElementChild.cloneNode(true);
    row.querySelector("[data-testid=upload-name]").textContent = file.name;
    var size = row.querySelector("[data-testid=upload-size]");
    size.textContent = formatSize(file.size);
    size.title = file.size + " bytes";
    row.querySelector("progress").setAttribute("aria-label", "Upload progress of " + file.name);
    row.querySelector("[data-testid=upload-cancel]").setAttribute("aria-label", "Cancel " + file.name);
    return row;
  }

  function setState(task, state, text) {
    task.row.dataset.state = state;
    task.row.querySelector("[data-testid=upload-state]").textContent = text || state;
  }

  function setProgress(task, percent) {
    var p = task.row.querySelector("progress");
    p.value = percent;
    p.textContent = percent + " %"; // fallback text for browsers without <progress>
  }

  function finish(task, state, text) {
    task.done = true;
    setState(task, state, text);
    task.row.querySelector("[data-testid=upload-cancel]").hidden = true;
    active--;
    pump();
  }

  function showResult(task, media) {
    var result = task.row.querySelector("[data-testid=upload-result]");
    var link = result.querySelector("[data-testid=upload-link]");
    link.textContent = media.filename;
    wireDownload(link, media, el.status);
    result.querySelector("[data-testid=upload-result-size]").textContent = formatSize(media.size);
    result.querySelector("[data-testid=upload-result-type]").textContent = media.content_type;
    result.hidden = false;
    task.row.dataset.mediaId = media.id;
  }

  function showError(task, message) {
    var error = task.row.querySelector("[data-testid=upload-error]");
    error.textContent = message;
    error.hidden = false;
  }

  function send(task) {
    task.attempt++;
    var xhr = new XMLHttpRequest();
    task.xhr = xhr;
    xhr.open("PUT", itemUrl(task.itemId) + "?filename=" + encodeURIComponent(task.file.name));
    // The same key on every try: if a first try was stored but its answer lost, the server
    // answers the retry with that stored media instead of storing the file twice.
    xhr.setRequestHeader("Idempotency-Key", task.key);
    xhr.setRequestHeader("Content-Type", task.file.type || "application/octet-stream");
    var token = accessToken(); // read at each try: a token entered after a failure counts
    if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
    xhr.responseType = "text";

    // Listeners on xhr.upload must exist before send(), or the browser sends no upload events.
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable || e.total <= 0) return;
      setProgress(task, Math.floor((e.loaded / e.total) * 100));
      // What the browser says it sent: shown on hover, and lets a test tell real progress
      // events from the 100 % set on the answer.
      var p = task.row.querySelector("progress");
      p.dataset.sent = String(e.loaded);
      p.title = e.loaded + " of " + e.total + " bytes sent";
    };
    xhr.onload = function () { settle(task, xhr.status, xhr.responseText, xhr); };
    xhr.onerror = function () { settle(task, 0, "", xhr); };
    xhr.ontimeout = function () { settle(task, 0, "", xhr); };
    xhr.onabort = function () {
      // Only the Cancel button aborts; settle it there so a late event cannot count twice.
    };

    setProgress(task, 0);
    delete task.row.querySelector("progress").dataset.sent;
    setState(task, "uploading", task.attempt > 1
      ? "uploading (try " + task.attempt + " of " + CONFIG.maxAttempts + ")"
      : "uploading");
    xhr.send(task.file);
  }

  function settle(task, status, text, xhr) {
    if (task.done || task.cancelled) return;
    task.xhr = null;
    var body = parseJson(text);
    if (status === 201 || status === 200) {
      setProgress(task, 100);
      if (body && body.id) showResult(task, body);
      announce(task.file.name + " uploaded");
      finish(task, "done", "done");
      return;
    }
    var message = errorMessage(status, body, xhr.statusText);
    if (RETRYABLE[status] && task.attempt < CONFIG.maxAttempts) {
      var hinted = retryAfterMs(xhr.getResponseHeader("Retry-After"));
      if (hinted !== null && hinted > CONFIG.retryAfterMaxMs) {
        giveUp(task, message + "; the server asks to wait " + Math.ceil(hinted / 1000) + " s");
        return;
      }
      var wait = hinted !== null ? Math.max(hinted, 250) : backoffMs(task.attempt);
      setState(task, "retrying",
        message + " — retrying in " + Math.max(1, Math.round(wait / 1000)) + " s");
      task.timer = setTimeout(function () {
        task.timer = null;
        if (!task.cancelled) send(task);
      }, wait);
      return;
    }
    if (RETRYABLE[status] && task.attempt > 1) message += " (gave up after " + task.attempt + " tries)";
    giveUp(task, message);
  }

  function giveUp(task, message) {
    showError(task, message);
    announce(task.file.name + ": " + message);
    finish(task, "error", "failed");
  }

  function cancel(task) {
    if (task.done || task.cancelled) return;
    task.cancelled = true;
    if (task.timer) { clearTimeout(task.timer); task.timer = null; }
    var queued = queue.indexOf(task);
    if (queued !== -1) {
      queue.splice(queued, 1);
      active++; // finish() releases a slot; a queued task never held one
    }
    if (task.xhr) { task.xhr.abort(); task.xhr = null; }
    announce(task.file.name + " cancelled");
    finish(task, "cancelled", "cancelled");
  }

  // ---- the queue ------------------------------------------------------------------------------

  function enqueue(files) {
    var itemId = el.itemId.value.trim();
    if (!checkItemId()) {
      announce("Fix the item id before uploading.");
      el.itemId.focus();
      return;
    }
    if (!checkToken()) {
      announce("Fix the access token before uploading.");
      el.token.focus();
      return;
    }
    if (!files.length) return;
    el.uploadsSection.hidden = false;
    Array.prototype.forEach.call(files, function (file) {
      var task = { file: file, itemId: itemId, key: uuid(), attempt: 0, row: makeRow(file),
                   xhr: null, timer: null, done: false, cancelled: false };
      task.row.dataset.idempotencyKey = task.key;
      task.row.querySelector("[data-testid=upload-cancel]").addEventListener("click", function () {
        cancel(task);
      });
      el.uploads.appendChild(task.row);
      queue.push(task);
    });
    announce(files.length === 1 ? "Uploading 1 file" : "Uploading " + files.length + " files");
    pump();
  }

  function pump() {
    while (active < CONFIG.parallel && queue.length) {
      active++;
      send(queue.shift());
    }
    if (active === 0 && queue.length === 0 && el.uploads.children.length) {
      summarise();
      loadMedia(false);
    }
  }

  function summarise() {
    var counts = { done: 0, error: 0, cancelled: 0 };
    Array.prototype.forEach.call(el.uploads.children, function (row) {
      if (counts[row.dataset.state] !== undefined) counts[row.dataset.state]++;
    });
    var parts = [counts.done + " uploaded"];
    if (counts.error) parts.push(counts.error + " failed");
    if (counts.cancelled) parts.push(counts.cancelled + " cancelled");
    announce("Finished: " + parts.join(", ") + ".");
  }

  function announce(text) {
    el.status.textContent = text;
  }

  // ---- the item's media -----------------------------------------------------------------------

  function loadMedia(more) {
    var itemId = el.itemId.value.trim();
    if (!ITEM_ID.test(itemId)) return;
    if (!more) { mediaCursor = null; }
    var ticket = ++mediaRequest;
    var headers = withToken({ Accept: "application/json" });
    var url = itemUrl(itemId) + "?limit=" + CONFIG.pageSize +
      (more && mediaCursor ? "&cursor=" + encodeURIComponent(mediaCursor) : "");
    el.mediaStatus.textContent = "Loading…";
    el.mediaItem.textContent = itemId;
    fetch(url, { headers: headers, credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (t) { return { status: r.status, text: t, statusText: r.statusText }; });
      })
      .then(function (r) {
        if (!headers.Authorization) learnReads(r.status);
        if (ticket !== mediaRequest) return;
        var body = parseJson(r.text);
        if (r.status !== 200 || !body || !Array.isArray(body.items)) {
          el.mediaStatus.textContent = "Could not load the list: " +
            errorMessage(r.status, body, r.statusText);
          return;
        }
        if (!more) el.mediaList.textContent = "";
        body.items.forEach(function (m) { el.mediaList.appendChild(mediaRow(m)); });
        mediaItem = itemId;
        mediaCursor = body.next_cursor || null;
        el.mediaMore.hidden = !mediaCursor;
        var n = el.mediaList.children.length;
        el.mediaStatus.textContent = n === 0 ? "No files stored for " + itemId + " yet."
          : n + (n === 1 ? " file" : " files") + (mediaCursor ? " shown, more available." : ".");
      })
      .catch(function () {
        if (ticket !== mediaRequest) return;
        el.mediaStatus.textContent = "Could not load the list: " + errorMessage(0, null, "");
      });
  }

  function mediaRow(m) {
    var row = el.mediaTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.mediaId = m.id;
    var link = row.querySelector("[data-testid=media-link]");
    link.textContent = m.filename;
    wireDownload(link, m, el.mediaStatus);
    var size = row.querySelector("[data-testid=media-size]");
    size.textContent = formatSize(m.size);
    size.title = m.size + " bytes";
    row.querySelector("[data-testid=media-type]").textContent = m.content_type;
    var time = row.querySelector("[data-testid=media-created]");
    time.dateTime = m.created_at;
    var created = new Date(m.created_at);
    time.textContent = isNaN(created.getTime()) ? m.created_at : created.toLocaleString();
    var del = row.querySelector("[data-testid=media-delete]");
    del.setAttribute("aria-label", "Delete " + m.filename);
    del.addEventListener("click", function () { deleteMedia(m, row, del); });
    return row;
  }

  function deleteMedia(m, row, button) {
    if (!window.confirm("Delete " + m.filename + "?")) return;
    button.disabled = true;
    fetch("/api/media/" + encodeURIComponent(m.id),
          { method: "DELETE", headers: withToken({}), credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (t) { return { status: r.status, text: t, statusText: r.statusText }; });
      })
      .then(function (r) {
        if (r.status === 204 || r.status === 404) { // 404: already gone, which is what was asked
          row.remove();
          el.mediaStatus.textContent = m.filename + " deleted.";
          return;
        }
        button.disabled = false;
        el.mediaStatus.textContent = "Could not delete " + m.filename + ": " +
          errorMessage(r.status, parseJson(r.text), r.statusText);
      })
      .catch(function () {
        button.disabled = false;
        el.mediaStatus.textContent = "Could not delete " + m.filename + ": " + errorMessage(0, null, "");
      });
  }

  // ---- downloads ------------------------------------------------------------------------------

  // A plain link cannot carry a bearer token. When reads need one (or it is not known yet), a
  // click fetches the file with the header and saves it from a Blob URL instead: the whole file
  // sits in memory, fine for moderate files; large protected ones want signed URLs.
  function wireDownload(link, media, statusEl) {
    link.href = media.url;
    link.setAttribute("download", media.filename);
    link.addEventListener("click", function (e) {
      if (!accessToken() || readsNeedToken === false) return; // the browser follows the link
      e.preventDefault();
      downloadWithToken(link, media, statusEl);
    });
  }

  function downloadWithToken(link, media, statusEl) {
    if (link.getAttribute("aria-busy") === "true") return; // one fetch per link at a time
    link.setAttribute("aria-busy", "true");
    statusEl.textContent = "Downloading " + media.filename + "…";
    fetch(media.url, { headers: withToken({}), credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.ok) return r.blob().then(function (blob) { return { blob: blob }; });
        return r.text().then(function (t) {
          return { message: errorMessage(r.status, parseJson(t), r.statusText) };
        });
      })
      .then(function (result) {
        if (!result.blob) {
          statusEl.textContent = "Could not download " + media.filename + ": " + result.message;
          return;
        }
        saveBlob(result.blob, media.filename);
        statusEl.textContent = media.filename + " downloaded.";
      })
      .catch(function () {
        statusEl.textContent = "Could not download " + media.filename + ": " + errorMessage(0, null, "");
      })
      .then(function () { link.removeAttribute("aria-busy"); });
  }

  function saveBlob(blob, filename) {
    // Retyped as octet-stream: a Blob URL belongs to this page's origin, so an uploaded HTML
    // or SVG file must never render from it, only be saved.
    var url = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
    var a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    // Revoking at once can cancel a download the browser has not started reading yet.
    setTimeout(function () { URL.revokeObjectURL(url); }, BLOB_URL_LIFETIME_MS);
  }

  // Told by an answer to a request sent without a token (the list, or the probe below).
  function learnReads(status) {
    if (status === 401) readsNeedToken = true;
    else if (status >= 200 && status < 300) readsNeedToken = false;
  }

  // With a token set and the answer unknown (the page opened with a stored token), ask once,
  // deliberately without the token, whether anyone may read: if so, links stay plain links and
  // the browser streams downloads to disk.
  function probeReads() {
    var itemId = el.itemId.value.trim();
    if (readsNeedToken !== null || probingReads || !ITEM_ID.test(itemId)) return;
    probingReads = true;
    fetch(itemUrl(itemId) + "?limit=1",
          { headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store" })
      .then(function (r) { learnReads(r.status); })
      .catch(function () { /* still unknown: downloads keep going through fetch */ })
      .then(function () { probingReads = false; });
  }

  // ---- the access token -----------------------------------------------------------------------

  function tokenStore() {
    // sessionStorage, never localStorage: the token must not outlive the tab. Storage can be
    // switched off, and then the token lives in the field for as long as the page does.
    try { return window.sessionStorage; } catch (e) { return null; }
  }

  function accessToken() {
    var t = el.token.value.trim();
    return t.length <= TOKEN_MAX && TOKEN.test(t) ? t : "";
  }

  function withToken(headers) {
    var token = accessToken();
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  }

  function checkToken() {
    var t = el.token.value.trim();
    var ok = t === "" || (t.length <= TOKEN_MAX && TOKEN.test(t));
    el.token.setAttribute("aria-invalid", ok ? "false" : "true");
    el.tokenError.hidden = ok;
    el.tokenError.textContent = ok ? "" : "Not a valid token: up to " + TOKEN_MAX +
      " letters, digits and . _ ~ + / -, possibly ending in =, without spaces.";
    return ok;
  }

  function saveToken() {
    checkToken();
    var token = accessToken();
    var store = tokenStore();
    if (store) {
      try {
        if (token) store.setItem(TOKEN_KEY, token);
        else store.removeItem(TOKEN_KEY);
      } catch (e) { /* quota or privacy mode: the field still holds it */ }
    }
    showTokenState();
    if (token) probeReads();
  }

  function showTokenState() {
    el.tokenState.textContent = accessToken()
      ? "A token is set for this tab."
      : "No token set.";
    el.tokenForget.disabled = el.token.value === "";
  }

  function forgetToken() {
    el.token.value = "";
    saveToken();
    announce("Access token forgotten.");
    el.token.focus(); // the Forget button is now disabled and would drop the focus
    loadMedia(false);
  }

  function restoreToken() {
    var store = tokenStore();
    var saved = null;
    try { saved = store ? store.getItem(TOKEN_KEY) : null; } catch (e) { saved = null; }
    if (saved) el.token.value = saved;
    checkToken();
    showTokenState();
    if (accessToken()) probeReads();
  }

  // ---- wiring ---------------------------------------------------------------------------------

  function checkItemId() {
    var ok = ITEM_ID.test(el.itemId.value.trim());
    el.itemId.setAttribute("aria-invalid", ok ? "false" : "true");
    el.itemIdError.hidden = ok;
    el.itemIdError.textContent = ok ? "" : "Not a valid item id.";
    return ok;
  }

  function busy() {
    return active > 0 || queue.length > 0;
  }

  function init() {
    el.form = document.getElementById("upload-form");
    el.itemId = document.getElementById("item-id");
    el.itemIdError = document.getElementById("item-id-error");
    el.fileInput = document.getElementById("file-input");
    el.dropZone = document.getElementById("drop-zone");
    el.status = document.getElementById("upload-status");
    el.uploadsSection = document.getElementById("uploads-section");
    el.uploads = document.getElementById("uploads");
    el.rowTemplate = document.getElementById("upload-row-template");
    el.mediaItem = document.getElementById("media-item");
    el.mediaStatus = document.getElementById("media-status");
    el.mediaList = document.getElementById("media-list");
    el.mediaMore = document.getElementById("media-more");
    el.mediaRefresh = document.getElementById("media-refresh");
    el.mediaTemplate = document.getElementById("media-row-template");
    el.token = document.getElementById("access-token");
    el.tokenState = document.getElementById("access-token-state");
    el.tokenError = document.getElementById("access-token-error");
    el.tokenForget = document.getElementById("access-token-forget");

    el.form.addEventListener("submit", function (e) { e.preventDefault(); });
    el.fileInput.addEventListener("change", function () {
      var files = Array.prototype.slice.call(el.fileInput.files);
      el.fileInput.value = ""; // choosing the same file again must fire change again
      enqueue(files);
    });

    // The whole window swallows drops so a file dropped beside the zone is not opened in place.
    ["dragover", "drop"].forEach(function (type) {
      window.addEventListener(type, function (e) { e.preventDefault(); });
    });
    el.dropZone.addEventListener("dragenter", function () { el.dropZone.classList.add("over"); });
    el.dropZone.addEventListener("dragover", function (e) {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
      el.dropZone.classList.add("over");
    });
    el.dropZone.addEventListener("dragleave", function (e) {
      if (!el.dropZone.contains(e.relatedTarget)) el.dropZone.classList.remove("over");
    });
    el.dropZone.addEventListener("drop", function (e) {
      e.preventDefault();
      el.dropZone.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files) enqueue(Array.prototype.slice.call(e.dataTransfer.files));
    });

    el.itemId.addEventListener("input", function () { if (el.itemId.getAttribute("aria-invalid") === "true") checkItemId(); });
    el.itemId.addEventListener("change", function () {
      if (checkItemId() && el.itemId.value.trim() !== mediaItem) loadMedia(false);
    });
    el.mediaRefresh.addEventListener("click", function () { loadMedia(false); });
    el.token.addEventListener("input", saveToken);
    // A new token may open a list that was refused: ask again once the field is left.
    el.token.addEventListener("change", function () { if (checkToken()) loadMedia(false); });
    el.tokenForget.addEventListener("click", forgetToken);
    el.mediaMore.addEventListener("click", function () { loadMedia(true); });

    window.addEventListener("beforeunload", function (e) {
      if (busy()) { e.preventDefault(); e.returnValue = ""; }
    });

    restoreToken();
    loadMedia(false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
