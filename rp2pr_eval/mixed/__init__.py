"""Mixed models: patient-level logistic GLMM (AGHQ, written here) and trust-level LMM (statsmodels)."""
from .lmm import mixed_linear
from .logistic import mixed_logistic

__all__ = ["mixed_linear", "mixed_logistic"]
