"""Running the evaluation: parameters, the per-outcome analysis, the batch runner, the audit and reruns."""
from rp2pr_eval.pipeline.notebook import NotebookSetup, notebook_setup

__all__ = ["NotebookSetup", "notebook_setup"]
