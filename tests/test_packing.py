"""Training runs packed into Slurm jobs by their estimated time (pcann.workflow.packing), and runs
longer than a partition's MaxTime split into a chain of continued runs (StudyPlan's segments)."""

from __future__ import annotations

import copy
from dataclasses import replace
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO

from pcann.study.plan import StudyPlan
from pcann.workflow.packing import (
    TrainingRequest,
    group_mem_mb,
    group_minutes,
    max_minutes_published,
    needed_jobs,
    pack_trainings,
    submissions_text,
)

#: Fruits-360 as the issue describes it: 67,727 training images of 131 classes.
FRUITS_360 = (67_727, 131)
#: The study's own images.
STUDY = (1470, 3)
#: A 4-hour partition, 8 CPUs a job, jobs of about an hour: the profile's and config's values.
FOUR_HOURS, CPUS, TARGET = 240, 8, 60


def shipped_config():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    return config


def group_graph_is_acyclic(plan: StudyPlan, jobs) -> bool:
    """No dependency path leaves a job and enters it again, and the jobs depend on each other
    without a cycle (what Snakemake's group check refuses)."""
    job_of = {m.run_dir: job.name for job in jobs for m in job.members}
    edges = {
        (job_of[shorter.run_dir], job_of[run.run_dir])
        for run, shorter in plan.continued.items()
        if job_of[shorter.run_dir] != job_of[run.run_dir]
    }
    order, remaining = [], {job.name for job in jobs}
    while remaining:
        free = {n for n in remaining if not any(b == n and a in remaining for a, b in edges)}
        if not free:
            return False
        order += sorted(free)
        remaining -= free
    return True


def test_the_fruits_360_plan_packs_into_jobs_that_each_fit_a_four_hour_partition():
    plan = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS)
    requests = plan.training_requests()
    # its longest run ([512, 1024], 1000 epochs, batch 16; 5.8 h) is now a chain of two
    assert max(
        StudyPlan(shipped_config(), *FRUITS_360).training_requests(), key=lambda r: r.minutes
    ).minutes > FOUR_HOURS
    assert len(plan.segments) >= 1 and all(r.minutes <= FOUR_HOURS for r in requests)
    jobs = pack_trainings(requests, CPUS, TARGET, FOUR_HOURS)
    assert all(job.minutes <= FOUR_HOURS for job in jobs)
    # short runs share a job up to the target; a job over it holds one run (or one chain piece
    # whose runs must follow one another)
    for job in jobs:
        assert job.minutes <= TARGET or len(job.members) == 1 or job.cpus == 1
    assert max(len(job.members) for job in jobs) > CPUS  # short ones packed several rounds deep
    # every run in exactly one job, and the jobs can be ordered
    members = [m.run_dir for job in jobs for m in job.members]
    assert sorted(members) == sorted(r.run_dir for r in requests)
    assert group_graph_is_acyclic(plan, jobs)
    # deterministic: the same configuration gives the same jobs
    again = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS)
    assert pack_trainings(again.training_requests(), CPUS, TARGET, FOUR_HOURS) == jobs


def test_the_studys_own_runs_are_one_job_of_side_by_side_runs():
    plan = StudyPlan(shipped_config(), *STUDY, max_job_minutes=FOUR_HOURS)
    assert plan.segments == []
    jobs = pack_trainings(plan.training_requests(), CPUS, TARGET, FOUR_HOURS)
    assert len(jobs) == 1
    (job,) = jobs
    assert job.cpus == CPUS and job.minutes <= TARGET and len(job.members) == len(plan.settings)


def fake_job(request: TrainingRequest):
    """What Snakemake's group sizing reads of a one-CPU training job."""
    resources = {"_cores": 1, "_nodes": 1, "mem_mb": request.mem_mb, "runtime": request.minutes}
    return SimpleNamespace(resources=resources, pipe_group=None, request=request)


@pytest.mark.parametrize("cpus", [1, 2, 8])
def test_group_sizes_are_the_ones_snakemake_computes_for_a_cluster(cpus):
    """group_minutes and group_mem_mb against Snakemake's own GroupResources.basic_layered, on
    mixed jobs of the Fruits-360 plan with continued runs (several dependency levels)."""
    from snakemake.resources import GroupResources, Resources

    plan = StudyPlan(shipped_config(), *FRUITS_360)
    requests = plan.training_requests()
    constraints = Resources.from_mapping({"_cores": cpus, "_nodes": 100})
    for members in (requests[:12], requests[5:30], requests):
        by_run = {m.run_dir: m for m in members}
        levels, depth = [], {}
        for m in sorted(members, key=lambda r: r.epochs):
            depth[m.run_dir] = depth[m.continues] + 1 if m.continues in by_run else 0
            levels.extend([] for _ in range(depth[m.run_dir] + 1 - len(levels)))
            levels[depth[m.run_dir]].append(fake_job(m))
        sized = GroupResources.basic_layered(levels, constraints, run_local=False)
        assert sized["runtime"] == group_minutes(members, cpus)
        assert sized["_cores"] == min(cpus, max(len(level) for level in levels))
        # ours is an upper bound: members of equal limits may be ordered otherwise
        assert sized["mem_mb"] <= group_mem_mb(members, cpus)


