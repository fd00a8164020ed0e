"""One pending re-evaluation of Snakemake's scheduler at a time, instead of one more for ever after
every job that ends.

Snakemake (9.x) limits job starts with ``--max-jobs-per-timespan`` (default 100/1s, always on).
Each pass of its scheduling loop then starts a timer that wakes the loop again one timespan
later, so that jobs the limit held back are started; that wake-up is itself a pass, which starts
the next timer. Every other wake-up (a job ending) starts one more such chain, and none ever
ends: after N jobs the loop runs N passes a second, each re-reading the ready jobs' inputs and
choosing among them. In the 52-run study that was most of Snakemake's own CPU time, growing with
the square of the number of jobs. One pending timer does the limit's work: while one is
pending, the loop is woken within a timespan anyway.
"""

from __future__ import annotations

import threading


def one_pending_reevaluation() -> None:
    """Wrap the scheduler's re-evaluation so that at most one timer is pending. Call once, in the
    main Snakemake process; does nothing where the scheduler has no such method."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return
    if not hasattr(JobScheduler, "_schedule_reevalutation") or getattr(JobScheduler, "_pcann_one_timer", False):
        return

    def schedule_reevaluation(self, delay) -> None:
        pending = getattr(self, "_pcann_reevaluation", None)
        if pending is not None and pending.is_alive():
            return
        # a daemon thread: a wake-up still pending when the run ends does not hold up its exit
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        self._pcann_reevaluation = timer
        timer.start()

    JobScheduler._schedule_reevalutation = schedule_reevaluation
    JobScheduler._pcann_one_timer = True
