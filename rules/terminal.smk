# The terminal: the cost of the run before its first job, then progress and one line per
# finished training run, instead of Snakemake's per-job blocks (scripts/pcann/workflow/terminal.py;
# PCANN_VERBOSE=1 brings those back). Only the main process prints: jobs run the Snakefile too.
from pcann.study.cost import job_seconds, search_lines  # noqa: E402


def estimated_job_seconds(job):
    """Expected seconds of one job of the plan, for the cost block and the time left."""
    return job_seconds(
        job.rule.name, job.wildcards, PLAN, DATA_SIZE, PCA_SOLVER, threads=job.threads
    )


if workflow.is_main_process:
    from pcann.workflow.terminal import install as install_terminal_report

    #: a search's own runs (not the study's): the terminal shows their validation accuracy only
    SEARCH_ONLY_RUNS = {setting.run_dir for setting in PLAN.search_settings}
    install_terminal_report(
        workflow,
        estimated_job_seconds,
        notes=lambda: search_lines(PLAN),
        test_hidden=lambda run_dir: run_dir in SEARCH_ONLY_RUNS,
    )
