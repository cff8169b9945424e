"""The panel in a real browser: Voila serves a notebook, headless Chromium presses the buttons.

Needs Debian's ``chromium`` (``apt-get install chromium``), ``voila`` and ``playwright``
(the ``test`` extra); Playwright drives the system Chromium through ``executable_path``
and never downloads a browser. Skips, saying what is missing, without them.

The screenshot lands in the test's tmp folder; with ``STREAMKIT_UPDATE_SCREENSHOT=1`` it
also replaces ``docs/panel.png`` (the README's picture).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.access(p, os.X_OK)), None)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
UI_TIMEOUT_MS = 120_000  # generous: a loaded 2-core machine starts a kernel slowly

NOTEBOOK = '''\
import streamkit
from streamkit.testing import StreamServer

server = StreamServer(rate=150, seed=7).start()
p = streamkit.panel(track=["python"], base_url=server.url, auth=server.auth(), path="data/browser",
                    flush_seconds=0.5, refresh_interval=0.25, chart_seconds=120)
p
'''


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install -y chromium)"
    for module in ("playwright", "voila", "ipywidgets", "nbformat"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


pytestmark = [
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
    pytest.mark.slow,
    pytest.mark.timeout(600),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila(tmp_path):
    """Serve the panel notebook with Voila on 127.0.0.1; yield its URL; stop it and its kernel."""
    with serve_notebook(tmp_path, NOTEBOOK) as url:
        yield url


@contextlib.contextmanager
def serve_notebook(tmp_path, code: str):
    """Serve a one-cell notebook of ``code`` with Voila on 127.0.0.1; yield its URL; stop it and its kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "panel.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMKIT_")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    port = _free_port()
    log_path = tmp_path / "voila.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--show_tracebacks=True", "panel.ipynb"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "Voilà is running at" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"voila did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        # Voila and the kernel it started share the session we created: end that group only.
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        proc.wait(10)


def _counter(page, name: str) -> int:
    text = page.locator(f".streamkit-counter[data-name='{name}'] .streamkit-value").inner_text()
    return int(text.replace(",", "")) if text.strip() not in ("", "–") else -1


