# pcann: PCA + from-scratch neural networks on a folder of labelled images.
#
#   snakemake --cores 4                                # the embedded demo data
#   snakemake --cores 4 --config data_dir=PATH         # real data: PATH/Data_train, PATH/Data_test
#   snakemake --report results/report.html             # the HTML report, after a run
#   snakemake --cores 4 predict --config predict_dir=PATH   # classify new images
#   snakemake --cores 4 search --configfile studies/search.yaml   # an adaptive search
#
# rules/common.smk reads and checks the configuration and builds the study plan; each other
# rules file holds one concern.


from snakemake.utils import min_version, validate

min_version("9.0")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pca.smk"
include: "rules/train.smk"
include: "rules/model.smk"
include: "rules/report.smk"
include: "rules/search.smk"
include: "rules/predict.smk"
include: "rules/terminal.smk"


# Slurm group jobs run their members side by side, as they are sized for (scripts/pcann/workflow/cluster.py).
# Snakemake's scheduler keeps one pending wake-up, not one more per finished job, which made its
# own CPU time grow with the square of the jobs (scripts/pcann/workflow/scheduler.py).
if workflow.is_main_process:
    from pcann.workflow.cluster import run_group_members_side_by_side
    from pcann.workflow.scheduler import one_pending_reevaluation

    run_group_members_side_by_side()
    one_pending_reevaluation()
    if SLURM_RUN:
        from pcann.workflow.packing import install_report

        install_report(
            workflow,
            slurm_training_jobs,
            workflow.resource_settings.cores,
            f"partition {SLURM_PARTITION or '(default)'}, jobs of up to {config['slurm_job_minutes']} min",
        )


onstart:
    check_predict_trains_nothing(workflow.dag, workflow.dag_settings.targets)
    record_study()


rule all:
    default_target: True
    input:
        PLAN.outputs(),
