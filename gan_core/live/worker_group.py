"""Imported once, by the workers' forkserver only (worker.context preloads it): the forkserver leaves the web
server's session for one of its own, so every worker forked from it shares a scheduler group apart from the
server's.

Linux (with the default `kernel.sched_autogroup_enabled=1`) shares the CPU between sessions' autogroups
before it looks at any process's niceness. In the server's group, training workers only rank below the
server against each other and the server; the whole group still competes as one with the browsers and
everything else on the machine, so a busy group made the server's answers wait behind its own workers. With
the workers in a group of their own, the server (which needs little CPU, in short bursts) is served first,
and the workers' niceness still orders them where autogroups are off. Imported anywhere else (the layer
test imports every module), it does nothing."""

import os
import sys


def imported_by_forkserver() -> bool:
    """True while multiprocessing's forkserver `main` is importing its preload modules."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith(os.path.join("multiprocessing", "forkserver.py")):
            return True
        frame = frame.f_back
    return False


if imported_by_forkserver():
    try:
        os.setsid()
    except OSError:  # already a process-group leader: stay in the server's group
        pass
