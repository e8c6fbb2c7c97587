"""Training on a Ray cluster: the app's job backend (GAN_RAY_ADDRESS) and the CLI's `train --ray`, on a
multi-node cluster simulated in one process tree (`ray.cluster_utils.Cluster`, the way Ray's own tests do).

Ray binds its services to the machine's network address, so the cluster tests run only inside a network
namespace that has nothing but loopback: `test_ray_suite_in_a_loopback_namespace` re-runs this module in
`unshare -n` (needs root; CI runs as root) and passes when every test passes there. Outside such a
namespace the cluster tests skip, saying so; `python -m pytest` stays the one test command.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from gan_test_utils import REPO, tiny, wait_until


NETNS_ENV = "GAN_RAY_TESTS_NETNS"  # set for the re-run inside the namespace


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


IN_NETNS = loopback_only()
cluster_test = pytest.mark.skipif(
    not IN_NETNS, reason="Ray cluster tests run only in a loopback-only network namespace: "
                         "test_ray_suite_in_a_loopback_namespace runs them there")


@pytest.mark.skipif(IN_NETNS, reason="already inside the loopback-only namespace")
def test_ray_suite_in_a_loopback_namespace():
    pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-dev.txt)")
    assert not os.environ.get(NETNS_ENV), "unshare -n made no loopback-only namespace"
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("the Ray tests need root, unshare and ip to make a loopback-only network namespace")
    script = 'ip link set lo up && exec "$0" -m pytest "$1" -q -x -p no:cacheprovider -o addopts="-ra --durations=5"'
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", NETNS_ENV: "1"}
    result = subprocess.run(["unshare", "-n", "sh", "-c", script, sys.executable, __file__], capture_output=True,
                            text=True, timeout=600, env=env, cwd=REPO)
    report = result.stdout[-8000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 3, report  # the three cluster tests
    print(result.stdout[-3000:])


@pytest.mark.skipif(IN_NETNS, reason="runs outside the namespace, once")
def test_without_ray_address_nothing_about_ray_is_loaded(tmp_path):
    code = f"""
import importlib, pkgutil, sys
import gan_core
for m in pkgutil.walk_packages(gan_core.__path__, "gan_core."):
    if not m.name.startswith("gan_core.app") and not m.name.endswith("__main__"):
        importlib.import_module(m.name)
from gan_core.cli import main
from gan_core.live import JobManager
from gan_core import get_preset
m = JobManager(root={str(tmp_path / 'runs')!r})
assert m.workers != "ray"
job = m.submit("s", get_preset("ring8").config(steps=20, g_width=8, d_width=8))
job.join(120)
m.shutdown()
assert job.state.value == "finished", job.view().message
assert main(["train", "--preset", "ring8", "--steps", "20", "--out", {str(tmp_path / 'cli')!r}]) == 0
loaded = sorted(n for n in sys.modules if n == "ray" or n.startswith("ray."))
assert not loaded, loaded
print("no ray")
"""
    env = {k: v for k, v in os.environ.items() if k != "GAN_RAY_ADDRESS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert result.returncode == 0 and "no ray" in result.stdout, result.stderr[-3000:]


# --- on the simulated cluster (inside the namespace) -------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """A head node and one more node, 1 CPU each; node deaths are noticed within about two seconds."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from gan_core.cluster import connect

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray = connect(c.address)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def ray_manager(cluster, tmp_path):
    from gan_core.live import JobManager

    m = JobManager(root=tmp_path / "runs", ray_address=cluster.address, view_seconds=0.2, metrics_seconds=1.0,
                   checkpoint_seconds=0.5)
    assert m.workers == "ray"
    yield m
    m.shutdown(timeout=60)


def toy_run(seconds: float = 120):
    return tiny("ring8", seconds=seconds, steps=0)


def training(job, steps: int = 5) -> bool:
    view = job.view()
    return view.state.value == "running" and view.step >= steps and view.latest is not None


def loads_at_saved_step(job) -> None:
    from gan_core.checkpoint import load_checkpoint

    saved = job.view().saved_step
    assert saved is not None and saved > 0
    assert load_checkpoint(job.run_dir, device="cpu").step_count == saved


