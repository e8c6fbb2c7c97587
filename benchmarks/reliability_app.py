"""The app server's part of the reliability figures (imported by benchmarks/reliability.py, or run alone):

- kill -9 of the server while a browser session trains (and checkpoints every second): afterwards no
  process of that server is left, the run folder loads, its config.json agrees with its weights, its
  status reads "interrupted" once a restarted server has looked at the folder, and `--resume` continues it;
- load: N browser sessions (Playwright contexts in one headless Chromium) against one server, each pressing
  Start within a window: how many see their run (or their queue position) and how soon, the page answer
  time (a reload until the page shows its run) p50 / p95, exception boxes and JavaScript errors, and the
  server's RSS and thread count before, at peak, and after the tabs close and the session timeout passes.

    python benchmarks/reliability_app.py --server-kills 100 --sessions 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from browser_utils import CHROMIUM_ARGS, chromium_path, start_app_server, stop_app_server  # noqa: E402

from gan_core.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata  # noqa: E402
from gan_core.errors import GanError  # noqa: E402
from gan_core.runs import list_runs, recover_runs_folder  # noqa: E402

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
    rng, tried, survived, leftovers, steps = random.Random(0), 0, 0, 0, []
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
            time.sleep(rng.uniform(1.5, 4.0))
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
        ok, step, why = check_killed_run(runs, steps[-1] if steps else 0)
        if why == "no checkpoint yet":
            continue
        tried += 1
        if ok and not left:
            survived += 1
            steps.append(step)
        else:
            print(f"  server kill {i}: {why}; processes left behind: {len(left)}", file=sys.stderr)
    return "crash: kill -9 of the app server mid-run, then load + --resume", tried, survived, tried - survived, \
        f"rounds with processes left behind: {leftovers}; steps at the kills {min(steps, default=0)}-{max(steps, default=0)}"


def load(work: Path, sessions: int, preset: str, window: float, watch: float, timeout: float, browser) -> tuple:
    """`sessions` students press Start within `window` s, then keep watching for `watch` s; see the docstring."""
    runs, mark = work / "load" / "runs", f"load-{os.getpid()}"
    runs.mkdir(parents=True)
    env = {"GAN_RUNS_DIR": str(runs), "GAN_DATA_DIR": str(work / "data"), "GAN_SESSION_TIMEOUT": str(timeout), MARK: mark}
    proc, url = start_app_server(env, runs.parent / "streamlit.log")
    try:
        idle = browser.new_context().new_page()  # one page load first: the server imports everything once
        idle.goto(f"{url}/train")
        idle.get_by_role("button", name="Start", exact=True).wait_for()
        idle.context.close()
        time.sleep(timeout + 10)  # that session is reaped too, so the baseline is an idle, warmed-up server
        base_rss, base_threads = tree_usage(mark)
        contexts, errors, started = [], [], time.monotonic()
        for i in range(sessions):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda e, i=i: errors.append(f"{i}: {e}"))
            page.on("console", lambda m, i=i: errors.append(f"{i}: console {m.text}") if m.type == "error" else None)
            press_start(page, url, preset)
            contexts.append((context, page, time.monotonic()))
            time.sleep(max(0.0, started + window * (i + 1) / sessions - time.monotonic()))
        seen_at = []
        for _, page, pressed in contexts:
            seen_at.append(time.monotonic() - pressed if shows_run(page, preset, 240_000) else None)
        answers, peak_rss, peak_threads, boxes = [], 0.0, 0, 0
        deadline = time.monotonic() + watch
        while time.monotonic() < deadline:
            for _, page, _ in contexts:
                began = time.monotonic()
                page.reload()
                answers.append(time.monotonic() - began if shows_run(page, preset, 30_000) else 30.0)
                boxes += page.locator("[data-testid=stException]").count()
                rss, threads = tree_usage(mark)
                peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        for context, _, _ in contexts:
            context.close()
        time.sleep(timeout + 20)  # the reaper stops and saves the abandoned runs, the workers end
        end_rss, end_threads = tree_usage(mark)
    finally:
        stop_app_server(proc)
    shown = [s for s in seen_at if s is not None]
    answers.sort()
    p95 = answers[min(len(answers) - 1, int(0.95 * len(answers)))] if answers else float("nan")
    ok = len(shown) == sessions and p95 < 2.0 and not boxes and not errors and end_threads <= base_threads + 2 \
        and end_rss <= base_rss * 1.25 + 50
    notes = (f"{len(shown)}/{sessions} saw their run or queue place, within {max(shown, default=0):.1f} s (median "
             f"{statistics.median(shown) if shown else 0:.1f} s); page answer p50 {statistics.median(answers) if answers else 0:.2f} s, "
             f"p95 {p95:.2f} s over {len(answers)} reloads; exception boxes {boxes}, JS errors {len(errors)}; server RSS "
             f"{base_rss:.0f} -> peak {peak_rss:.0f} -> {end_rss:.0f} MB, threads {base_threads} -> {peak_threads} -> {end_threads}")
    for e in errors[:5]:
        print(f"  {e}"[:200], file=sys.stderr)
    return f"load: {sessions} browser sessions on {preset}", 1, int(ok), int(not ok), notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-kills", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--preset", default="mnist-dcgan")
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which the students press Start")
    parser.add_argument("--watch", type=float, default=60.0, help="seconds of page reloads after that")
    parser.add_argument("--session-timeout", type=float, default=30.0)
    args = parser.parse_args()
    for row in run_all(Path(tempfile.mkdtemp(prefix="gan-reliability-app-")), args):
        print(f"| {' | '.join(str(x) for x in row)} |")


def run_all(work: Path, args: argparse.Namespace) -> list[tuple]:
    """Both checks with one browser (either skipped when its count is 0)."""
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        raise SystemExit("no Chromium: install Debian's chromium")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        if args.server_kills:
            rows.append(server_kills(work, args.server_kills, browser))
            print(f"done: {rows[-1][0]}", file=sys.stderr)
        if args.sessions:
            rows.append(load(work, args.sessions, args.preset, args.window, args.watch, args.session_timeout, browser))
            print(f"done: {rows[-1][0]}", file=sys.stderr)
        browser.close()
    return rows


if __name__ == "__main__":
    main()
