"""Does the teacher's class view slow training down? A real server and a real browser, as in a class.

    python benchmarks/class_view.py                               # ring8 and mnist-dcgan, 4 rounds of 20 s
    python benchmarks/class_view.py --presets ring8 --rounds 3 --seconds 15

Starts `streamlit run playground.py` (one training slot per run, 1 torch thread, a teacher key) and
headless Chromium. A student's tab opens the Train page with a share link of the preset without a time
limit, presses Start and stays open, watching, the whole time. Then, in alternating order (ABBA...),
the teacher's tab either shows the class view (logged in once, refreshing every few seconds) or
about:blank, and the student's run's steps/s is measured over a window of `--seconds`: the slope of a
least-squares line through the step counter the student's page shows, read every 0.25 s, and the
server process's CPU use (cores, from /proc). Prints each window, the medians and their ratio, with the
machine and its load (steps/s means something only on an otherwise quiet machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests" / "e2e")]

from browser_utils import CHROMIUM_ARGS, chromium_path, start_app_server, stop_app_server  # noqa: E402 - tests/e2e
from throughput import machine_line  # noqa: E402 - benchmarks/throughput.py

KEY = "benchmark-teacher-key"
STEP = "[data-testid=stMetric]:has-text('Step') [data-testid=stMetricValue]"


def step_of(page) -> int | None:
    try:
        return int(page.locator(STEP).first.inner_text(timeout=2_000).replace(",", ""))
    except Exception:  # the fragment is redrawing
        return None


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(page, pid: int, seconds: float) -> tuple[float, float]:
    """(steps/s, the server's CPU cores in use) over `seconds` of wall time: the steps/s is the slope of a
    least-squares line through the step counter the page shows."""
    points = []
    t0, cpu0 = time.monotonic(), cpu_seconds(pid)
    while time.monotonic() - t0 < seconds:
        step = step_of(page)
        if step is not None:
            points.append((time.monotonic() - t0, step))
        time.sleep(0.25)
    cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    return statistics.linear_regression([t for t, _ in points], [s for _, s in points]).slope, cores


def bench_preset(browser, url: str, pid: int, preset: str, rounds: int, seconds: float) -> dict[str, list]:
    student_context, teacher_context = browser.new_context(), browser.new_context()
    student, teacher = student_context.new_page(), teacher_context.new_page()
    for page in (student, teacher):
        page.set_default_timeout(120_000)
    teacher.goto(f"{url}/class_view")
    teacher.get_by_label("Teacher key").fill(KEY)
    teacher.get_by_role("button", name="Open the class view").click()
    teacher.get_by_text("No run is training or queued right now.").wait_for()
    student.goto(f"{url}/train?preset={preset}&seconds=0")  # a share link: no time limit
    student.get_by_role("button", name="Start", exact=True).click()
    student.locator(STEP).first.wait_for()
    time.sleep(5)  # warm-up: first views and metrics
    results: dict[str, list] = {"class view open": [], "class view closed": []}
    for r in range(rounds):
        order = ["class view open", "class view closed"]
        for condition in order if r % 2 == 0 else order[::-1]:
            if condition == "class view open":
                teacher.goto(f"{url}/class_view")  # this browser session gave the key already
                teacher.get_by_text(f"{preset}-").first.wait_for()  # the run's card
            else:
                teacher.goto("about:blank")
            time.sleep(3)  # the page settles (its first full run)
            rate, cores = measure(student, pid, seconds)
            results[condition].append((rate, cores))
            print(f"  {preset} round {r + 1}: {condition}: {rate:.1f} steps/s, server {cores:.2f} cores, "
                  f"{rate / max(cores, 1e-9):.1f} steps per server CPU second; load {os.getloadavg()[0]:.1f}", flush=True)
    student.get_by_role("button", name="Stop", exact=True).click()
    student.get_by_text("Saved as").wait_for()
    student_context.close()
    teacher_context.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="ring8,mnist-dcgan")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GAN_RUNS_DIR": str(Path(tmp) / "runs"), "GAN_MAX_JOBS": "1", "GAN_TORCH_THREADS": "1",
               "GAN_TEACHER_KEY": KEY, "GAN_SESSION_TIMEOUT": "120"}
        proc, url = start_app_server(env, Path(tmp) / "streamlit.log", timeout=120)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                table = {preset: bench_preset(browser, url, proc.pid, preset, args.rounds, args.seconds)
                         for preset in args.presets.split(",")}
                browser.close()
        finally:
            stop_app_server(proc)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print("| preset | steps/s closed | steps/s open | open / closed | server cores closed | open |")
    print("|---|---:|---:|---:|---:|---:|")
    for preset, results in table.items():
        (closed, closed_cpu), (opened, open_cpu) = (
            (statistics.median(r for r, _ in results[c]), statistics.median(u for _, u in results[c]))
            for c in ("class view closed", "class view open"))
        print(f"| {preset} | {closed:.1f} | {opened:.1f} | {opened / closed:.2f} | {closed_cpu:.2f} | {open_cpu:.2f} |")


if __name__ == "__main__":
    main()
