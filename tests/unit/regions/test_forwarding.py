"""Headers in and out of the edge, which answers count against a region, and which requests have a body."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from photostore.regions.forwarding import counts_as_failure, downstream_headers, has_body, upstream_headers


def _request(headers: list[tuple[bytes, bytes]], scheme: str = "http") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "headers": headers,
            "query_string": b"",
            "scheme": scheme,
            "server": ("edge", 80),
            "client": ("5.6.7.8", 1),
        }
    )


CLIENT_HEADERS = [
    (b"host", b"edge"),
    (b"connection", b"keep-alive, x-secret"),
    (b"keep-alive", b"timeout=5"),
    (b"x-secret", b"1"),
    (b"te", b"trailers"),
    (b"upgrade", b"h2c"),
    (b"proxy-authorization", b"Basic Zm9vOmJhcg=="),
    (b"x-forwarded-for", b"1.2.3.4"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"evil.example"),
    (b"x-forwarded-port", b"8443"),
    (b"authorization", b"Bearer t0ken"),
    (b"accept", b"image/webp"),
    (b"accept", b"*/*"),
]


def _names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def test_hop_by_hop_headers_and_those_named_by_connection_are_dropped() -> None:
    names = _names(upstream_headers(_request(CLIENT_HEADERS), "5.6.7.8"))
    for dropped in ("connection", "keep-alive", "x-secret", "te", "upgrade", "proxy-authorization"):
        assert dropped not in names


def test_connection_tokens_are_matched_without_regard_to_case() -> None:
    request = _request([(b"connection", b"Keep-Alive, X-Secret"), (b"x-secret", b"1"), (b"accept", b"*/*")])
    assert _names(upstream_headers(request, None)) == ["accept", "x-forwarded-proto"]


def test_host_is_dropped_and_passed_on_as_x_forwarded_host() -> None:
    headers = upstream_headers(_request(CLIENT_HEADERS), "5.6.7.8")
    assert "host" not in _names(headers)
    assert [value for name, value in headers if name == "x-forwarded-host"] == ["edge"]


def test_end_to_end_headers_pass_unchanged_and_in_order() -> None:
    headers = upstream_headers(_request(CLIENT_HEADERS), "5.6.7.8")
    assert [h for h in headers if not h[0].startswith("x-forwarded-")] == [
        ("authorization", "Bearer t0ken"),
        ("accept", "image/webp"),
        ("accept", "*/*"),
    ]


def test_the_peer_is_appended_to_x_forwarded_for() -> None:
    headers = upstream_headers(_request(CLIENT_HEADERS), "5.6.7.8")
    assert [value for name, value in headers if name == "x-forwarded-for"] == ["1.2.3.4, 5.6.7.8"]


def test_x_forwarded_for_is_started_when_the_client_sent_none() -> None:
    headers = upstream_headers(_request([(b"host", b"edge")]), "5.6.7.8")
    assert ("x-forwarded-for", "5.6.7.8") in headers


def test_without_a_peer_the_clients_x_forwarded_for_is_kept_as_is() -> None:
    headers = upstream_headers(_request([(b"x-forwarded-for", b"1.2.3.4")]), None)
    assert [value for name, value in headers if name == "x-forwarded-for"] == ["1.2.3.4"]
    assert "x-forwarded-host" not in _names(headers)  # no host header to pass on


def test_the_edge_sets_proto_and_host_replacing_what_the_client_claimed() -> None:
    headers = upstream_headers(_request(CLIENT_HEADERS, scheme="http"), "5.6.7.8")
    forwarded = [(name, value) for name, value in headers if name.startswith("x-forwarded-")]
    assert sorted(forwarded) == [
        ("x-forwarded-for", "1.2.3.4, 5.6.7.8"),
        ("x-forwarded-host", "edge"),
        ("x-forwarded-proto", "http"),
    ]  # one of each; the client's x-forwarded-port is gone too


def test_x_forwarded_proto_follows_the_scheme() -> None:
    headers = upstream_headers(_request([(b"host", b"edge")], scheme="https"), "5.6.7.8")
    assert ("x-forwarded-proto", "https") in headers


def test_several_x_forwarded_for_lines_are_all_passed_on() -> None:
    request = _request([(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.9")])
    headers = upstream_headers(request, "10.0.0.1")
    assert [value for name, value in headers if name == "x-forwarded-for"] == [
        "6.6.6.6, 203.0.113.9, 10.0.0.1"
    ]


# --- downstream --------------------------------------------------------------------------------------


def test_downstream_drops_hop_by_hop_headers_whatever_their_case() -> None:
    headers = [
        ("Content-Type", "image/jpeg"),
        ("Connection", "close, X-Internal"),
        ("X-Internal", "shard-3"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("Trailer", "x-checksum"),
        ("Proxy-Authenticate", "Basic"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("ETag", '"abc"'),
    ]
    assert downstream_headers(headers) == [
        ("Content-Type", "image/jpeg"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("ETag", '"abc"'),
    ]


def test_downstream_keeps_everything_when_there_is_nothing_to_drop() -> None:
    headers = [("content-length", "3"), ("cache-control", "private")]
    assert downstream_headers(headers) == headers


# --- counts_as_failure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "failure"),
    [
        (500, None, True),
        (502, None, True),
        (504, None, True),
        (503, None, True),
        (503, "5", False),
        (503, "Wed, 21 Oct 2026 07:28:00 GMT", False),
        (500, "5", True),
        (200, None, False),
        (304, None, False),
        (400, None, False),
        (404, None, False),
        (429, None, False),
        (499, None, False),
    ],
)
def test_counts_as_failure(status: int, retry_after: str | None, failure: bool) -> None:
    assert counts_as_failure(status, retry_after) is failure


# --- has_body ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], False),
        ([(b"content-length", b"0")], False),
        ([(b"content-length", b"")], False),
        ([(b"content-length", b"12")], True),
        ([(b"transfer-encoding", b"chunked")], True),
    ],
)
def test_has_body(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert has_body(_request(headers)) is expected
