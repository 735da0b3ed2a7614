"""Running the evaluation: parameters, the per-outcome analysis, the batch runner, the audit and reruns."""
