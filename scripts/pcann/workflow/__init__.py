"""The glue between Snakemake and the library: configuration checks (``config``), the study a
results folder holds (``study_record``), the rule-script wrapper (``rule``) and Slurm
submission (``cluster``). Read by the rules files and every rule script."""
