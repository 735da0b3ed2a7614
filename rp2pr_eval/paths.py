"""Where the project's notebooks, default parameters and bundled synthetic data are.

Two layouts are supported, and every default path in the package goes through this module so that
nothing depends on the caller's working directory:

* a **source checkout** (what ``make run`` installs, editable): the folders ``notebooks/``,
  ``parameters/`` and ``data/synthetic/`` beside the package;
* an **installed wheel** (``pip install rp2pr_eval-*.whl``): the same three folders shipped inside the
  package as ``rp2pr_eval/_bundle/`` (``pyproject.toml`` maps them there), read-only.

Outputs never go into an installed package: :func:`default_output_root` is ``<checkout>/outputs`` in a
checkout and ``./outputs`` under the current folder otherwise.
"""
from __future__ import annotations

from pathlib import Path

from rp2pr_eval.errors import ParameterError

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
_BUNDLE = PACKAGE_DIR / "_bundle"


def is_checkout() -> bool:
    """True when the package is imported from a source checkout (notebooks and parameters beside it)."""
    return ((_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "notebooks").is_dir()
            and (_CHECKOUT / "parameters").is_dir())


def project_root() -> Path:
    """The folder holding ``notebooks/``, ``parameters/`` and ``data/synthetic/``.

    Raises
    ------
    ParameterError
        If neither a checkout nor the installed bundle is found (a broken install).
    """
    if is_checkout():
        return _CHECKOUT
    if (_BUNDLE / "notebooks").is_dir() and (_BUNDLE / "parameters").is_dir():
        return _BUNDLE
    raise ParameterError(f"{PACKAGE_DIR}: the package's notebooks and default parameters are not installed "
                         "(expected a source checkout or rp2pr_eval/_bundle/); reinstall the package")


def notebooks_dir() -> Path:
    """The notebook templates (``00_data_checks.ipynb`` …)."""
    return project_root() / "notebooks"


def parameters_dir() -> Path:
    """The default parameter folder (``run.yaml``, ``design.yaml``, ``outcomes/``)."""
    return project_root() / "parameters"


def bundled_data() -> Path:
    """The bundled synthetic patient table."""
    return project_root() / "data" / "synthetic" / "nlca_patients.csv.gz"


def default_output_root() -> Path:
    """``<checkout>/outputs`` in a source checkout, else ``./outputs`` (never inside an installed package)."""
    return _CHECKOUT / "outputs" if is_checkout() else Path.cwd() / "outputs"


def lock_file() -> Path | None:
    """The checkout's ``requirements.lock``, or ``None`` for an installed wheel (which records versions only)."""
    lock = _CHECKOUT / "requirements.lock"
    return lock if is_checkout() and lock.is_file() else None
