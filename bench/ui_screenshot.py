"""The Prefect UI showing freshrec's deployment, in headless Chromium: a screenshot, and a check of the page.

    python -m bench.ui_screenshot SCREENSHOT.png [--dom DOM.html]

Starts a Prefect server (temporary PREFECT_HOME) and `freshrec serve` against the database in
FRESHREC_DATABASE_URL (or the embedded one), loads the deployment's page, checks that it names the deployment,
and saves a screenshot. Needs Debian's chromium; too heavy for CI, so it is a script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.prefect_server import freshrec_serve, prefect_server
from bench.render_report import capture

DEPLOYMENT = "freshrec-update/serve-every-5-min"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--dom", type=Path, help="also save the rendered page's HTML here")
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or sys.exit("chromium is not installed: apt-get install chromium")
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = Path(tempfile.mkdtemp(prefix="freshrec-ui-"))
    with prefect_server(home) as api, freshrec_serve(api, home, {"FRESHREC_MODEL": "tiny"}, interval=300):
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    deployment = client.read_deployment_by_name(DEPLOYMENT)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        sys.exit("the deployment was not registered; see " + str(home / "serve.log"))
                    time.sleep(1)
        url = api.removesuffix("/api") + f"/deployments/deployment/{deployment.id}"
        dom = capture(browser, url, args.screenshot, 1440, 1000, budget_ms=15_000, timeout=120)
    if args.dom:
        args.dom.write_text(dom)
    found = "serve-every-5-min" in dom
    print(f"{url}: deployment name {'found' if found else 'NOT found'} in the page; screenshot {args.screenshot}")
    sys.exit(0 if found else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
