"""Glue between a Snakemake ``script:`` directive and the library.

``run_rule(snakemake, main)`` gives every rule script the same behaviour: its log file receives
logging output, Python warnings and any traceback; BLAS/OpenMP threads are pinned to the rule's
``threads`` so parallel jobs do not oversubscribe the cores; and a :class:`~pcann.PcannError`
(bad input) ends the job with one clear message on stderr instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable

from pcann import PcannError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The environment variable that brings every job's INFO lines (and Snakemake's per-job output,
#: pcann.workflow.terminal) back to the terminal; the jobs' log files get them always.
VERBOSE_VARIABLE = "PCANN_VERBOSE"


def verbose_requested(environ=os.environ) -> bool:
    return environ.get(VERBOSE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


class TerminalFilter(logging.Filter):
    """A job's stderr, which the terminal shows for parallel jobs at once: warnings and errors
    only, and not the demo-data banner that the main process has printed once already."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pcann.data.demo import DEMO_BANNER

        return record.levelno >= logging.WARNING and DEMO_BANNER not in record.getMessage()


class RuleLogHandler(logging.FileHandler):
    """The rule's log file. When it cannot be written (disk full, read-only), this says so once
    on stderr instead of printing a logging traceback per message; stderr still gets them all."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            _log_file_warning(self.baseFilename, sys.exc_info()[1])


def _log_file_warning(path, exc) -> None:
    cause = getattr(exc, "strerror", None) or exc
    sys.stderr.write(f"pcann: cannot write the log file {path}: {cause}; messages go to stderr only\n")


def configure_logging(log_path: str | None) -> logging.Logger:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    terminal = logging.StreamHandler(sys.stderr)
    if not verbose_requested():
        terminal.addFilter(TerminalFilter())
    handlers: list[logging.Handler] = [terminal]
    if log_path:
        try:
            handlers.append(RuleLogHandler(log_path, mode="w"))
        except OSError as exc:
            _log_file_warning(log_path, exc)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # matplotlib and PIL chatter at INFO is noise in a rule log.
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger("pcann")


def run_rule(snakemake, main: Callable[[object], None]) -> None:
    """Run ``main(snakemake)`` with logging, thread pinning and clean user-error reporting."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    logger = configure_logging(log_path)
    from threadpoolctl import threadpool_limits

    threads = max(1, int(snakemake.threads))
    if "cv2" in sys.modules:  # OpenCV keeps its own thread pool, which threadpoolctl does not see
        sys.modules["cv2"].setNumThreads(threads)
    try:
        with threadpool_limits(limits=threads):
            main(snakemake)
    except PcannError as exc:
        logger.error("%s", exc)
        logger.debug("traceback:\n%s", traceback.format_exc())
        sys.exit(1)
    except Exception:
        logger.error("unexpected failure in rule %s:\n%s", snakemake.rule, traceback.format_exc())
        sys.exit(1)
