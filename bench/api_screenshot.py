"""A drift report opened from its Prefect artifact link, served by `freshrec api`, in headless Chromium.

    python -m bench.api_screenshot SCREENSHOT.png [--dom DOM.html] [--model tiny]

In one process, against a scratch database `freshrec_bench_api_ui` on FRESHREC_DATABASE_URL's server (or the
embedded one): starts `freshrec api` on a free 127.0.0.1 port as the serving role, sets FRESHREC_PUBLIC_URL to
it, runs two update cycles through the Prefect flow (the second one measures drift), reads the second
cycle's `drift-report` link artifact from Prefect, checks that it points at the service, and loads that
link in Chromium for a screenshot. Needs Debian's chromium; too heavy for CI, so it is a script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--dom", type=Path, help="also save the rendered page's HTML here")
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    home = Path(tempfile.mkdtemp(prefix="freshrec-api-ui-"))
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from bench.api_load import background_server
    from bench.common import scratch_database
    from bench.render_report import capture
    from flows.update import freshrec_update
    from freshrec import generate
    from freshrec.api import create_app
    from freshrec.serving import serving_engine
    from freshrec.settings import load_settings

    engine, url = scratch_database("freshrec_bench_api_ui")
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=500, drift_at=0.5, seed=9))
    reader = serving_engine(url.render_as_string(hide_password=False))
    with background_server(create_app(reader)) as base:
        settings = load_settings(database_url=url.render_as_string(hide_password=False), data_dir=home / "data",
                                 model=args.model, max_batch_rows=250, public_url=base,
                                 publish_thresholds=[{"metric": "auc", "value": 0.0}], max_probe_change=1.0)
        freshrec_update(catch_up=False, settings=settings)
        second = freshrec_update(catch_up=False, settings=settings)
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["drift-report"])))
        link = re.search(r"\((http[^)\s]+)\)", artifacts[0].data).group(1)
        if link != f"{base}/reports/{second['cycle_id']}":
            sys.exit(f"the artifact links to {link}, not to the service")
        status = httpx.get(link, timeout=60).status_code
        dom = capture(browser, link, args.screenshot, 1400, 2600)
    reader.dispose()
    if args.dom:
        args.dom.write_text(dom)
    print(f"artifact link {link}: HTTP {status}, {len(dom)} characters of DOM; screenshot {args.screenshot}")


if __name__ == "__main__":
    main(sys.argv[1:])
