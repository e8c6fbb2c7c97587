"""The training-job backend of the app (no Streamlit): jobs that train in worker processes, their
admission, fair share of the slots and queue, and what their live views show.

    manager.py   JobManager: admission, queue, reaper; get_manager()
    settings.py  what the server allows: its operator's variables, the machine's cores and memory
    scheduler.py FairShare / Turns: the slots shared round-robin in quanta; the estimated wait
    worker.py    the process boundary: supervise() on the server, worker_main() in the worker, the protocol
    job.py       Job: commands, state and view() for one session's run
    loop.py      the worker: trainer.step() plus side tasks on their cadences, then save
    pair.py      PairJob: an A/B pair, two runs in one slot and one worker, stepped in lockstep
    view.py      JobState, JobView and the bounded histories behind the charts
    verdict.py   the police's verdict and how to read D's output for each loss
    lab2d.py     the 2D lab: D's surface and G's gradient pushes
    quality.py   live metrics (FCD, class histogram, 2D mode coverage) and the collapse warning
"""

from .job import Job, JobSettings
from .pair import PairJob, PairView
from .manager import JobManager, get_manager, set_manager
from .settings import cpu_cores
from .view import JobState, JobView

__all__ = ["Job", "JobSettings", "JobManager", "PairJob", "PairView", "JobState", "JobView", "cpu_cores", "get_manager", "set_manager"]
