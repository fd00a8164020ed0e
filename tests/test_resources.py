"""Each job's memory and time from the data's size, and the clear stop of a job given too little."""

from __future__ import annotations

import pytest
from conftest import copy_workflow, run_snakemake, tiny_study_config

from pcann import PcannError
from pcann.study.resources import (
    EXACT_PCA_MAX_BYTES,
    DataSize,
    check_memory,
    load_images_mem_mb,
    pca_solver,
    preprocessing_mem_mb,
)

#: Fruits-360 as the issue describes it: 67,727 / 22,663 images of 100 x 100 x 3, 131 classes.
FRUITS_360 = DataSize(67_727, 22_663, 30_000, 131)
#: The study's images.
STUDY = DataSize(1470, 498, 3072, 3)


def test_auto_solver_is_exact_for_the_study_and_streams_fruits_360():
    assert pca_solver("auto", STUDY) == "exact"
    assert pca_solver("auto", FRUITS_360) == "streaming"
    assert pca_solver("exact", FRUITS_360) == "exact"
    limit = DataSize(EXACT_PCA_MAX_BYTES // (8 * 1000), 10, 1000, 3)
    assert pca_solver("auto", limit) == "exact"
    assert pca_solver("auto", DataSize(limit.n_train_folder + 1, 10, 1000, 3)) == "streaming"


def test_fruits_360_preprocessing_asks_for_at_most_4_gib_per_job():
    for mem_mb in (load_images_mem_mb(FRUITS_360), preprocessing_mem_mb(FRUITS_360, "streaming")):
        assert FRUITS_360.image_bytes / 2**20 < mem_mb <= 4 * 1024
    # the exact solver would need its float64 copies: several times the images
    assert preprocessing_mem_mb(FRUITS_360, "exact") > 20 * 1024


def test_a_job_given_too_little_memory_names_the_data_and_the_resource_to_raise():
    with pytest.raises(PcannError) as stopped:
        check_memory(3000, 1000, FRUITS_360, "fit_pca")
    message = str(stopped.value)
    assert "needs about 3000 MB" in message and "90,390 images" in message and "30,000 samples" in message
    assert "mem_mb=1000" in message and "--set-resources fit_pca:mem_mb=3000" in message
    check_memory(3000, 3000, FRUITS_360, "fit_pca")  # enough: no error
    check_memory(3000, None, FRUITS_360, "fit_pca")  # no limit known: no error


@pytest.mark.workflow
def test_a_preprocessing_job_with_too_little_memory_stops_with_that_message(tmp_path):
    workdir = copy_workflow(tmp_path, tiny_study_config())
    result = run_snakemake(
        workdir, "results/features/study/zscore.npz", "--cores", "1",
        "--set-resources", "standardise:mem_mb=50", check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "this standardise job needs about" in output and "was given mem_mb=50" in output, output[-3000:]
    assert "--set-resources standardise:mem_mb=" in output
    assert "Traceback" not in (workdir / "results/logs/standardise/study.log").read_text()


def test_snakemakes_scheduler_keeps_one_pending_wake_up_not_one_more_per_finished_job():
    """Each pass of Snakemake's scheduling loop asks to be woken a timespan later; with the
    workaround, asks while a wake-up is pending add none (pcann.workflow.scheduler)."""
    import threading
    import time
    from types import SimpleNamespace

    from snakemake.scheduling.job_scheduler import JobScheduler

    from pcann.workflow.scheduler import one_pending_reevaluation

    one_pending_reevaluation()
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    for _ in range(5):  # five passes: five job ends, say
        JobScheduler._schedule_reevalutation(scheduler, 0.05)
    assert scheduler._pcann_reevaluation.daemon
    time.sleep(0.3)
    assert scheduler._open_jobs.acquire(blocking=False)  # woken once
    assert not scheduler._open_jobs.acquire(blocking=False)  # and only once
    JobScheduler._schedule_reevalutation(scheduler, 0.05)  # none pending now: a new one
    assert scheduler._open_jobs.acquire(timeout=2)
