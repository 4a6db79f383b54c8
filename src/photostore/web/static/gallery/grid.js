// The timeline: the caller's photos newest first, one keyset page at a time as the sentinel below the
// grid scrolls into view. A tile shows the photo's blurhash until its thumbnail (fetched with the API
// key, shown from a blob: URL) has loaded; tiles of photos still processing are polled until ready.

import { paintBlurhash } from "gallery/blurhash.js";

const THUMB_FETCHES = 4; // thumbnails fetched at once
const POLL_FIRST_MS = 800;
const POLL_MAX_MS = 8000;

// The variant a tile shows: `thumb` when configured, else the smallest one there is.
export function thumbVariant(photo) {
  const variants = photo.variants || {};
  if (variants.thumb) return variants.thumb;
  const all = Object.values(variants).sort((a, b) => a.width * a.height - b.width * b.height);
  return all[0] || null;
}

// A placeholder canvas about 32 px wide with the photo's aspect ratio (CSS crops it like the image).
export function sizePlaceholder(canvas, photo) {
  const ratio = photo.width && photo.height ? photo.height / photo.width : 1;
  canvas.width = 32;
  canvas.height = Math.max(1, Math.min(64, Math.round(32 * ratio)));
}

export class Grid {
  constructor({ api, list, sentinel, status, pageSize, onOpen }) {
    this.api = api;
    this.list = list;
    this.sentinel = sentinel;
    this.status = status;
    this.pageSize = pageSize;
    this.onOpen = onOpen;
    this.tiles = new Map(); // id -> {photo, li, img, canvas, url, wanted, loading}
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.polls = new Map(); // id -> {due, delay}
    this.pollTimer = null;
    this.queue = [];
    this.fetching = 0;
    this.stopped = false;
    this.pageObserver = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadPage();
    }, { rootMargin: "600px 0px" });
    this.thumbObserver = new IntersectionObserver((entries) => this.onTilesSeen(entries), { rootMargin: "300px 0px" });
  }

  start() {
    this.pageObserver.observe(this.sentinel);
  }

  stop() {
    this.stopped = true;
    this.pageObserver.disconnect();
    this.thumbObserver.disconnect();
    clearTimeout(this.pollTimer);
    for (const id of [...this.tiles.keys()]) this.remove(id);
    this.status.textContent = "";
  }

  get(id) {
    return this.tiles.get(id)?.photo || null;
  }

  async loadPage() {
    if (this.loading || this.done || this.stopped) return;
    this.loading = true;
    this.list.setAttribute("aria-busy", "true");
    this.status.textContent = "Loading…";
    try {
      const page = await this.api.listPhotos(this.pageSize, this.cursor);
      if (this.stopped) return;
      for (const photo of page.items) this.add(photo, false);
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.showCount();
    } catch (err) {
      this.status.textContent = `Could not load photos: ${err.message}`;
      this.done = true; // no busy loop against a failing server; a reload tries again
      return;
    } finally {
      this.loading = false;
      this.list.removeAttribute("aria-busy");
    }
    // The observer speaks only when the sentinel's visibility changes; observing it again makes it
    // report now, so a page too short to push the sentinel out of view loads the next one.
    this.pageObserver.unobserve(this.sentinel);
    if (!this.done) this.pageObserver.observe(this.sentinel);
  }

  showCount() {
    const n = this.tiles.size;
    if (!this.done) this.status.textContent = "";
    else this.status.textContent = n === 0 ? "No photos yet: drop some above." : `${n} photo${n === 1 ? "" : "s"}`;
  }

  // Show `photo` (first when `prepend`, as a new upload is the newest); an id already shown is updated.
  add(photo, prepend) {
    if (this.tiles.has(photo.id)) {
      this.update(photo);
      return;
    }
    const li = document.createElement("li");
    li.className = "tile";
    li.dataset.testid = "photo-tile";
    li.dataset.photoId = photo.id;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile-button";
    button.addEventListener("click", () => this.onOpen(photo.id));
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-hidden", "true");
    const img = document.createElement("img");
    img.dataset.testid = "thumb";
    img.decoding = "async";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "Processing…";
    button.append(canvas, img, badge);
    li.append(button);
    const tile = { photo, li, img, canvas, button, url: null, wanted: false, loading: false };
    this.tiles.set(photo.id, tile);
    if (prepend) this.list.prepend(li);
    else this.list.append(li);
    this.render(tile);
    this.thumbObserver.observe(li);
    if (this.done) this.showCount();
  }

  update(photo) {
    const tile = this.tiles.get(photo.id);
    if (!tile) return;
    tile.photo = photo;
    this.render(tile);
  }

  render(tile) {
    const { photo, li, img, canvas, button } = tile;
    const name = photo.filename || "photo";
    li.dataset.status = photo.status;
    button.setAttribute("aria-label", `Open ${name}`);
    img.alt = name;
    if (!canvas.dataset.painted && photo.placeholder) {
      sizePlaceholder(canvas, photo);
      if (paintBlurhash(canvas, photo.placeholder)) canvas.dataset.painted = "true";
    }
    if (photo.status === "ready" && thumbVariant(photo)) {
      this.polls.delete(photo.id);
      if (tile.wanted) this.enqueue(tile);
    } else if (!this.polls.has(photo.id)) {
      this.polls.set(photo.id, { due: Date.now() + POLL_FIRST_MS, delay: POLL_FIRST_MS });
      this.schedulePoll();
    }
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    this.tiles.delete(id);
    this.polls.delete(id);
    this.thumbObserver.unobserve(tile.li);
    tile.img.removeAttribute("src");
    if (tile.url) URL.revokeObjectURL(tile.url);
    tile.url = null;
    tile.li.remove();
    if (this.done) this.showCount();
  }

  onTilesSeen(entries) {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const tile = this.tiles.get(entry.target.dataset.photoId);
      if (!tile) continue;
      tile.wanted = true;
      this.thumbObserver.unobserve(entry.target); // once seen, the thumbnail stays
      if (tile.photo.status === "ready") this.enqueue(tile);
    }
  }

  enqueue(tile) {
    if (tile.url || tile.loading || !thumbVariant(tile.photo)) return;
    tile.loading = true;
    this.queue.push(tile);
    this.pump();
  }

  pump() {
    while (this.fetching < THUMB_FETCHES && this.queue.length) {
      const tile = this.queue.shift();
      if (!this.tiles.has(tile.photo.id)) continue;
      this.fetching += 1;
      this.loadThumb(tile).finally(() => {
        this.fetching -= 1;
        this.pump();
      });
    }
  }

  async loadThumb(tile) {
    try {
      const blob = await this.api.blob(thumbVariant(tile.photo).url);
      if (!this.tiles.has(tile.photo.id)) return; // removed while fetching
      tile.url = URL.createObjectURL(blob);
      tile.img.addEventListener("load", () => {
        tile.img.dataset.loaded = "true";
        tile.li.classList.add("loaded");
      }, { once: true });
      tile.img.src = tile.url;
    } catch (err) {
      tile.li.classList.add("failed");
      tile.button.title = `Thumbnail failed: ${err.message}`;
    } finally {
      tile.loading = false;
    }
  }

  schedulePoll() {
    if (this.pollTimer !== null || this.stopped || this.polls.size === 0) return;
    const next = Math.min(...[...this.polls.values()].map((p) => p.due));
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.poll();
    }, Math.max(0, next - Date.now()));
  }

  async poll() {
    const now = Date.now();
    const due = [...this.polls.entries()].filter(([, p]) => p.due <= now);
    await Promise.all(due.map(async ([id, p]) => {
      try {
        const photo = await this.api.getPhoto(id);
        p.delay = Math.min(POLL_MAX_MS, p.delay * 1.5);
        p.due = Date.now() + p.delay;
        this.update(photo);
      } catch (err) {
        if (err.status === 404) this.remove(id); // deleted elsewhere
        else p.due = Date.now() + POLL_MAX_MS;
      }
    }));
    this.schedulePoll();
  }
}