@cluster_test
def test_runs_spread_over_both_nodes_queue_for_a_cpu_take_commands_and_stop(ray_manager):
    a = ray_manager.submit("s-a", toy_run(), preset="ring8")
    b = ray_manager.submit("s-b", toy_run(), preset="ring8")
    assert wait_until(lambda: training(a) and training(b), timeout=90), (a.view().message, b.view().message)
    assert a.node["node"] != b.node["node"]  # one run per node: each declared the node's only CPU
    assert "Ray node" in a.view().device and a.node["address"] in a.view().device

    # A third run waits for a CPU, shown as queued, and starts when one is free.
    c = ray_manager.submit("s-c", toy_run(), preset="ring8")
    assert wait_until(lambda: c.view().state.value == "queued", timeout=30), c.view().message
    view = c.view()
    assert view.queue_position == 1 and "Ray cluster" in view.message and view.load.queued == 1
    d = ray_manager.submit("s-d", toy_run(), preset="ring8")  # a fourth, stopped while it waits
    assert wait_until(lambda: d.view().queue_position == 2, timeout=30), d.view().message
    d.stop(wait=True, timeout=30)
    assert d.view().state.value == "stopped" and "before it started" in d.view().message
    assert wait_until(lambda: c.view().queue_position == 1, timeout=10)

    # The page is reloaded: a new page finds the session's job and polls its view, which keeps advancing.
    assert ray_manager.job_for("s-a") is a
    before = a.view()
    assert wait_until(lambda: a.view().step > before.step + 20 and a.view().latest_step > before.latest_step,
                      timeout=30)

    # Commands travel over Ray calls, in order: pause, one step, resume.
    a.pause()
    assert wait_until(lambda: a.view().state.value == "paused", timeout=20)
    paused_at = a.view().step
    time.sleep(1.0)
    assert a.view().step == paused_at
    a.step_once()
    assert wait_until(lambda: a.view().step == paused_at + 1, timeout=20)
    a.resume()
    assert wait_until(lambda: a.view().state.value == "running" and a.view().step > paused_at + 5, timeout=20)

    a.stop(wait=True, timeout=60)
    assert a.view().state.value == "stopped", a.view().message
    loads_at_saved_step(a)  # the checkpoint came back to this server's runs folder
    assert (a.run_dir / "metrics.csv").is_file() and list((a.run_dir / "samples").glob("step_*.png"))
    assert wait_until(lambda: training(c), timeout=90), c.view().message  # it got a's CPU
    for job in (b, c):
        job.stop(wait=True, timeout=60)
        assert job.view().state.value == "stopped"
        loads_at_saved_step(job)


@cluster_test
def test_losing_a_node_ends_only_its_run_with_the_last_checkpoint_kept(cluster, ray_manager):
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    jobs = [ray_manager.submit(f"s-{i}", toy_run(), preset="ring8") for i in range(3)]
    assert wait_until(lambda: all(training(j) and j.view().saved_step for j in jobs), timeout=120), \
        [j.view().message for j in jobs]
    on_doomed = [j for j in jobs if j.node["node"] == doomed.node_id]
    assert len(on_doomed) == 1  # three 1-CPU runs on three 1-CPU nodes
    lost, others = on_doomed[0], [j for j in jobs if j is not on_doomed[0]]
    time.sleep(1.0)  # a checkpoint or two more
    cluster.remove_node(doomed, allow_graceful=False)
    assert wait_until(lambda: lost.view().state.value == "failed", timeout=60), lost.view().message
    view = lost.view()
    assert "Ray node" in view.message and "lost" in view.message
    assert f"last checkpoint (step {view.saved_step:,}) is kept" in view.message
    loads_at_saved_step(lost)
    for job in others:  # the other runs go on
        step = job.view().step
        assert wait_until(lambda: job.view().step > step + 10, timeout=30)
        job.stop(wait=True, timeout=60)
        assert job.view().state.value == "stopped"


@cluster_test
def test_cli_ray_run_streams_progress_and_leaves_a_loadable_checkpoint(cluster, tmp_path):
    from gan_core.checkpoint import load_checkpoint

    out = tmp_path / "ring"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "gan_core", "train", "--preset", "ring8", "--steps", "300",
                             "--g-width", "16", "--d-width", "16", "--checkpoint-seconds", "0.5", "--out", str(out),
                             "--ray", cluster.address], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on the Ray cluster" in result.stderr and "300/300" in result.stderr and "img/s" in result.stderr
    assert load_checkpoint(out, device="cpu").step_count == 300
    assert len((out / "metrics.csv").read_text().splitlines()) == 301
    assert (out / "samples" / "step_000300.png").is_file() and (out / "timeline.safetensors").is_file()