def test_a_changed_setting_resubmits_only_its_job():
    config = shipped_config()
    before = pack_trainings(StudyPlan(config, *STUDY).training_requests(), CPUS, TARGET)
    changed = copy.deepcopy(config)
    sweep = changed["networks"]["two_layer"]["sweep"]
    sweep["lr"] = [*sweep["lr"][:-1], 0.2]  # a new list: config.yaml shares it with an anchor
    plan = StudyPlan(changed, *STUDY)
    finished = {m.run_dir for job in before for m in job.members}
    needed = {s.run_dir for s in plan.settings} - finished
    assert len(needed) == 1
    submitted = needed_jobs(pack_trainings(plan.training_requests(), CPUS, TARGET), needed, CPUS)
    assert [len(job.members) for job in submitted] == [1]
    assert submitted[0].cpus == 1 and submitted[0].minutes == submitted[0].members[0].minutes


def test_a_tree_of_continued_runs_too_long_for_one_job_is_cut_in_order():
    # 10 -> 100 -> 800 -> {1000, 2000 -> 4000}, one minute an epoch-hundred
    chain = {10: None, 100: 10, 800: 100, 1000: 800, 2000: 800, 4000: 2000}
    requests = [
        TrainingRequest(f"r{e}", max(5, (e - (p or 0)) // 100), 500, 1.0, p and f"r{p}", e)
        for e, p in chain.items()
    ]
    jobs = pack_trainings(requests, 8, 20)
    order = [m.epochs for job in jobs for m in job.members]
    assert sorted(order) == sorted(chain)
    for job in jobs:
        epochs = [m.epochs for m in job.members]
        assert epochs == sorted(epochs)
        assert job.minutes <= 20 or len(job.members) == 1
    # each job holds consecutive runs of the tree's order: no path leaves a job and comes back
    flat = sorted(chain)
    for job in jobs:
        positions = [flat.index(m.epochs) for m in job.members]
        assert positions == list(range(positions[0], positions[0] + len(positions)))


def test_a_run_over_max_time_is_a_chain_of_segments_that_each_fit():
    plan = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS)
    split = []
    for run in plan.settings:
        chain, link = [run], run
        while link in plan.continued:
            link = plan.continued[link]
            chain.append(link)
        if any(link in plan.segments for link in chain):
            split.append(run)
            # one setting, fewer epochs at each link, every link a job that fits
            assert {replace(link, epochs=0) for link in chain} == {replace(run, epochs=0)}
            assert [link.epochs for link in chain] == sorted((link.epochs for link in chain), reverse=True)
            assert all(plan.training_minutes(link) <= FOUR_HOURS for link in chain)
    assert any(run.hidden == (512, 1024) for run in split)


def test_a_finished_run_keeps_the_chain_it_was_trained_with_whatever_the_max_time():
    """Snakemake re-runs a job whose inputs changed: a run trained as a chain on Slurm must keep
    its chain locally (no MaxTime) and on another partition, and one trained in one go none."""
    on_slurm = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS)
    start = {run: (on_slurm.continued[run].epochs if run in on_slurm.continued else 0) for run in on_slurm.settings + on_slurm.segments}

    def trained_from(setting):  # every run finished, as on_slurm trained it
        return start.get(setting)

    for max_minutes in (None, 60, FOUR_HOURS):
        again = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=max_minutes, trained_from=trained_from)
        assert sorted(again.segments) == sorted(on_slurm.segments)
        assert again.continued == on_slurm.continued
    plain = StudyPlan(shipped_config(), *FRUITS_360)
    in_one_go = {run: (plain.continued[run].epochs if run in plain.continued else 0) for run in plain.settings}
    local_then_slurm = StudyPlan(
        shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS, trained_from=in_one_go.get
    )
    assert local_then_slurm.segments == [] and local_then_slurm.continued == plain.continued


def test_the_published_max_time_is_read_back_by_every_job():
    assert max_minutes_published({"PCANN_SLURM_MAX_MINUTES": "240"}) == 240
    assert max_minutes_published({"PCANN_SLURM_MAX_MINUTES": ""}) is None
    assert max_minutes_published({}) is None


def test_the_submissions_text_names_jobs_runs_cpus_memory_limits_and_cpu_hours():
    plan = StudyPlan(shipped_config(), *FRUITS_360, max_job_minutes=FOUR_HOURS)
    jobs = pack_trainings(plan.training_requests(), CPUS, TARGET, FOUR_HOURS)
    text = submissions_text(jobs, 11, "partition short")
    lines = text.splitlines()
    runs = len(plan.training_requests())
    assert lines[0] == (
        f"Slurm submissions (partition short): {runs} training runs in {len(jobs)} jobs, and 11 other jobs"
    )
    assert len(lines) == len(jobs) + 2
    assert "8 CPUs, 4000 MB, limit 60 min" in text
    requested = sum(job.cpus * job.minutes for job in jobs) / 60
    assert f"ask for {requested:.1f} CPU-hours" in lines[-1]