def test_panel_in_chromium_start_watch_refilter_stop(voila, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 900},
        )
        try:
            page = context.new_page()
            page.goto(voila, timeout=UI_TIMEOUT_MS, wait_until="domcontentloaded")
            panel = page.locator(".streamkit-panel")
            expect(panel).to_be_visible()
            state = page.locator(".streamkit-state-text")
            expect(state).to_have_attribute("data-state", "not")
            expect(state).to_contain_text("fill in a filter and press Start")

            # Start: the counters rise and rows appear in the table.
            page.locator("button.streamkit-start").click()
            expect(state).to_have_attribute("data-state", "streaming")
            page.wait_for_function(
                """() => parseInt(document.querySelector(".streamkit-counter[data-name='stored'] .streamkit-value")
                                  .textContent.replace(/,/g, '')) >= 20""",
                timeout=UI_TIMEOUT_MS,
            )
            first = _counter(page, "received")
            page.wait_for_function(
                f"""() => parseInt(document.querySelector(".streamkit-counter[data-name='received'] .streamkit-value")
                                   .textContent.replace(/,/g, '')) > {first}""",
                timeout=UI_TIMEOUT_MS,
            )
            expect(page.locator(".streamkit-table tbody tr")).to_have_count(10)
            expect(page.locator(".streamkit-table tbody tr").first).to_contain_text("@")
            expect(page.locator(".streamkit-path")).to_contain_text(str(tmp_path / "data" / "browser"))

            # Change the track filter and apply it: the panel reconnects into the same dataset.
            page.locator(".streamkit-track input").fill("rust")
            page.locator("button.streamkit-apply").click()
            expect(page.locator(".streamkit-message")).to_contain_text("Filter applied: track rust")
            expect(page.locator(".streamkit-filter")).to_have_text("track=rust")
            page.wait_for_function(
                """() => [...document.querySelectorAll(".streamkit-table tbody tr")]
                           .filter(r => /rust/i.test(r.textContent)).length >= 3""",
                timeout=UI_TIMEOUT_MS,
            )
            expect(state).to_have_attribute("data-state", "streaming")
            assert _counter(page, "reconnects") >= 1
            page.wait_for_function(
                "() => parseInt(document.querySelector('.streamkit-chart').dataset.points) >= 5",
                timeout=UI_TIMEOUT_MS,
            )
            shot = tmp_path / "panel.png"
            panel.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000

            # Stop: the state says so, Start is enabled again, and what it counted is on disk.
            page.locator("button.streamkit-stop").click()
            expect(state).to_have_attribute("data-state", "stopped")
            expect(page.locator(".streamkit-message")).to_contain_text("Stopped: ")
            expect(page.locator("button.streamkit-start")).to_be_enabled()
            expect(page.locator("button.streamkit-stop")).to_be_disabled()
            message = page.locator(".streamkit-message").inner_text()
            said = re.search(r"Stopped: ([\d,]+) tweets stored", message)
            assert said, message
            stored = int(said.group(1).replace(",", ""))
            # the counter shows the same final figure (widget updates arrive in order)
            page.wait_for_function(
                f"""() => document.querySelector(".streamkit-counter[data-name='stored'] .streamkit-value")
                           .textContent.replace(/,/g, "") === "{stored}" """,
                timeout=UI_TIMEOUT_MS,
            )
            panel.screenshot(path=str(tmp_path / "panel-stopped.png"))
        finally:
            context.close()

    import streamkit

    assert len(streamkit.read(tmp_path / "data" / "browser", include_deleted=True)) == stored
    if os.environ.get("STREAMKIT_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "panel.png")


RULES_NOTEBOOK = '''\
import streamkit
from streamkit.testing import XV2Server

server = XV2Server(rate=100, rules=[("python", "py")], match_fraction=1.0, keepalive_interval=0.5).start()
p = streamkit.panel(source="x-v2", base_url=server.url, bearer_token=server.bearer_token, path="data/x",
                    flush_seconds=0.5, refresh_interval=0.25, chart_seconds=120)
p
'''


def test_x_v2_panel_rules_in_chromium_add_delete_while_capturing(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with serve_notebook(tmp_path, RULES_NOTEBOOK) as url, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(url, timeout=UI_TIMEOUT_MS, wait_until="domcontentloaded")
            expect(page.locator(".streamkit-rules")).to_be_visible()
            options = page.locator(".streamkit-rules-list select option")
            expect(options).to_have_count(1)  # loaded when the panel was displayed
            expect(options.first).to_contain_text("python")
            expect(options.first).to_contain_text("tag: py")

            page.locator("button.streamkit-start").click()
            expect(page.locator(".streamkit-state-text")).to_have_attribute("data-state", "streaming")
            # add a rule while capturing: its posts arrive on the same connection
            page.locator(".streamkit-rules-value input").fill("zebrafish")
            page.locator(".streamkit-rules-tag input").fill("zf")
            page.locator("button.streamkit-rules-add").click()
            msg = page.locator(".streamkit-rules-msg")
            expect(msg).to_contain_text("Added 'zebrafish' (tag zf)")
            expect(options).to_have_count(2)
            page.wait_for_function(
                """() => [...document.querySelectorAll(".streamkit-table tbody tr")]
                           .filter(r => /zebrafish/i.test(r.textContent)).length >= 2""",
                timeout=UI_TIMEOUT_MS,
            )
            assert _counter(page, "reconnects") == 0

            # an invalid rule: a message, nothing added
            page.locator(".streamkit-rules-value input").fill("-cat")
            page.locator("button.streamkit-rules-add").click()
            expect(msg).to_have_attribute("data-kind", "error")
            expect(msg).to_contain_text("non-negation")
            expect(options).to_have_count(2)
            page.locator(".streamkit-rules").screenshot(path=str(tmp_path / "rules.png"))

            # delete the selected rule, then all (a second click confirms)
            page.locator(".streamkit-rules-list select").select_option(index=0)
            page.locator("button.streamkit-rules-delete_selected").click()
            expect(msg).to_contain_text("Deleted 1 rule. 1 rule left.")
            expect(options).to_have_count(1)
            expect(options.first).to_contain_text("zebrafish")
            page.locator("button.streamkit-rules-delete_all").click()
            expect(msg).to_contain_text("again to delete all 1 rule")
            expect(options).to_have_count(1)
            page.locator("button.streamkit-rules-delete_all").click()
            expect(msg).to_contain_text("Deleted all 1 rule.")
            expect(options).to_have_count(0)
            page.locator("button.streamkit-stop").click()
            expect(page.locator(".streamkit-state-text")).to_have_attribute("data-state", "stopped")
        finally:
            context.close()
