"""Screenshot the built book with headless Chromium (proof that pages, figures and glue render).

Usage::

    python benchmarks/screenshot_book.py                 # index + results + the EDA notebook
    python benchmarks/screenshot_book.py book/model_card # any page, path without .html

Needs ``make book`` first and a Chromium (Debian: ``apt-get install -y chromium``).
Writes ``outputs/screenshots/<page>.png`` (1280x2000, ``--height`` for more) and prints the paths.

Why ``--virtual-time-budget``: the book's index.html is a redirect to the root
chapter and pages load fonts/JS; Chromium's virtual time lets them settle before
the capture instead of photographing a blank page.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from recsys_utils.paths import project_paths

PATHS = project_paths()  # this repository, or $RECSYS_ROOT
HTML = PATHS.book_html
OUT = PATHS.outputs / "screenshots"
DEFAULT_PAGES = ["index", "book/results", "outputs/notebooks/02_eda"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(
        "error: no Chromium found; on Debian/Ubuntu: apt-get update && apt-get install -y chromium"
    )


def screenshot(browser: str, page: str, out_dir: Path = OUT, height: int = 2000,
               timeout: int = 120) -> Path:
    """Capture ``_build/html/<page>.html`` into ``out_dir/<page with / as __>.png``."""
    html = HTML / f"{page}.html"
    if not html.is_file():
        raise SystemExit(f"error: {html} does not exist; run `make book` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{page.replace('/', '__')}.png"
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [browser, *FLAGS, f"--window-size=1280,{height}", f"--user-data-dir={profile}",
               f"--screenshot={png}", html.as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not png.is_file():
        raise SystemExit(f"error: chromium wrote no screenshot for {page}:\n{result.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=DEFAULT_PAGES,
                        help="pages relative to _build/html, without .html")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNG files")
    parser.add_argument("--height", type=int, default=2000,
                        help="window height in pixels (taller pages show more figures)")
    args = parser.parse_args(argv)
    browser = find_browser()
    for page in args.pages:
        print(screenshot(browser, page, args.out, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
