// The photo view: a modal <dialog> with the preview variant, the EXIF table, download of the
// original and delete. The app opens it for the URL hash `#photo/<id>`; Escape or the close button
// closes it.

import { paintBlurhash } from "gallery/blurhash.js";
import { sizePlaceholder } from "gallery/grid.js";

const LABELS = {
  make: "Make",
  model: "Model",
  lens: "Lens",
  software: "Software",
  taken_at: "Taken",
  exposure_time: "Exposure",
  f_number: "Aperture",
  focal_length: "Focal length",
  iso: "ISO",
  orientation: "Orientation",
  "gps.latitude": "Latitude",
  "gps.longitude": "Longitude",
  "gps.altitude": "Altitude",
};

function formatExif(key, value) {
  if (typeof value !== "number") return String(value);
  if (key === "exposure_time") return value > 0 && value < 1 ? `1/${Math.round(1 / value)} s` : `${value} s`;
  if (key === "f_number") return `f/${value}`;
  if (key === "focal_length") return `${value} mm`;
  if (key === "gps.altitude") return `${value} m`;
  return String(value);
}

// [key, value] rows of a (possibly nested) EXIF dict; nested keys are joined with dots.
export function exifRows(exif, prefix = "") {
  const rows = [];
  for (const [key, value] of Object.entries(exif || {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) rows.push(...exifRows(value, name));
    else if (value !== null && value !== undefined) rows.push([name, value]);
  }
  return rows;
}

function formatBytes(n) {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`;
}

export class Viewer {
  constructor({ api, grid, dialog, onClosed }) {
    this.api = api;
    this.grid = grid;
    this.dialog = dialog;
    this.onClosed = onClosed;
    this.el = (id) => dialog.querySelector(`#${id}`);
    this.photo = null;
    this.previewUrl = null;
    this.previewFor = null;
    this.loadToken = 0;
    // The dialog outlives a session: its listeners go with this viewer (destroy) at sign-out.
    this.listening = new AbortController();
    const on = (target, type, handler) => target.addEventListener(type, handler, { signal: this.listening.signal });
    on(this.el("photo-close"), "click", () => this.close());
    on(this.el("photo-download"), "click", () => this.download());
    on(this.el("photo-delete"), "click", () => this.remove());
    // Escape (the dialog's cancel) and close() both end here.
    on(dialog, "close", () => this.closed());
    // A click on the backdrop (outside the dialog's box) closes it too.
    on(dialog, "click", (event) => {
      if (event.target === dialog) this.close();
    });
  }

  destroy() {
    this.close();
    this.listening.abort();
  }

  get isOpen() {
    return this.dialog.open;
  }

  async open(id) {
    const token = ++this.loadToken;
    this.clear();
    const known = this.grid.get(id);
    if (known) this.show(known);
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const photo = await this.api.getPhoto(id);
      if (token !== this.loadToken) return;
      this.show(photo);
      this.grid.update(photo);
    } catch (err) {
      if (token !== this.loadToken) return;
      this.error(err.status === 404 ? "This photo does not exist (any more)." : err.message);
      if (err.status === 404) this.grid.remove(id);
    }
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  closed() {
    this.loadToken += 1;
    this.clear();
    this.photo = null;
    delete this.dialog.dataset.photoId;
    this.onClosed();
  }

  clear() {
    const img = this.el("photo-preview");
    img.removeAttribute("src");
    img.dataset.loaded = "false";
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = null;
    this.previewFor = null;
    this.el("photo-error").hidden = true;
    this.el("exif-table").tBodies[0].replaceChildren();
    this.el("photo-title").textContent = "";
    this.el("photo-facts").textContent = "";
    const canvas = this.el("photo-placeholder");
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }

  error(message) {
    const p = this.el("photo-error");
    p.textContent = message;
    p.hidden = false;
  }

  show(photo) {
    this.photo = photo;
    this.dialog.dataset.photoId = photo.id;
    this.el("photo-title").textContent = photo.filename || photo.id;
    const facts = [`${photo.width} × ${photo.height}`, formatBytes(photo.bytes)];
    if (photo.taken_at) facts.push(`taken ${new Date(photo.taken_at).toLocaleString()}`);
    if (photo.status !== "ready") facts.push("still processing");
    this.el("photo-facts").textContent = facts.join(" · ");
    this.showExif(photo.exif);
    const canvas = this.el("photo-placeholder");
    if (photo.placeholder && !this.previewUrl) {
      sizePlaceholder(canvas, photo);
      paintBlurhash(canvas, photo.placeholder);
    }
    if (this.previewFor !== photo.id) this.loadPreview(photo);
  }

  showExif(exif) {
    const rows = exifRows(exif);
    const body = this.el("exif-table").tBodies[0];
    body.replaceChildren(...rows.map(([key, value]) => {
      const tr = document.createElement("tr");
      tr.dataset.key = key;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = LABELS[key] || key;
      const td = document.createElement("td");
      td.textContent = formatExif(key, value);
      tr.append(th, td);
      return tr;
    }));
    this.el("exif-empty").hidden = rows.length > 0;
  }

  // The preview variant when there is one (the largest variant otherwise; the original while none).
  async loadPreview(photo) {
    const variants = photo.variants || {};
    const largest = Object.values(variants).sort((a, b) => b.width * b.height - a.width * a.height)[0];
    const url = (variants.preview || largest || {}).url || photo.original_url;
    const token = this.loadToken;
    this.previewFor = photo.id;
    try {
      const blob = await this.api.blob(url);
      if (token !== this.loadToken) return;
      const img = this.el("photo-preview");
      if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
      this.previewUrl = URL.createObjectURL(blob);
      img.alt = `${photo.filename || "photo"} (preview)`;
      img.addEventListener("load", () => { img.dataset.loaded = "true"; }, { once: true });
      img.src = this.previewUrl;
    } catch (err) {
      if (token === this.loadToken) this.error(`Could not load the preview: ${err.message}`);
    }
  }

  async download() {
    const photo = this.photo;
    if (!photo) return;
    const button = this.el("photo-download");
    button.disabled = true;
    try {
      const blob = await this.api.blob(photo.original_url);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = photo.filename || `${photo.id}.${(photo.format || "bin").toLowerCase()}`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000); // the browser reads it after the click
    } catch (err) {
      this.error(`Download failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async remove() {
    const photo = this.photo;
    if (!photo) return;
    if (!window.confirm(`Delete ${photo.filename || "this photo"}? This cannot be undone.`)) return;
    try {
      await this.api.deletePhoto(photo.id);
    } catch (err) {
      if (err.status !== 404) {
        this.error(`Delete failed: ${err.message}`);
        return;
      }
    }
    this.grid.remove(photo.id);
    this.close();
  }
}
