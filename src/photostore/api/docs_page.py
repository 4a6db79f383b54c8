"""A self-contained HTML reference of the API, rendered from the OpenAPI document (no CDN, no JS)."""

from __future__ import annotations

import html
from typing import Any


def _responses(op: dict[str, Any]) -> str:
    rows = []
    for status, response in sorted(op.get("responses", {}).items()):
        rows.append(
            f"<li><code>{html.escape(status)}</code> {html.escape(response.get('description', ''))}</li>"
        )
    return "<ul>" + "".join(rows) + "</ul>"


def _parameters(op: dict[str, Any]) -> str:
    params = op.get("parameters", [])
    if not params:
        return ""
    items = "".join(
        f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p['in'])}"
        f"{', required' if p.get('required') else ''})</li>"
        for p in params
    )
    return f"<p>Parameters:</p><ul>{items}</ul>"


def render_docs(document: dict[str, Any]) -> str:
    info = document["info"]
    sections = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            sections.append(
                f"<section><h2><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('summary', ''))}</p>{_parameters(op)}{_responses(op)}</section>"
            )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(info['title'])} API</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "section{border-top:1px solid #ddd;padding:.5rem 0}.m{color:#06c;font-weight:700}"
        "code{background:#f4f4f4;padding:0 .2rem}</style></head><body>"
        f"<h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
        f"<p>{html.escape(info['description'])}</p>"
        "<p>Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code>. "
        'The machine-readable document is <a href="/openapi.json">/openapi.json</a>.</p>'
        + "".join(sections)
        + "</body></html>"
    )
