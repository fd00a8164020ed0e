"""The study plan: run identity and settings (``grid``), the plan of every run, table and
figure (``plan``), one run from features to files (``runs``) and what each job costs in time
and memory (``resources``). Read by the workflow's rules files when they are parsed."""
