"""Using a trained network: the portable model file (``model_file``) and classifying new images
with it (``prediction``). ``load`` is the public entry point: ``pcann.model.load(path).predict(...)``.
Read by the run_outputs and predict rules, scripts/predict.py and users' code."""

from pcann.model.model_file import Model, ModelError, load

__all__ = ["Model", "ModelError", "load"]
