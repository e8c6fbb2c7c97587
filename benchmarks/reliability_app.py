"""The app server's part of the reliability figures (imported by benchmarks/reliability.py, or run alone):

- kill -9 of the server while a browser session trains (and checkpoints every second): afterwards no
  process of that server is left, the run folder loads, its config.json agrees with its weights, its
  status reads "interrupted" once a restarted server has looked at the folder, and `--resume` continues it;
- load: N browser sessions (Playwright contexts in one headless Chromium) against one server, each pressing
  Start within a window: how many see their run (or their queue position) and how soon; then a second
  browser opens each student's Train page in turn with that student's cookie, and times the server's
  answer (each run request to the server's "script finished" for it, from the browser's own WebSocket
  frames) and the whole page until it shows the run, p50 / p95 (the pass criterion: the server's answer
  p95 < 2 s); the class tabs' own requests are timed the same way, but their browser shares the cores and
  is starved, so their stamps run late; exception boxes, JavaScript errors and failed requests (with their
  URLs); and the server's RSS and thread count before, at peak, and after the tabs close and the session
  timeout passes.

    python benchmarks/reliability_app.py --server-kills 100 --sessions 20
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from browser_utils import CHROMIUM_ARGS, chromium_path, start_app_server, stop_app_server  # noqa: E402

from gan_core.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata  # noqa: E402
from gan_core.errors import GanError  # noqa: E402
from gan_core.runs import list_runs, recover_runs_folder  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

# The class browser's niceness (0: as Playwright starts it). Linux gives each session's autogroup an equal
# share of the CPU, so a niced browser group is not "below the server" but below the server *and* its
# training workers, which share the server's group: at 5 or 10 the 20 tabs got so little CPU that pages
# did not load within 30 s (2026-12-03, 2-core Xeon).
BROWSER_NICE = 0
MARK = "GAN_RELIABILITY_MARK"  # set in the server's environment, so its leftover processes can be found


def processes_marked(mark: str) -> list[int]:
    """PIDs of live processes whose environment carries MARK=mark (the server and anything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{MARK}={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().split(") ")[1][0] != "Z":  # zombies hold nothing
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def tree_usage(mark: str) -> tuple[float, int]:
    """(RSS in MB, threads) summed over the server's processes."""
    rss, threads = 0.0, 0
    for pid in processes_marked(mark):
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
            rss += int(status["VmRSS"].split()[0]) / 1024
            threads += int(status["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return rss, threads


class ServerAnswers:
    """How long the server takes to answer one page, seen from that page's network layer: from each run
    request the page sends (a reload's first run, a fragment's poll, a click) to the server's "script
    finished" for it, both stamped by the browser's network process. That process shares the machine's CPU
    too: stamps taken in a starved browser run late, which is why `load` times a second browser. A request
    still unanswered when its page reloads or closes is counted apart."""

    SMALL = 512  # "script finished" is a few bytes; bigger frames from the server (deltas, images) are not decoded

    def __init__(self, page) -> None:
        self.pending: list[float] = []
        self.answers: list[float] = []
        self.unanswered = 0
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.webSocketFrameSent", self._sent)
        cdp.on("Network.webSocketFrameReceived", self._received)
        cdp.on("Network.webSocketClosed", self._closed)
        cdp.send("Network.enable")

    @staticmethod
    def _kind(message_type, frame: dict, small_only: bool = False) -> str | None:
        payload = frame.get("payloadData", "")
        if frame.get("opcode") != 2 or (small_only and len(payload) > ServerAnswers.SMALL * 4 // 3 + 4):
            return None
        message = message_type()
        try:
            message.ParseFromString(base64.b64decode(payload))
        except Exception:  # noqa: BLE001 - not one of Streamlit's messages
            return None
        kind = message.WhichOneof("type")
        if kind == "script_finished" and message.script_finished == message.FINISHED_EARLY_FOR_RERUN:
            return "superseded"  # the next run answers this request too
        return kind

    def _sent(self, event: dict) -> None:
        if self._kind(BackMsg, event["response"]) == "rerun_script":
            self.pending.append(event["timestamp"])

    def _received(self, event: dict) -> None:
        if self._kind(ForwardMsg, event["response"], small_only=True) == "script_finished":
            self.answers += [event["timestamp"] - sent for sent in self.pending]
            self.pending = []

    def _closed(self, event: dict) -> None:
        self.unanswered += len(self.pending)
        self.pending = []


def streamlit_probe(url: str) -> bool:
    """Whether `url` is one of the two requests Streamlit's front end makes to find the server when a page is
    opened at a page's own URL (/train/_stcore/health, /train/_stcore/host-config): they answer 404 and the
    front end goes on with /_stcore/... (streamlit/streamlit#7074, open). Not the app's errors; counted apart."""
    path = urllib.parse.urlsplit(url).path
    return path.endswith(("/_stcore/health", "/_stcore/host-config")) and not path.startswith("/_stcore/")


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile of an already sorted list (nan when empty)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_by_group(mark: str, server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server process, its training workers and the browser's processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    marked, groups = set(processes_marked(mark)), {"server": 0.0, "workers": 0.0, "browser": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / ticks
            group = "server" if pid == server_pid else "workers" if pid in marked else \
                "browser" if b"chromium" in (entry / "cmdline").read_bytes() else None
        except (OSError, IndexError, ValueError):
            continue
        if group:
            groups[group] += seconds
    return groups


def process_summary(pid: int) -> str:
    """A process's command line (cut short), RSS and threads, for the benchmark's log."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return f"{command} RSS {int(status['VmRSS'].split()[0]) // 1024} MB, {status['Threads'].strip()} threads"
    except (OSError, KeyError, ValueError):
        return "(gone)"


def press_start(page, url: str, preset: str) -> None:
    """Open Train with `preset` and press Start (what a student does)."""
    page.goto(f"{url}/train?preset={preset}")
    page.get_by_role("button", name="Start", exact=True).click()


def shows_run(page, preset: str, timeout_ms: float) -> bool:
    """True once the page shows its run's name (training) or its place in the queue."""
    try:
        page.locator("h3", has_text=preset).or_(page.get_by_text("queued", exact=False)).first.wait_for(timeout=timeout_ms)
        return True
    except Exception:  # noqa: BLE001 - playwright's TimeoutError
        return False


def first_checkpoint(runs: Path, timeout: float) -> bool:
    """Wait until some run under `runs` has written its first checkpoint; False after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(runs.glob(f"*/{WEIGHTS_FILE}")):
            return True
        time.sleep(0.1)
    return False


def check_killed_run(runs: Path, previous_step: int) -> tuple[bool, int, str]:
    """After a kill: recover the folder as a restarted server does, then load the run and resume it."""
    folders = [p.parent for p in runs.glob(f"*/{WEIGHTS_FILE}")]
    if not folders:
        return False, previous_step, "no checkpoint yet"
    run = max(folders, key=lambda p: p.stat().st_mtime)
    try:
        recover_runs_folder(runs)
        meta = read_metadata(run)
        status = next(info.status for info in list_runs(runs) if info.path == run)
        trainer = load_checkpoint(run, device="cpu")
        agrees = json.loads((run / "config.json").read_text()) == meta
        resumed = subprocess.run([sys.executable, "-m", "gan_core", "train", "--out", str(run), "--resume", "--steps", "20"],
                                 cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
        after = load_checkpoint(run, device="cpu").step_count
    except GanError as exc:
        return False, previous_step, f"did not load: {exc}"
    ok = agrees and status == "interrupted" and resumed.returncode == 0 and after == trainer.step_count + 20
    return ok, trainer.step_count, f"status {status}, config.json agrees {agrees}, resume rc {resumed.returncode}"


def server_kills(work: Path, n: int, browser) -> tuple[str, int, int, int, str]:
    """kill -9 the server at a random moment of a live run, n times (a fresh server and run each time)."""
    rng, tried, survived, leftovers, never, steps = random.Random(0), 0, 0, 0, 0, []
    for i in range(n):
        runs, mark = work / f"kill-{i}" / "runs", f"kill-{i}-{os.getpid()}"
        runs.mkdir(parents=True)
        env = {"GAN_RUNS_DIR": str(runs), "GAN_DATA_DIR": str(work / "data"), "GAN_CHECKPOINT_SECONDS": "1",
               MARK: mark}
        proc, url = start_app_server(env, runs.parent / "streamlit.log")
        context = browser.new_context()
        try:
            page = context.new_page()
            press_start(page, url, "ring8")
            shows_run(page, "ring8", 60_000)
            # The kill lands at a random moment after the run's first checkpoint (one a second after that), so
            # every round has a previous checkpoint to lose or keep, and some kills land mid-write.
            checkpointed = first_checkpoint(runs, 60)
            time.sleep(rng.uniform(0.0, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            context.close()
        deadline = time.monotonic() + 15
        while processes_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_marked(mark)
        for pid in left:  # count them, then clean up so the next round starts clean
            os.kill(pid, signal.SIGKILL)
        leftovers += bool(left)
        if not checkpointed:  # the run never reached its first checkpoint within a minute: nothing to keep
            never += 1
            print(f"  server kill {i}: no checkpoint within 60 s, not counted", file=sys.stderr)
            continue
        ok, step, why = check_killed_run(runs, steps[-1] if steps else 0)
        tried += 1
        if ok and not left:
            survived += 1
            steps.append(step)
        else:
            print(f"  server kill {i}: {why}; processes left behind: {len(left)}", file=sys.stderr)
    return "crash: kill -9 of the app server mid-run, then load + --resume", tried, survived, tried - survived, \
        (f"rounds with processes left behind: {leftovers}; steps at the kills {min(steps, default=0)}-{max(steps, default=0)}"
         f"; rounds without a first checkpoint (not counted): {never}")


def watch_errors(page, label: str, errors: list, failed: list, probes: list) -> None:
    """Record the page's uncaught JavaScript errors, console errors and failed requests (Streamlit's own
    sub-page probes apart, see `streamlit_probe`)."""
    page.on("pageerror", lambda e: errors.append(f"{label}: {e}"))
    page.on("console", lambda m: errors.append(f"{label}: console {m.text} ({m.location.get('url')})")
            if m.type == "error" and not streamlit_probe(m.location.get("url", "")) else None)
    page.on("response", lambda r: (probes if streamlit_probe(r.url) else failed).append(f"{label}: HTTP {r.status} {r.url}")
            if r.status >= 400 else None)


def load(work: Path, sessions: int, preset: str, window: float, watch: float, timeout: float, browser,
         probe_browser=None, browser_nice: int = 0) -> tuple:
    """`sessions` students press Start within `window` s, then keep watching for `watch` s; see the docstring.

    The page answer is measured by `probe_browser` (a browser at the server's own priority): it opens each
    student's Train page in turn with that student's session cookie, as the student reloading the page on
    their own machine would, and times it until the page shows the run. The class's own tabs, which share
    the server's cores (at `browser_nice`), keep their pages open and polling meanwhile."""
    runs, mark = work / "load" / "runs", f"load-{os.getpid()}"
    runs.mkdir(parents=True)
    env = {"GAN_RUNS_DIR": str(runs), "GAN_DATA_DIR": str(work / "data"), "GAN_SESSION_TIMEOUT": str(timeout), MARK: mark}
    proc, url = start_app_server(env, runs.parent / "streamlit.log")
    probe_browser = probe_browser or browser
    try:
        # One short run first: the server imports everything once and starts its worker fork server (a
        # process that stays, ~700 MB RSS mostly torch's shared libraries), so the baseline is a warmed-up
        # idle server and what follows measures the load, not the first run's one-time costs.
        warm = browser.new_context().new_page()
        press_start(warm, url, "ring8")
        shows_run(warm, "ring8", 60_000)
        warm.context.close()
        time.sleep(timeout + 10)  # that session is reaped and its worker ends
        base_rss, base_threads = tree_usage(mark)
        contexts, errors, failed, probes, server_side, started = [], [], [], [], [], time.monotonic()
        for i in range(sessions):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            watch_errors(page, str(i), errors, failed, probes)
            server_side.append(ServerAnswers(page))
            press_start(page, url, preset)
            contexts.append((context, page, time.monotonic()))
            time.sleep(max(0.0, started + window * (i + 1) / sessions - time.monotonic()))
        seen_at = []
        for _, page, pressed in contexts:
            seen_at.append(time.monotonic() - pressed if shows_run(page, preset, 240_000) else None)
        probe = probe_browser.new_context(viewport={"width": 1280, "height": 900})
        probe_page = probe.new_page()
        watch_errors(probe_page, "probe", errors, failed, probes)
        probe_answers = ServerAnswers(probe_page)
        answers, peak_rss, peak_threads, boxes = [], 0.0, 0, 0
        cpu_before, watch_started = cpu_by_group(mark, proc.pid), time.monotonic()
        deadline = time.monotonic() + watch
        while time.monotonic() < deadline:
            for i, (context, page, _) in enumerate(contexts):
                probe.clear_cookies()
                probe.add_cookies(context.cookies())  # student i's session, on the probe's own CPU
                began = time.monotonic()
                probe_page.goto(f"{url}/train")
                answers.append(time.monotonic() - began if shows_run(probe_page, preset, 30_000) else 30.0)
                boxes += probe_page.locator("[data-testid=stException]").count()
                rss, threads = tree_usage(mark)
                peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        cpu_after, watched = cpu_by_group(mark, proc.pid), time.monotonic() - watch_started
        cpu = {group: (cpu_after[group] - cpu_before[group]) / watched for group in cpu_after}
        boxes += sum(page.locator("[data-testid=stException]").count() for _, page, _ in contexts)
        probe.close()
        for context, _, _ in contexts:
            context.close()
        time.sleep(timeout + 20)  # the reaper stops and saves the abandoned runs, the workers end
        end_rss, end_threads = tree_usage(mark)
        for pid in processes_marked(mark):
            print(f"  left at the end: {pid} {process_summary(pid)}", file=sys.stderr)
    finally:
        stop_app_server(proc)
    shown = [s for s in seen_at if s is not None]
    answers.sort()
    served = sorted(a for answers_of_page in server_side for a in answers_of_page.answers)
    probe_served = sorted(probe_answers.answers)
    p95, served_p95 = percentile(answers, 0.95), percentile(probe_served, 0.95)
    ok = len(shown) == sessions and served_p95 < 2.0 and not boxes and not errors and not failed \
        and end_threads <= base_threads + 2 and end_rss <= base_rss * 1.25 + 50
    notes = (f"{len(shown)}/{sessions} saw their run or queue place, within {max(shown, default=0):.1f} s (median "
             f"{statistics.median(shown) if shown else 0:.1f} s); a student's Train page opened in a browser at the "
             f"server's priority: the server's answer (run request to script finished) p50 "
             f"{percentile(probe_served, 0.5):.2f} s, p95 {served_p95:.2f} s over {len(probe_served)} requests, the "
             f"whole page until it shows the run p50 {percentile(answers, 0.5):.2f} s, p95 {p95:.2f} s over "
             f"{len(answers)} loads; "
             f"the class tabs' own run requests (their browser shares the 2 cores at nice {browser_nice}, its "
             f"scheduler group {browser_priority(work)!r}) answered "
             f"p50 {percentile(served, 0.5):.2f} s, p95 {percentile(served, 0.95):.2f} s over {len(served)} "
             f"({60 * len(served) / sessions / (watch_started + watched - started):.1f} a tab a minute; on a machine of "
             f"its own a tab asks about 21: the Train page's fragment every 4 s with 9 or more runs on the server, the "
             f"sidebar's heartbeat every 10 s); "
             f"exception boxes {boxes}, JS errors {len(errors)}, failed requests {len(failed)} (and {len(probes)} of "
             f"Streamlit's sub-page probes, streamlit#7074); server RSS "
             f"{base_rss:.0f} -> peak {peak_rss:.0f} -> {end_rss:.0f} MB, threads {base_threads} -> {peak_threads} -> {end_threads}; "
             f"CPU-s/s while watching: server {cpu['server']:.2f}, workers {cpu['workers']:.2f}, browsers {cpu['browser']:.2f}")
    for e in errors[:5] + failed[:10]:
        print(f"  {e}"[:200], file=sys.stderr)
    return f"load: {sessions} browser sessions on {preset}", 1, int(ok), int(not ok), notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    for row in run_all(Path(tempfile.mkdtemp(prefix="gan-reliability-app-")), args):
        print(f"| {' | '.join(str(x) for x in row)} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This file's options (benchmarks/reliability.py takes them too)."""
    parser.add_argument("--server-kills", type=int, default=100, help="kill -9 of the app server (0: skip)")
    parser.add_argument("--sessions", type=int, default=20, help="browser sessions of the load check (0: skip)")
    parser.add_argument("--preset", default="mnist-dcgan", help="what the load check's students train")
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which the students press Start")
    parser.add_argument("--watch", type=float, default=60.0, help="seconds of page reloads after that")
    parser.add_argument("--session-timeout", type=float, default=30.0)
    parser.add_argument("--browser-nice", type=int, default=BROWSER_NICE,
                        help="CPU niceness of the class tabs' browser, set on its autogroup (in a classroom each tab "
                             "runs on its student's machine; here the tabs share the server's cores; see BROWSER_NICE)")


def browser_executable(nice: int, work: Path) -> str:
    """Chromium at CPU niceness `nice`, through a wrapper script.

    A plain `nice` is not enough: Linux shares the CPU between autogroups (one per session) before it looks
    at a process's niceness, and Playwright starts the browser in a session of its own; Chromium, run as
    root, also sets its own processes' nice values (-8 for the browser and GPU processes). So the wrapper
    sets the niceness of the browser's autogroup, which Chromium leaves alone, and writes its pid to
    `chromium-nice.pid` for `browser_priority`."""
    if not nice:
        return chromium_path()
    wrapper = work / "chromium-nice"
    wrapper.write_text("#!/bin/sh\n"
                       f"echo $$ > '{work / 'chromium-nice.pid'}'\n"
                       f"[ -w /proc/self/autogroup ] && echo {int(nice)} > /proc/self/autogroup\n"
                       f'exec nice -n {int(nice)} {chromium_path()} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def browser_priority(work: Path) -> str:
    """The class browser's autogroup line (e.g. "/autogroup-16 nice 10"), to show the niceness held; "as
    Playwright starts it" without the wrapper."""
    pid_file = work / "chromium-nice.pid"
    if not pid_file.exists():
        return "as Playwright starts it"
    try:
        return Path(f"/proc/{int(pid_file.read_text())}/autogroup").read_text().strip()
    except (OSError, ValueError):
        return "unknown"


def run_all(work: Path, args: argparse.Namespace) -> list[tuple]:
    """Both checks with one browser (either skipped when its count is 0)."""
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        raise SystemExit("no Chromium: install Debian's chromium")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_executable(args.browser_nice, work), args=CHROMIUM_ARGS)
        probe_browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS) if args.sessions else None
        if args.server_kills:
            rows.append(server_kills(work, args.server_kills, browser))
            print(f"done: {rows[-1][0]}", file=sys.stderr)
        if args.sessions:
            rows.append(load(work, args.sessions, args.preset, args.window, args.watch, args.session_timeout, browser,
                             probe_browser, args.browser_nice))
            print(f"done: {rows[-1][0]}", file=sys.stderr)
        browser.close()
        if probe_browser is not None:
            probe_browser.close()
    return rows


if __name__ == "__main__":
    main()
