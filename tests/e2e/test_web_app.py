"""The gallery at ``/`` and the operator dashboard at ``/admin`` in headless Chromium, against a real
``photostore serve`` (embedded mode: the pages speak the same API in both modes).

The main test is one user's story: sign in, upload three photos through the file input (tus),
see their thumbnails, open one (preview, EXIF), download its original (same SHA-256), delete it, and
see the dashboard count the three uploads. Screenshots go to ``test-artifacts/screenshots/``.

Chromium is Debian's (``make test-tools`` installs it); Playwright never downloads a browser here. A
missing chromium skips these tests, except under CI=true, where it fails them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blurhash
import httpx
import pytest

from photostore.imaging.samples import make_photo_jpeg
from tests.support.engines.availability import unavailable
from tests.support.server import ADMIN_TOKEN, ServerProcess, create_user, embedded_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
# The network is closed: without these Chromium waits on connections to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WAIT_MS = 30_000
# Sample photos with camera EXIF (make "Photostore", model "Sample Camera 12"); distinct seeds.
SAMPLE_MAKE = "Photostore"
SAMPLE_MODEL = "Sample Camera 12"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from embedded_server(tmp_path_factory, "web")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        unavailable("chromium is not installed (make test-tools installs Debian's)")
    browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class PageErrors:
    """Script errors and CSP violations of a page: a working page has none."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.messages.append(f"csp: {message.text}")

    def assert_none(self) -> None:
        assert self.messages == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        accept_downloads=True, viewport={"width": 1200, "height": 900}, reduced_motion="reduce"
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url)
    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_selector("#app", state="visible")


def wait_thumbs(page: Page, expected: int) -> None:
    """Wait until the grid has ``expected`` tiles, each showing its real thumbnail: an image decoded
    from a blob: URL (fetched with the key), not only the blurhash placeholder."""
    page.wait_for_function(
        """(n) => {
            const tiles = [...document.querySelectorAll('#grid [data-testid=photo-tile]')];
            return tiles.length === n && tiles.every((li) => {
                const img = li.querySelector('img[data-testid=thumb]');
                return img && img.dataset.loaded === 'true' && img.complete && img.naturalWidth > 0
                    && img.src.startsWith('blob:');
            });
        }""",
        arg=expected,
    )


def test_gallery_upload_view_download_delete_and_dashboard(
    server: ServerProcess, page: Page, tmp_path: Path
) -> None:
    started = time.monotonic()
    _, key = create_user(server.url, "web-alice")
    files = []
    for seed, name in enumerate(["harbour.jpg", "meadow.jpg", "summit.jpg"], start=11):
        path = tmp_path / name
        path.write_bytes(make_photo_jpeg(1200, 900, seed))
        files.append(path)
    errors = PageErrors(page)

    sign_in(page, server.url, key)
    page.set_input_files("#file-input", [str(f) for f in files])
    rows = page.locator("#upload-list [data-testid=upload]")
    page.wait_for_function(
        """() => {
            const rows = [...document.querySelectorAll('#upload-list [data-testid=upload]')];
            return rows.length === 3 && rows.every((r) => ['done', 'error'].includes(r.dataset.state));
        }"""
    )
    assert rows.locator("[data-testid=upload-error]:visible").all_inner_texts() == []
    assert sorted(rows.evaluate_all("(rs) => rs.map((r) => r.dataset.state)")) == ["done"] * 3
    wait_thumbs(page, 3)
    screenshot(page, "gallery-grid")

    # A reload keeps the session (sessionStorage); two photos a page makes the sentinel fetch twice.
    page.evaluate("localStorage.setItem('photostore.pageSize', '2')")
    page.reload()
    wait_thumbs(page, 3)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=10) as api:
        listed = api.get("/v1/photos").json()["items"]
        shown = page.locator("#grid [data-testid=photo-tile]").evaluate_all(
            "(tiles) => tiles.map((t) => t.dataset.photoId)"
        )
        assert shown == [p["id"] for p in listed]  # newest first, as the API lists them
        target = next(p for p in listed if p["filename"] == "meadow.jpg")
        # Each tile painted its blurhash first, with a decoder that agrees with the Python package's.
        assert page.locator("#grid canvas[data-painted=true]").count() == 3
        decoded = page.evaluate(
            "async (h) => Array.from((await import('gallery/blurhash.js')).decodeBlurhash(h, 8, 6))",
            target["placeholder"],
        )
        expected = blurhash.decode(target["placeholder"], 8, 6).convert("RGBA").tobytes()
        assert max(abs(a - b) for a, b in zip(decoded, expected, strict=True)) <= 1

        page.get_by_role("button", name="Open meadow.jpg").click()
        view = page.locator("#photo-view")
        view.wait_for(state="visible")
        assert page.evaluate("location.hash") == f"#photo/{target['id']}"
        page.wait_for_selector("#photo-preview[data-loaded=true]")
        assert page.locator("#exif-table tr[data-key=make] td").inner_text() == SAMPLE_MAKE
        assert page.locator("#exif-table tr[data-key=model] td").inner_text() == SAMPLE_MODEL
        assert SAMPLE_MODEL in page.locator("#exif-table").inner_text()
        screenshot(page, "gallery-photo-view")

        with page.expect_download() as download_info:
            page.click("#photo-download")
        download = download_info.value
        assert download.suggested_filename == "meadow.jpg"
        downloaded = Path(download.path()).read_bytes()
        assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(files[1].read_bytes()).hexdigest()

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#photo-delete")
        view.wait_for(state="hidden")
        page.wait_for_selector(f"#grid [data-photo-id='{target['id']}']", state="detached")
        assert page.locator("#grid [data-testid=photo-tile]").count() == 2
        assert page.evaluate("location.hash") == ""
        screenshot(page, "gallery-after-delete")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "gallery-phone")
        page.set_viewport_size({"width": 1200, "height": 900})
        left = api.get("/v1/photos").json()["items"]
        assert [p["filename"] for p in left] == [p["filename"] for p in listed if p["id"] != target["id"]]
        assert api.get(f"/v1/photos/{target['id']}").status_code == 404

    # Keyboard: Escape closes the photo view (and the URL goes back to the timeline).
    page.get_by_role("button", name="Open summit.jpg").click()
    page.locator("#photo-view").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.locator("#photo-view").wait_for(state="hidden")
    page.wait_for_function("() => location.hash === ''")
    errors.assert_none()

    # The operator dashboard counts the photos created since the process started: these three.
    page.goto(f"{server.url}/admin")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#admin-sign-in")
    page.wait_for_function("() => document.querySelector('#stat-uploads')?.textContent.trim() === '3'")
    screenshot(page, "admin-dashboard")
    print(f"gallery story took {time.monotonic() - started:.1f}s")


