"""Render a drift report in headless Chromium and save a screenshot, to see what users see.

    python -m bench.render_report REPORT.html SCREENSHOT.png [--width 1400] [--height 2600]
    python -m bench.render_report --cycle N SCREENSHOT.png     # the copy stored in the database

Needs Debian's chromium (apt-get install chromium); too heavy for CI, so it is a script, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def capture(browser: str, url: str, png: Path, width: int = 1400, height: int = 2600, budget_ms: int = 20_000,
            timeout: float = 180) -> str:
    """Open url in headless Chromium, save a screenshot (after budget_ms of the page's own scripts, which draw
    the charts) and return the DOM it rendered."""
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                  f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=timeout).stdout
        subprocess.run([*common, f"--screenshot={png.resolve()}", url], check=True, capture_output=True,
                       timeout=timeout)
    return dom


def render(html: Path, png: Path, width: int = 1400, height: int = 2600) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    capture(browser, html.resolve().as_uri(), png, width, height)
    return png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", type=Path)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--cycle", type=int, help="export this cycle's report from the database first")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2600)
    args = parser.parse_args(argv)
    html = args.report
    if args.cycle is not None:
        from freshrec.reports import export_report
        from freshrec.settings import load_settings
        from tasks.common import engine_for

        html = export_report(engine_for(load_settings()), args.cycle, Path(tempfile.mkdtemp()))
    print(render(html, args.screenshot, args.width, args.height))


if __name__ == "__main__":
    main(sys.argv[1:])
