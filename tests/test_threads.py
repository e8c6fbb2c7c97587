"""The thread tuner keeps the thread count that trains fastest, and measures again later."""

from gan_core.live.threads import ThreadTuner, candidates


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(tuner: ThreadTuner, clock: Clock, speed: dict[int, float], seconds: float, allowed: int = 2,
          step: int = 0, current: int = 0) -> tuple[int, int]:
    """Call `choose` once a second for `seconds`, training at `speed[threads]` steps/s meanwhile."""
    threads = current or tuner.choose(allowed, step)
    for _ in range(int(seconds)):
        clock.now += 1.0
        step += int(speed[threads])
        threads = tuner.choose(allowed, step)
    return threads, step


def test_candidates_are_all_half_and_one():
    assert candidates(1) == [1] and candidates(2) == [2, 1] and candidates(8) == [8, 4, 1]


def test_it_keeps_the_faster_count_whichever_it_is():
    for speed, best in (({2: 300, 1: 200}, 2), ({2: 80, 1: 150}, 1)):
        clock = Clock()
        tuner = ThreadTuner(probe_seconds=4, hold_seconds=60, clock=clock, settle_seconds=0, rounds=1)
        threads, _ = drive(tuner, clock, speed, 12)
        assert threads == best and set(tuner.rates) == {1, 2}
        assert abs(tuner.rates[best] - speed[best]) < 1e-6


def test_it_measures_again_after_the_hold_and_follows_a_change_of_load():
    clock = Clock()
    tuner = ThreadTuner(probe_seconds=4, hold_seconds=30, clock=clock, settle_seconds=0, rounds=1)
    threads, step = drive(tuner, clock, {2: 300, 1: 200}, 12)
    assert threads == 2
    threads, step = drive(tuner, clock, {2: 90, 1: 180}, 45, step=step, current=threads)  # a browser came
    assert threads == 1


def test_one_allowed_thread_is_one_and_a_pause_does_not_count_as_slow():
    clock = Clock()
    tuner = ThreadTuner(probe_seconds=4, hold_seconds=60, clock=clock, settle_seconds=0, rounds=1)
    assert tuner.choose(1, 0) == 1
    assert tuner.choose(2, 0) == 2
    clock.now += 2.0
    tuner.choose(2, 600)
    clock.now += 30.0  # paused: no steps, no calls
    threads, _ = drive(tuner, clock, {2: 300, 1: 200}, 12, step=600, current=2)
    assert threads == 2 and tuner.rates[2] > 250, "the paused time is not in the measured rate"


def test_the_slow_first_steps_at_a_count_and_a_burst_of_load_do_not_decide():
    """Each count settles for a second before it is measured, and the counts alternate (2, 1, 2, 1): a slow
    start at 2 threads (warm-up, a metrics pass at the start) and one loaded second do not make 1 win."""
    clock = Clock()
    tuner = ThreadTuner(probe_seconds=3, hold_seconds=60, clock=clock, settle_seconds=1, rounds=2)
    step, threads, speeds = 0, tuner.choose(2, 0), []
    for second in range(16):
        speed = {2: 300.0, 1: 200.0}[threads]
        if second == 0:
            speed = 20.0  # the first second of the run: warm-up
        if second == 2:
            speed = 50.0  # a browser burst during the first measured window at 2 threads
        speeds.append((threads, speed))
        clock.now += 1.0
        step += int(speed)
        threads = tuner.choose(2, step)
    assert [n for n, _ in speeds[::4]] == [2, 1, 2, 1], speeds
    assert threads == 2 and tuner.rates[2] > tuner.rates[1], tuner.rates
