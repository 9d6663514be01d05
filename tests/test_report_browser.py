"""The demo report in a real browser: every figure decodes and the tables render.

Needs Debian's chromium (``.ci/run`` installs it when missing). A missing browser skips
the test with the install command on a user's machine and fails it when ``CI`` is set.
"""

import re
import shutil
import subprocess
from pathlib import Path

from conftest import skip_or_fail

from nanodomains.pipeline.demo import run_demo

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        skip_or_fail("headless Chromium not found: apt-get install -y chromium (done by .ci/run)")
    return exe


def test_demo_report_renders_in_chromium(tmp_path):
    exe = _chromium()
    run_demo(tmp_path / "demo", seed=0)
    report = tmp_path / "demo" / "report.html"
    dom = subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, "browser returned no DOM"
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(0)))
    assert int(attrs["images-total"]) >= 1
    assert attrs["images-loaded"] == attrs["images-total"]
    assert int(attrs["tables"]) >= 2
    assert "R1" in dom and "CsPbBr0.81I2.19" in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo_report.png"
    subprocess.run([exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}",
                    "--window-size=1280,1600", report.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
