"""Load the Gradio demo once in headless Chromium and save a screenshot.

Launches the demo on a free 127.0.0.1 port over the current artifacts
(``make pipeline`` first), opens it in Debian's chromium (``apt-get install -y
chromium``) and writes ``outputs/reports/demo_screenshot.png``; the demo is
stopped afterwards. Look at the PNG to check the page renders with data.

    .venv/bin/python benchmarks/demo_screenshot.py [--root DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from recsys_utils.errors import DataError
from recsys_utils.paths import project_paths
from recsys_utils.serving.demo import TABS, find_chromium, screenshot_demo
from recsys_utils.serving.state import load_state


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="project root (default: the repository)")
    parser.add_argument("--out", default=None,
                        help="PNG to write, with --tab "
                             "(default outputs/reports/demo_screenshot_<tab>.png)")
    parser.add_argument("--chromium", default=None, help="browser binary (default: chromium)")
    parser.add_argument("--tab", choices=TABS, default=None,
                        help="only this tab (default: one screenshot per tab)")
    args = parser.parse_args(argv)
    paths = project_paths(args.root)
    if (args.chromium or find_chromium()) is None:
        print("error: chromium is not installed; run `apt-get install -y chromium`",
              file=sys.stderr)
        return 2
    try:
        state = load_state(paths)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for tab in [args.tab] if args.tab else TABS:
        default = paths.reports / f"demo_screenshot_{tab}.png"
        out = Path(args.out) if args.out else default
        written = screenshot_demo(state, out, chromium=args.chromium, tab=tab)
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