def test_a_wrong_key_shows_the_apis_error(server: ServerProcess, page: Page) -> None:
    wrong = "ps_wrong_key_0000000000000000"
    expected = httpx.get(f"{server.url}/v1/photos", headers={"authorization": f"Bearer {wrong}"}).json()
    page.goto(server.url)
    page.fill("#api-key", wrong)
    page.click("#signin-button")
    error = page.locator("#signin-error")
    error.wait_for(state="visible")
    assert error.inner_text() == expected["detail"]
    assert page.locator("#app").is_hidden()
    assert page.evaluate("sessionStorage.getItem('photostore.apiKey')") is None


def test_page_has_strict_csp_no_cache_and_immutable_assets(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert set(directives["img-src"]) == {"'self'", "blob:", "data:"}
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    # The one inline script, the import map, is allowed by its hash alone.
    script_src = directives["script-src"]
    assert script_src[0] == "'self'"
    assert all(s.startswith("'sha256-") for s in script_src[1:])
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", response.text, re.S)
    assert len(inline) == len(script_src) - 1 == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert script_src[1] == f"'sha256-{digest}'"
    urls = set(re.findall(r"/assets/[0-9a-f]{16}/[\w./-]+", response.text))
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {"app.js", "api.js", "gallery.css", "tus.min.js"}
    for url in sorted(urls):
        asset = httpx.get(server.url + url)
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"], url


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of the test's own, so the main test's server counts exactly its three uploads."""
    yield from embedded_server(tmp_path_factory, "web-own")


def test_an_upload_interrupted_by_a_reload_resumes(
    own_server: ServerProcess, page: Page, tmp_path: Path
) -> None:
    """Small chunks; after three PATCHes the network "fails" and the page reloads mid-upload. Choosing
    the same file again resumes it: the first PATCH after the reload starts past zero."""
    chunk = 256 * 1024
    path = tmp_path / "panorama.jpg"
    path.write_bytes(make_photo_jpeg(3000, 2000, 5))
    size = path.stat().st_size
    assert size > 6 * chunk
    _, key = create_user(own_server.url, "web-resumer")
    page.goto(own_server.url)
    page.evaluate(f"localStorage.setItem('photostore.chunkBytes', '{chunk}')")
    sign_in(page, own_server.url, key)

    patches: list[int] = []
    page.on(
        "request",
        lambda r: patches.append(int(r.headers["upload-offset"])) if r.method == "PATCH" else None,
    )
    passed = 0

    def cut_after_three(route: Any) -> None:
        nonlocal passed
        if route.request.method != "PATCH":
            route.continue_()
        elif passed < 3:
            passed += 1
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route("**/v1/uploads/**", cut_after_three)
    page.set_input_files("#file-input", str(path))
    deadline = time.monotonic() + 20
    while passed < 3 or len(patches) < 4:
        assert time.monotonic() < deadline, f"uploads seen: {patches}"
        page.wait_for_timeout(50)
    page.reload()  # with the cut still in place: no retry of the old page's upload gets through
    page.unroute("**/v1/uploads/**")
    page.wait_for_selector("#app", state="visible")
    interrupted = page.locator("[data-testid=upload-interrupted]")
    interrupted.wait_for()
    assert interrupted.get_attribute("data-filename") == "panorama.jpg"

    before = len(patches)
    page.set_input_files("#file-input", str(path))
    row = page.locator("[data-testid=upload][data-filename='panorama.jpg']")
    page.wait_for_selector("[data-testid=upload][data-filename='panorama.jpg'][data-state=done]")
    assert patches[before] == 3 * chunk  # the first PATCH after the reload resumes, it does not restart
    assert row.get_attribute("data-resumed") == "true"
    assert int(row.get_attribute("data-resumed-from") or 0) == 3 * chunk
    assert interrupted.count() == 0
    wait_thumbs(page, 1)
    with httpx.Client(base_url=own_server.url, headers={"authorization": f"Bearer {key}"}) as api:
        (photo,) = api.get("/v1/photos").json()["items"]
        original = api.get(photo["original_url"])
    assert hashlib.sha256(original.content).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    screenshot(page, "gallery-resumed-upload")


DROP_FILES = """async ([files]) => {
    const transfer = new DataTransfer();
    for (const [name, type, b64] of files) {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], name, { type }));
    }
    const zone = document.getElementById('dropzone');
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent('dragover', init));
    zone.dispatchEvent(new DragEvent('drop', init));
}"""


def test_dropped_files_upload_and_a_refused_one_shows_the_servers_reason(
    own_server: ServerProcess, page: Page
) -> None:
    _, key = create_user(own_server.url, "web-dropper")
    sign_in(page, own_server.url, key)
    good = make_photo_jpeg(640, 480, 21)
    files = [
        ["dropped.jpg", "image/jpeg", base64.b64encode(good).decode()],
        [
            "notes.jpg",
            "image/jpeg",
            base64.b64encode(b"these are not the pixels you are looking for").decode(),
        ],
    ]
    page.evaluate(DROP_FILES, [files])
    page.wait_for_selector("[data-testid=upload][data-filename='dropped.jpg'][data-state=done]")
    refused = page.locator("[data-testid=upload][data-filename='notes.jpg']")
    page.wait_for_selector("[data-testid=upload][data-filename='notes.jpg'][data-state=error]")
    # The row shows the server's own words (the problem detail of a direct upload of the same bytes).
    with httpx.Client(base_url=own_server.url, headers={"authorization": f"Bearer {key}"}) as api:
        direct = api.post(
            "/v1/photos?filename=notes.jpg", content=b"these are not the pixels you are looking for"
        )
        assert direct.status_code >= 400
        assert refused.locator("[data-testid=upload-error]").inner_text() == direct.json()["detail"]
        wait_thumbs(page, 1)
        assert len(api.get("/v1/photos").json()["items"]) == 1
    screenshot(page, "gallery-upload-error")

    # Signing out forgets the key and empties the page; the key is needed again.
    page.click("#signout-button")
    page.locator("#signin").wait_for(state="visible")
    assert page.locator("#app").is_hidden()
    assert page.locator("#grid [data-testid=photo-tile]").count() == 0
    assert page.evaluate("sessionStorage.getItem('photostore.apiKey')") is None
    page.reload()
    page.locator("#signin").wait_for(state="visible")
    assert page.locator("#app").is_hidden()

    # Signed in again (no reload), the photo view works once per click: nothing left over from before.
    page.fill("#api-key", key)
    page.click("#signin-button")
    wait_thumbs(page, 1)
    confirms: list[str] = []

    def accept(dialog: Any) -> None:
        confirms.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Open dropped.jpg").click()
    page.wait_for_selector("#photo-preview[data-loaded=true]")
    page.click("#photo-delete")
    page.locator("#photo-view").wait_for(state="hidden")
    page.wait_for_function("() => document.querySelectorAll('#grid [data-testid=photo-tile]').length === 0")
    assert confirms == ["Delete dropped.jpg? This cannot be undone."]
    assert page.locator("#grid-status").inner_text() == "No photos yet: drop some above."
