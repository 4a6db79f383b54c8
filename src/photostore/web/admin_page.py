"""The HTML of ``/admin``: structure only. ``static/admin/admin.js`` signs in and fills it."""

from __future__ import annotations

from html import escape

from photostore.web.assets import asset_url

STYLES = ("vendor/uplot/uPlot.min.css", "admin/admin.css")
SCRIPTS = ("vendor/uplot/uPlot.iife.min.js", "admin/admin.js")

_CARDS = (
    ("stat-users", "users"),
    ("stat-photos", "photos"),
    ("stat-uploads", "uploads created"),
    ("stat-deduplicated", "uploads deduplicated"),
    ("stat-bytes", "bytes of originals"),
    ("stat-cache", "cache hit ratio"),
    ("stat-rps", "requests/s"),
    ("stat-p99", "latency p99"),
)

_BAR_PANELS = (
    ("shards", "Photos per shard", "panel-shards"),
    ("buckets", "Bytes per bucket", "panel-buckets"),
    ("topics", "Consumer lag per topic/partition", "panel-topics"),
)

_LINE_PANELS = (
    ("chart-cache", "Cache hit ratio", "each interval between two refreshes"),
    ("chart-rps", "Requests per second", "this process"),
    ("chart-latency", "Latency p50 / p95 / p99 (ms)", "each interval, from the histogram buckets"),
)


def _cards() -> str:
    return "\n".join(
        f'      <div class="card"><div class="card-value" id="{card_id}">&ndash;</div>'
        f'<div class="card-label">{escape(label)}</div></div>'
        for card_id, label in _CARDS
    )


def _bar_panels() -> str:
    return "\n".join(
        f'    <section class="panel" id="{panel_id}" data-section="{name}">\n'
        f'      <h2>{escape(title)}</h2><p class="panel-note" id="{name}-note"></p>\n'
        f'      <p class="panel-error" id="{name}-error" hidden></p>\n'
        f'      <div class="bars" id="bars-{name}"></div>\n'
        "    </section>"
        for name, title, panel_id in _BAR_PANELS
    )


def _line_panels() -> str:
    return "\n".join(
        f'    <section class="panel">\n      <h2>{escape(title)}</h2>'
        f'<p class="panel-note">{escape(note)}</p>\n'
        f'      <div class="chart" id="{chart_id}"></div>\n    </section>'
        for chart_id, title, note in _LINE_PANELS
    )


def render_page() -> str:
    styles = "\n".join(f'  <link rel="stylesheet" href="{escape(asset_url(path))}">' for path in STYLES)
    scripts = "\n".join(f'  <script src="{escape(asset_url(path))}" defer></script>' for path in SCRIPTS)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <link rel="icon" href="data:,">
  <title>photostore · operator dashboard</title>
{styles}
{scripts}
</head>
<body>
  <header class="top">
    <h1>photostore <span class="muted">operator dashboard</span></h1>
    <div class="status"><span id="status" role="status" aria-live="polite"></span>
      <button type="button" id="admin-sign-out" hidden>Sign out</button></div>
  </header>
  <main>
  <section id="sign-in" class="sign-in">
    <form id="sign-in-form" autocomplete="off">
      <h2>Sign in</h2>
      <p class="muted">The server's admin token (<code>PHOTOSTORE_ADMIN_TOKEN</code>). It is kept in
        this tab's session storage only.</p>
      <label for="admin-token">Admin token</label>
      <input id="admin-token" name="admin-token" type="password" required spellcheck="false"
        autocomplete="off">
      <button type="submit" id="admin-sign-in">Sign in</button>
      <p id="sign-in-error" class="error" role="alert" hidden></p>
    </form>
  </section>
  <div id="dashboard" hidden>
    <p class="process muted" id="process"></p>
    <div class="cards">
{_cards()}
    </div>
    <div class="grid">
{_bar_panels()}
{_line_panels()}
    <section class="panel" id="panel-regions">
      <h2>Regions</h2><p class="panel-note" id="regions-note"></p>
      <p class="panel-error" id="regions-error" hidden></p>
      <table class="regions" id="regions-table"><thead><tr><th>region</th><th>role</th><th>health</th>
        <th>endpoints</th></tr></thead><tbody id="regions-body"></tbody></table>
    </section>
    <section class="panel" id="panel-routes">
      <h2>Requests by route</h2><p class="panel-note">since this process started</p>
      <table class="routes"><thead><tr><th>route</th><th>2xx</th><th>3xx</th><th>4xx</th>
        <th>5xx</th><th>p50 ms</th><th>p99 ms</th></tr></thead><tbody id="routes-body"></tbody></table>
    </section>
    </div>
  </div>
  </main>
</body>
</html>
"""
