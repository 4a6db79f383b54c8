// photostore gallery: sign in with an API key, upload with tus (resumable), browse the timeline,
// open a photo (preview, EXIF, download, delete). No build step: ES modules found through the
// page's import map (see photostore/web/gallery.py), tus-js-client as a classic script.
//
// Stable hooks for tests (ids unless marked data-testid):
//   sign-in     #signin (section), #signin-form, #api-key, #signin-button, #signin-error
//   app         #app (shown when signed in), #signout-button
//   upload      #dropzone (drop files here), #file-input (<input type=file multiple>), #upload-list
//               each file: li[data-testid=upload][data-filename][data-state=queued|starting|
//               uploading|paused|done|error] (data-resumed="true" and data-resumed-from=<offset>
//               when it resumed an earlier upload), with progress[data-testid=upload-progress],
//               [data-testid=upload-state], button[data-testid=upload-toggle] (pause / resume),
//               [data-testid=upload-error] (the server's problem detail)
//               li[data-testid=upload-interrupted][data-filename]: an unfinished upload from before
//   timeline    #grid, li[data-testid=photo-tile][data-photo-id][data-status=processing|ready]
//               (class "loaded" once its thumbnail shows), img[data-testid=thumb][data-loaded=true],
//               #grid-sentinel (infinite scroll), #grid-status
//   photo view  dialog#photo-view[data-photo-id] (open for the hash #photo/<id>), #photo-title,
//               #photo-preview (img, data-loaded=true once shown), #photo-facts, #exif-table
//               (tr[data-key=make] ...), #exif-empty, #photo-download, #photo-delete (confirms with
//               window.confirm), #photo-close, #photo-error
// Knobs in localStorage (for tests and debugging): photostore.pageSize (photos per page, default 60),
// photostore.chunkBytes (tus chunk size, default 8 MiB).

import { Api } from "gallery/api.js";
import { Grid } from "gallery/grid.js";
import { Uploads } from "gallery/uploads.js";
import { Viewer } from "gallery/viewer.js";

const KEY_STORAGE = "photostore.apiKey";
const PHOTO_HASH = /^#photo\/([\w-]+)$/;

const $ = (id) => document.getElementById(id);

function knob(name, fallback) {
  const value = Number.parseInt(localStorage.getItem(name) || "", 10);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

let session = null; // {api, grid, uploads, viewer} while signed in

async function signIn(key, remembered) {
  const api = new Api(key);
  const error = $("signin-error");
  error.hidden = true;
  $("signin-button").disabled = true;
  try {
    await api.listPhotos(1); // the key works (a wrong one is a 401 with the reason)
  } catch (err) {
    if (remembered && (err.status === 401 || err.status === 403)) sessionStorage.removeItem(KEY_STORAGE);
    error.textContent = err.message;
    error.hidden = false;
    $("api-key").focus();
    return;
  } finally {
    $("signin-button").disabled = false;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  start(api);
}

function start(api) {
  const grid = new Grid({
    api,
    list: $("grid"),
    sentinel: $("grid-sentinel"),
    status: $("grid-status"),
    pageSize: knob("photostore.pageSize", 60),
    onOpen: (id) => openPhoto(id),
  });
  const uploads = new Uploads({
    api,
    list: $("upload-list"),
    chunkSize: knob("photostore.chunkBytes", 8 * 1024 * 1024),
    onPhoto: (location) => uploaded(location),
  });
  const viewer = new Viewer({ api, grid, dialog: $("photo-view"), onClosed: () => viewerClosed() });
  session = { api, grid, uploads, viewer, pushed: false };
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout-button").hidden = false;
  grid.start();
  uploads.showInterrupted();
  route();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  if (session) {
    session.viewer.destroy();
    session.uploads.stop();
    session.grid.stop();
    session = null;
  }
  $("app").hidden = true;
  $("signout-button").hidden = true;
  $("signin").hidden = false;
  $("api-key").focus();
}

// A finished upload: show its photo first in the grid (the newest) and poll it until it is ready.
async function uploaded(location) {
  if (!session) return;
  const { api, grid } = session;
  if (!location) return; // an upload resumed as already complete: the grid has it, or will on reload
  try {
    grid.add(await api.getPhoto(location), true);
  } catch (err) {
    console.warn("uploaded photo not readable", location, err);
  }
}

function openPhoto(id) {
  if (!session) return;
  session.pushed = true;
  location.hash = `#photo/${id}`; // the hashchange opens it, so links and Back work the same
}

function route() {
  if (!session) return;
  const match = PHOTO_HASH.exec(location.hash);
  if (match) session.viewer.open(match[1]);
  else session.viewer.close();
}

function viewerClosed() {
  if (!session || !PHOTO_HASH.test(location.hash)) return;
  if (session.pushed) {
    session.pushed = false;
    history.back();
  } else {
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function setUpDropzone() {
  const zone = $("dropzone");
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  // The whole window takes the drop (a file dropped beside the box must not navigate away).
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = session ? "copy" : "none";
    zone.classList.add("dragging");
  });
  window.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) zone.classList.remove("dragging");
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    zone.classList.remove("dragging");
    if (session && event.dataTransfer.files.length) session.uploads.addFiles(event.dataTransfer.files);
  });
}

function main() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      $("signin-error").textContent = "Enter an API key.";
      $("signin-error").hidden = false;
      return;
    }
    signIn(key, false);
  });
  $("signout-button").addEventListener("click", signOut);
  $("file-input").addEventListener("change", (event) => {
    if (session && event.target.files.length) session.uploads.addFiles(event.target.files);
    event.target.value = ""; // choosing the same file again (to resume it) fires change again
  });
  setUpDropzone();
  window.addEventListener("hashchange", route);
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) signIn(key, true);
  else $("api-key").focus();
}

main();
