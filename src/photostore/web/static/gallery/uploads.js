// Resumable uploads over tus 1.0 (tus-js-client, vendor/tus.min.js, a global `tus`): one row per file
// with a progress bar, pause and resume. Each upload's URL is kept in localStorage under a
// fingerprint of the file and the user, so after a reload (or a lost connection) choosing the same
// file again resumes where the server left off instead of sending it all again.

import { keyTag, problemDetail } from "gallery/api.js";

const ENDPOINT = "/v1/uploads";
const PARALLEL = 3;
const RETRY_DELAYS = [0, 1000, 3000, 5000];

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// The server's words for a failed tus request (problem+json detail), else the client's message.
export function uploadErrorMessage(err) {
  const response = err && err.originalResponse;
  if (response) {
    const detail = problemDetail(response.getBody() || "");
    if (detail) return detail;
    return `the server answered ${response.getStatus()}`;
  }
  return (err && err.message) || String(err);
}

export class Uploads {
  constructor({ api, list, chunkSize, onPhoto }) {
    this.api = api;
    this.list = list;
    this.chunkSize = chunkSize;
    this.onPhoto = onPhoto;
    this.items = [];
    this.tag = keyTag(api.key);
  }

  fingerprint(file) {
    return Promise.resolve(["photostore", this.tag, file.name, file.type, file.size, file.lastModified].join("|"));
  }

  addFiles(files) {
    for (const file of files) {
      this.dropInterrupted(file);
      const item = this.row(file);
      this.items.push(item);
    }
    this.pump();
  }

  // Rows for uploads this browser left unfinished (say, by a reload): choosing the file again resumes.
  async showInterrupted() {
    if (!window.tus) return;
    let stored = [];
    try {
      stored = await window.tus.defaultOptions.urlStorage.findAllUploads();
    } catch {
      return;
    }
    const prefix = `tus::photostore|${this.tag}|`;
    for (const upload of stored) {
      if (!upload.urlStorageKey || !upload.urlStorageKey.startsWith(prefix)) continue;
      const name = (upload.metadata && upload.metadata.filename) || "a file";
      const li = document.createElement("li");
      li.className = "upload interrupted";
      li.dataset.testid = "upload-interrupted";
      li.dataset.filename = name;
      li.dataset.size = String(upload.size);
      const text = document.createElement("span");
      text.textContent = `${name} (${formatBytes(upload.size)}) was interrupted: choose it again to resume.`;
      const forget = document.createElement("button");
      forget.type = "button";
      forget.textContent = "Forget";
      forget.dataset.testid = "upload-forget";
      forget.setAttribute("aria-label", `Forget the interrupted upload of ${name}`);
      forget.addEventListener("click", () => {
        // End it on the server too (it would expire there anyway), then forget its fingerprint.
        const options = { headers: { Authorization: this.api.authorization }, retryDelays: [] };
        if (upload.uploadUrl) window.tus.Upload.terminate(upload.uploadUrl, options).catch(() => {});
        window.tus.defaultOptions.urlStorage.removeUpload(upload.urlStorageKey).catch(() => {});
        li.remove();
      });
      li.append(text, " ", forget);
      this.list.append(li);
    }
  }

  dropInterrupted(file) {
    for (const li of this.list.querySelectorAll("[data-testid=upload-interrupted]")) {
      if (li.dataset.filename === file.name && li.dataset.size === String(file.size)) li.remove();
    }
  }

  row(file) {
    const li = document.createElement("li");
    li.className = "upload";
    li.dataset.testid = "upload";
    li.dataset.filename = file.name;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    const progress = document.createElement("progress");
    progress.max = file.size || 1;
    progress.value = 0;
    progress.dataset.testid = "upload-progress";
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const text = document.createElement("span");
    text.className = "state";
    text.dataset.testid = "upload-state";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.dataset.testid = "upload-toggle";
    toggle.hidden = true;
    const error = document.createElement("p");
    error.className = "error";
    error.dataset.testid = "upload-error";
    error.hidden = true;
    li.append(name, progress, text, toggle, error);
    this.list.prepend(li);
    const item = { file, li, progress, text, toggle, error, upload: null, state: "", photoLocation: null };
    toggle.addEventListener("click", () => this.toggle(item));
    this.setState(item, "queued", "Waiting…");
    return item;
  }

