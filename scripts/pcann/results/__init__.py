"""What the study reports: statistics (``stats``), tables (``tables``), the summary's sentences
(``findings``), figures (``plots``) and test-set evaluations (``evaluation``). Read by the
aggregation and per-run output rules."""
