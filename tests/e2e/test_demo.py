"""`atlas demo`, run as a user runs it: every command it prints works, the Prometheus UI loads
whole through the tunnel, the demo alert reaches the observability Alertmanager, a cluster is
added and removed on a key, and SIGINT leaves no process and no temporary file behind."""

from __future__ import annotations

import json
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from atlas.demo.launch import atlas_command
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


class Demo:
    def __init__(self) -> None:
        self.base = f"127.{random.randint(100, 250)}"
        self.proc = subprocess.Popen(
            [*atlas_command(), "demo", "--clusters", "2", "--address-base", self.base],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def until(self, text: str, within: float = 90) -> list[str]:
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=within)
            except queue.Empty:
                raise AssertionError(
                    f"{text!r} not printed; got:\n{''.join(self.output)}"
                ) from None
            seen.append(line)
            if text in line:
                return seen

    def key(self, key: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()


@pytest.fixture
def demo() -> Iterator[Demo]:
    d = Demo()
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGINT)
            try:
                d.proc.wait(30)
            except subprocess.TimeoutExpired:
                d.proc.kill()


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """A command line the demo printed (without its comment), as a user would type it."""
    argv = shlex.split(command.split("#", 1)[0])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v for k, v in attrs if k in ("src", "href") and v and v.startswith("/")]


def test_the_demo_does_what_it_says(demo: Demo) -> None:
    first = demo.until("Atlas demo in ")[-1]
    root = first.split("Atlas demo in ", 1)[1].strip()
    printed = demo.until("Keys:")
    commands = [
        line.strip() for line in printed if line.startswith("  ") and not line.startswith("  ✓")
    ]

    dig = next(c for c in commands if c.startswith("dig "))
    answer = run_printed(dig + " +short")
    assert "east-0.sidecars.thanos.atlas." in answer.stdout, answer.stdout + answer.stderr
    assert "west-0.sidecars.thanos.atlas." in answer.stdout

    status = next(c for c in commands if " status --url " in c)
    result = wait_until(
        lambda: r if (r := run_printed(status)).returncode == 0 else None,
        within=30,
        what="healthy",
    )
    assert "east-0 cluster=east,replica=0" in result.stdout
    assert "west-0 cluster=west,replica=0" in result.stdout

    prometheus = next(c.split()[0] for c in commands if "/prom/east/" in c)
    with urllib.request.urlopen(prometheus, timeout=10) as page:
        html, landed = page.read().decode(), page.geturl()
    base = landed.split("/prom/")[0]
    parser = _Links()
    parser.feed(html)
    assert sum("/static/" in link for link in parser.links) >= 10, parser.links
    for link in parser.links:
        assert link.startswith("/prom/east/"), link
        with urllib.request.urlopen(base + link, timeout=10) as asset:
            assert asset.status == 200 and asset.read(), link
    alertmanager_ui = next(c.split()[0] for c in commands if "/am/west/" in c)
    with urllib.request.urlopen(alertmanager_ui, timeout=10) as page:
        assert page.status == 200

    api = next(c for c in commands if "/api/v2/alerts" in c)
    assert "/#/" not in "\n".join(commands), "no link to a web UI Debian's package lacks"

    def demo_alerts() -> set[str]:
        result = run_printed(api)  # the printed `curl`, as a user runs it
        alerts = json.loads(result.stdout or "[]")
        clusters = {
            a["labels"]["cluster"] for a in alerts if a["labels"]["alertname"] == "AtlasDemoAlert"
        }
        return clusters if clusters >= {"east", "west"} else set()

    wait_until(
        demo_alerts,
        within=60,
        what="the demo alert of both clusters at the observability Alertmanager",
    )
    amtool = [c for c in commands if c.startswith("amtool ")]
    if shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"):
        assert amtool, "with the real Alertmanager, its own tool's command is printed"
        listed = run_printed(amtool[0])
        assert listed.returncode == 0, listed.stderr
        assert "AtlasDemoAlert" in listed.stdout

    demo.key("a")
    demo.until("cluster north:")
    demo.until("Keys:")
    wait_until(
        lambda: "north-0 cluster=north" in (r := run_printed(status)).stdout and r.returncode == 0,
        within=30,
        what="north added and healthy",
    )
    demo.key("r")
    demo.until("cluster north removed")
    wait_until(
        lambda: "north" not in run_printed(status).stdout, within=30, what="north gone from status"
    )

    assert processes_mentioning(root), "the demo's parts run from its directory"
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(60) == 0, "".join(demo.output[-20:])
    assert demo.output[-1].strip() == "stopped"
    assert processes_mentioning(root) == [], "no process left"
    assert not Path(root).exists(), "the temporary directory is removed"
