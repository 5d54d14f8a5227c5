"""The golden edition in a real browser (headless Chromium): no horizontal scroll at phone and desktop
widths, dark mode wins over the inlined light colours; screenshots land in ``tests/artifacts/``.

The edition has no script: a test-only page frames it and measures. Chromium resolves no host name,
so nothing leaves the machine; remote images are swapped for a local 1200x700 PNG so their real
size takes part in the layout.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from compose.test_compose import sample_edition

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it in .ci/run: apt-get install chromium)"
)

# A test-only page: the edition in an iframe of the given width (the iframe is the viewport its media
# queries see, whatever the window's minimum size), and a script that writes measurements into the DOM.
MEASURE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="edition" src="edition.html" style="border:0;width:WIDTHpx;height:1500px"></iframe>
<script>
window.addEventListener("load", () => {
  const frame = document.getElementById("edition");
  const doc = frame.contentDocument;
  const width = frame.contentWindow.innerWidth;
  const wide = [...doc.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .map((el) => el.tagName.toLowerCase() + "." + (el.getAttribute("class") || ""));
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    width: width,
    scrollWidth: doc.documentElement.scrollWidth,
    wide: wide.slice(0, 10),
    cardBackground: frame.contentWindow.getComputedStyle(doc.querySelector(".card")).backgroundColor,
    images: [...doc.images].map((img) => [img.naturalWidth, Math.round(img.getBoundingClientRect().width)]),
  });
  document.body.appendChild(out);
});
</script></body></html>"""


def _png(path: Path, width: int, height: int) -> None:
    """A gradient PNG, written without an imaging library."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (20 + x * 200 // width, 120, 200 - y * 150 // height))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def _chromium(profile: Path, width: int, *args: str, dark: bool = False, height: int = 2000) -> str:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # no host name resolves: no network
        "--virtual-time-budget=5000",
        "--allow-file-access-from-files",  # the measuring page reads its iframe (both file://)
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        *(["--force-dark-mode"] if dark else []),
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The golden edition with local images, and the measuring pages around it."""
    folder = tmp_path_factory.mktemp("preview")
    _png(folder / "image.png", 1200, 700)
    html = re.sub(r'src="https?://[^"]+"', 'src="image.png"', sample_edition().html)
    assert "<script" not in html
    (folder / "edition.html").write_text(html, encoding="utf-8")
    return {"edition": folder / "edition.html", "folder": folder}


def _measure(pages: dict[str, Path], width: int, dark: bool = False) -> dict[str, object]:
    page = pages["folder"] / f"measure-{width}.html"
    page.write_text(MEASURE.replace("WIDTH", str(width)), encoding="utf-8")
    dom = _chromium(
        pages["folder"] / f"profile-{width}-{dark}", max(width, 800), "--dump-dom", page.as_uri(), dark=dark
    )
    match = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert match, "the measuring script did not run"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [375, 800])
def test_no_horizontal_scroll_and_images_fit(pages: dict[str, Path], width: int) -> None:
    measured = _measure(pages, width)
    assert measured["width"] == width
    assert measured["scrollWidth"] <= width, f"horizontal scroll; too wide: {measured['wide']}"
    assert not measured["wide"], measured["wide"]
    images = measured["images"]
    assert images and all(natural == 1200 and 0 < shown <= min(width, 640) for natural, shown in images)  # type: ignore[union-attr]


def test_dark_mode_wins_over_inline_colours(pages: dict[str, Path]) -> None:
    assert _measure(pages, 375)["cardBackground"] == "rgb(255, 255, 255)"
    assert _measure(pages, 375, dark=True)["cardBackground"] == "rgb(22, 29, 37)"


@pytest.mark.parametrize(("width", "dark"), [(375, False), (800, False), (375, True)])
def test_screenshots(pages: dict[str, Path], width: int, dark: bool) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"edition-{width}{'-dark' if dark else ''}.png"
    shot.unlink(missing_ok=True)
    profile = pages["folder"] / f"shot-{width}-{dark}"
    _chromium(profile, width, f"--screenshot={shot}", pages["edition"].as_uri(), dark=dark, height=4400)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