  setState(item, state, text) {
    item.state = state;
    item.li.dataset.state = state;
    item.text.textContent = text;
    item.toggle.hidden = !["uploading", "paused"].includes(state);
    item.toggle.textContent = state === "paused" ? "Resume" : "Pause";
  }

  pump() {
    let active = this.items.filter((i) => i.state === "starting" || i.state === "uploading").length;
    for (const item of this.items) {
      if (active >= PARALLEL) break;
      if (item.state !== "queued") continue;
      active += 1;
      this.start(item);
    }
  }

  async start(item) {
    this.setState(item, "starting", "Starting…");
    if (!window.tus || !window.tus.isSupported) {
      this.fail(item, "this browser cannot upload (tus-js-client is missing or unsupported)");
      return;
    }
    const upload = new window.tus.Upload(item.file, {
      endpoint: ENDPOINT,
      headers: { Authorization: this.api.authorization },
      metadata: { filename: item.file.name, filetype: item.file.type || "application/octet-stream" },
      chunkSize: this.chunkSize,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      fingerprint: (file) => this.fingerprint(file),
      onAfterResponse: (req, res) => this.afterResponse(item, req, res),
      onProgress: (sent, total) => this.progress(item, sent, total),
      onSuccess: () => this.succeed(item),
      onError: (err) => this.error(item, err),
    });
    item.upload = upload;
    try {
      const previous = await upload.findPreviousUploads();
      if (previous.length) {
        previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
        upload.resumeFromPreviousUpload(previous[0]);
        item.li.dataset.resumed = "true";
      }
    } catch {
      // no usable storage: upload from the start
    }
    upload.start();
    this.setState(item, "uploading", item.li.dataset.resumed ? "Resuming…" : "Uploading…");
  }

  afterResponse(item, req, res) {
    const location = res.getHeader("Photo-Location");
    if (location) item.photoLocation = location;
    if (req.getMethod() === "HEAD" && item.li.dataset.resumed) {
      item.li.dataset.resumedFrom = res.getHeader("Upload-Offset") || "0";
    }
  }

  progress(item, sent, total) {
    item.progress.max = total || 1;
    item.progress.value = sent;
    if (item.state === "uploading") {
      const pct = total ? Math.floor((100 * sent) / total) : 100;
      item.text.textContent = `${pct}% of ${formatBytes(total)}`;
    }
  }

  toggle(item) {
    if (item.state === "uploading") {
      item.upload.abort();
      this.setState(item, "paused", "Paused");
      this.pump();
    } else if (item.state === "paused") {
      this.setState(item, "uploading", "Resuming…");
      item.upload.start();
    }
  }

  succeed(item) {
    item.progress.value = item.progress.max;
    this.setState(item, "done", "Uploaded");
    this.onPhoto(item.photoLocation);
    this.pump();
  }

  error(item, err) {
    this.fail(item, uploadErrorMessage(err));
    const status = err && err.originalResponse ? err.originalResponse.getStatus() : 0;
    // A refused upload (a 4xx) cannot be resumed: end it on the server and forget its fingerprint.
    if (status >= 400 && status < 500 && item.upload && item.upload.url) item.upload.abort(true).catch(() => {});
  }

  fail(item, message) {
    this.setState(item, "error", "Failed");
    item.error.textContent = message;
    item.error.hidden = false;
    this.pump();
  }

  // Stop every upload in flight (sign-out); their fingerprints stay, so they can resume later.
  stop() {
    for (const item of this.items) {
      if (item.upload && (item.state === "uploading" || item.state === "starting")) item.upload.abort();
    }
    this.items = [];
    this.list.replaceChildren();
  }
}
