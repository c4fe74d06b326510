#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol (--remote-debugging-pipe, standard library
only) to check the node's dashboard: open it at desktop and phone sizes, wait until it shows live
data, compare its network inference with the REST API's, check both charts rendered, save
screenshots, and fail on any console error or uncaught exception.

Usage: browser_check.py OUT_DIR DASHBOARD_URL   (used by scripts/browser-test.sh)
"""

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--remote-debugging-pipe",
]
WAIT_S = 90
# How long the page and the API may differ on an epoch (a local value being finalized).
AGREE_S = 10


class Browser:
    """One Chromium process and one page, spoken to over fds 3 (in) and 4 (out)."""

    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            # Chromium reads commands on fd 3 and writes replies on fd 4; move both ends above
            # any fd they could collide with first.
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            ["chromium", *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            close_fds=False,
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ["Runtime", "Page", "Log"]:
            self.call(f"{domain}.enable", session=True)

    def _read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def eval(self, expression):
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=True,
        )
        return result.get("result", {}).get("value")

    def problems(self):
        """Console errors and uncaught exceptions seen so far."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append("uncaught: " + json.dumps(params.get("exceptionDetails", {}))[:400])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                args = [a.get("value", a.get("description")) for a in params.get("args", [])]
                out.append(f"console.error: {args}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"log error: {entry.get('text')} ({entry.get('url', '')})")
        return out

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        self.proc.wait(timeout=10)


STATE = """(() => {
  const c = document.getElementById('combined');
  return {
    value: c.dataset.value, epoch: c.dataset.epoch,
    chart: Number(document.getElementById('chart').dataset.points || 0),
    loss: Number(document.getElementById('loss').dataset.points || 0),
    live: document.getElementById('live').classList.contains('on'),
    errors: document.getElementById('errors').textContent,
    leaderboard: document.querySelectorAll('#leaderboard tbody tr').length,
    checkpoints: document.querySelectorAll('#checkpoints li').length,
  };
})()"""


def check(out, url, name, width, height, mobile):
    profile = tempfile.mkdtemp()
    browser = Browser(profile)
    fail = []
    try:
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            session=True,
        )
        browser.call("Page.navigate", {"url": url}, session=True)
        deadline = time.time() + WAIT_S
        state = {}
        while time.time() < deadline:
            state = browser.eval(STATE) or {}
            if (
                state.get("value")
                and state.get("chart", 0) >= 10
                and state.get("loss", 0) >= 2
                and state.get("live")
                and state.get("leaderboard", 0) > 0
                and state.get("checkpoints", 0) > 0
            ):
                break
            time.sleep(0.5)
        else:
            fail.append(f"{name}: the page never showed live data: {state}")
        # The value shown, against the API for the epoch the page names. The page may show an
        # epoch's local inference (computed at the window's close) while the API already
        # answers with the finalized one, which differs when a bundle reached this node late;
        # the page then follows the finalized event. So: read both again until they agree, and
        # fail if they never do within AGREE_S.
        if state.get("value") and state.get("epoch"):
            agree_by = time.time() + AGREE_S
            mismatches = []
            while True:
                api = f"{url.rstrip('/')}/v1/topics/1/inference?epoch={state['epoch']}"
                with urllib.request.urlopen(api) as r:
                    shown = json.load(r)["combined_value"]
                if float(state["value"]) == shown:
                    print(
                        f"   {name}: epoch {state['epoch']}, page and API agree on {shown}"
                        + (f" (after {len(mismatches)} differing reads)" if mismatches else "")
                    )
                    break
                mismatches.append(f"page {state['value']} vs API {shown} (epoch {state['epoch']})")
                if time.time() > agree_by:
                    fail.append(f"{name}: never agreed within {AGREE_S} s: {mismatches[-3:]}")
                    break
                time.sleep(0.5)
                state = browser.eval(STATE) or state
        print(
            f"   {name}: {state.get('chart')} points in the inference chart, "
            f"{state.get('loss')} in the loss chart, {state.get('leaderboard')} leaderboard rows"
        )
        if state.get("errors"):
            fail.append(f"{name}: the page reported: {state['errors']!r}")
        time.sleep(1)  # let the last frame paint
        shot = browser.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=True,
        )
        path = os.path.join(out, f"dashboard-{name}.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(f"   {name}: screenshot {path} ({os.path.getsize(path)} bytes)")
        fail.extend(f"{name}: {p}" for p in browser.problems())
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    return fail


def main():
    out, url = sys.argv[1], sys.argv[2]
    fail = check(out, url, "desktop", 1280, 900, False)
    fail += check(out, url, "phone", 390, 844, True)
    if fail:
        print("\n".join("FAIL: " + f for f in fail), file=sys.stderr)
        sys.exit(1)
    print("browser test passed")


if __name__ == "__main__":
    main()
