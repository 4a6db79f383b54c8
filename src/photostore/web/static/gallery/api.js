// The JSON API with an API key: every request carries `Authorization: Bearer <key>`, and every
// error (application/problem+json) becomes an ApiError that carries the server's `detail`.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

// The message of a problem+json body (its `detail`, else its `title`), or null.
export function problemDetail(text) {
  try {
    const body = JSON.parse(text);
    return body.detail || body.title || null;
  } catch {
    return null;
  }
}

async function errorOf(response) {
  const text = await response.text();
  let code = null;
  try {
    code = JSON.parse(text).code || null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, problemDetail(text) || `${response.status} ${response.statusText}`);
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  get authorization() {
    return `Bearer ${this.key}`;
  }

  async request(path, init = {}) {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", this.authorization);
    let response;
    try {
      response = await fetch(path, { ...init, headers, cache: "no-store" });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `network error: ${err.message}`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async json(path, init) {
    return (await this.request(path, init)).json();
  }

  // One page of the caller's photos, newest first: {items, next_cursor}.
  listPhotos(limit, cursor) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.json(`/v1/photos?${query}`);
  }

  getPhoto(idOrPath) {
    return this.json(idOrPath.startsWith("/") ? idOrPath : `/v1/photos/${encodeURIComponent(idOrPath)}`);
  }

  async deletePhoto(id) {
    await this.request(`/v1/photos/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  // The bytes at `url` (an original or a variant) as a Blob; images need the key, so no <img src>.
  async blob(url, signal) {
    return (await this.request(url, { signal })).blob();
  }
}

// A short, non-secret tag of the key: it namespaces what this browser stores per user (upload
// fingerprints) without writing the key itself to localStorage. FNV-1a, 32 bits.
export function keyTag(key) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
