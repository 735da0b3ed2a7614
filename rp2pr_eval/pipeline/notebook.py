"""What a notebook needs to know, resolved the same way wherever it runs.

Every notebook's first call is :func:`notebook_setup`. It reads the parameter folder (or the
resolved parameter file the runner wrote) with :func:`~rp2pr_eval.pipeline.config.load_run_config`,
layers the outcome's own ``outcomes/<name>.yaml`` over the base settings, and resolves default paths
from the package (:mod:`rp2pr_eval.paths`), never from the working directory. So

* ``rp2pr-eval run`` (the runner passes ``params=<its run_parameters.json>`` and ``output_dir``),
* ``papermill notebooks/10_outcome_analysis.ipynb out.ipynb -p outcome sclc_chemo`` from any folder,
* ``jupyter nbconvert --execute`` and JupyterLab's Run All,

all analyse an outcome with the same settings. A notebook never carries its own copy of the
settings: its parameters cell holds only *which* outcome, *which* parameter folder, and where the
data and outputs are when they are not the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rp2pr_eval import paths
from rp2pr_eval.errors import ParameterError
from rp2pr_eval.pipeline.config import NOTEBOOKS, AnalysisSettings, PowerSettings, RunConfig, load_run_config
from rp2pr_eval.study.design import StudyDesign
from rp2pr_eval.study.outcomes import OUTCOMES

#: Folder (under the output root) of runs made from a notebook rather than by the runner.
INTERACTIVE = "interactive"


@dataclass(frozen=True, slots=True)
class NotebookSetup:
    """The resolved parameters of one notebook execution (see :func:`notebook_setup`)."""

    notebook: str
    config: RunConfig
    outcome: str | None
    data_path: Path
    output_dir: Path
    #: What a reader is shown for the data and the outputs (the runner's originals, not its private copies).
    shown_data: str | None = None
    shown_outputs: str | None = None

    @property
    def design(self) -> StudyDesign:
        return self.config.design

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def settings(self) -> AnalysisSettings:
        """The outcome's layered analysis settings (base settings when no outcome is set)."""
        return self.config.settings_for(self.outcome) if self.outcome else self.config.analysis

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options of :func:`rp2pr_eval.analyse_outcome` from :attr:`settings` (JSON-native)."""
        return self.settings.to_parameters()

    def load_data(self):
        """The run's data: the patient table, or the trust panel of ``rp2pr-eval run --panel`` (validated)."""
        from rp2pr_eval.data.io import load_panel, load_patients

        incomplete = self.config.incomplete_pairs
        if self.config.data_kind == "panel":
            return load_panel(self.data_path, design=self.design, incomplete_pairs=incomplete)
        return load_patients(self.data_path, design=self.design, incomplete_pairs=incomplete)

    @property
    def sensitivity_options(self) -> dict[str, Any]:
        """Keyword options of :func:`rp2pr_eval.pipeline.referee.add_referee_checks`: ``run.yaml``'s
        ``sensitivity`` section with the outcome's ``level`` and ``cluster`` (JSON-native)."""
        return {**self.config.sensitivity.to_parameters(), "level": self.settings.level, "cluster": self.settings.cluster}

    @property
    def power(self) -> PowerSettings:
        return self.config.power

    def power_icc(self):
        """The ICC table ``30_power`` plans from: ``rp.icc`` of the run's data (patients or the ``--panel`` trust
        panel; the same numbers) when ``power.plan_from_data`` is set, else ``None`` (the generator's settings)."""
        if not self.config.power.plan_from_data:
            return None
        from rp2pr_eval.inference.icc import icc

        return icc(self.load_data(), self.config.power.outcome, design=self.design, n_boot=0)

    @property
    def outcomes(self) -> list[str]:
        return list(self.config.outcomes)

    @property
    def primary_outcomes(self) -> list[str]:
        return list(self.config.primary_outcomes)

    @property
    def results_dir(self) -> Path:
        return self.output_dir / "results"

    @property
    def figures_dir(self) -> Path:
        return self.output_dir / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.output_dir / "tables"

    @property
    def timings_dir(self) -> Path:
        """Where a notebook leaves its timings (the runner moves them into the manifest, not the results)."""
        return self.output_dir / "timings"

    def _rows(self) -> list[tuple[str, str]]:
        source = self.config.params_dir
        rows = [("notebook", self.notebook), ("parameters", source),
                ("outcome", self.outcome or "—"), ("data", self.shown_data or str(self.data_path)),
                ("outputs", self.shown_outputs or str(self.output_dir)), ("seed", str(self.seed))]
        if self.outcome:
            layered = "yes" if self.outcome in self.config.outcome_settings else "no (base settings)"
            rows.append((f"outcomes/{self.outcome}.yaml", layered))
            rows += [(k, str(v)) for k, v in self.options.items()]
        return rows

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self._rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self._rows())

    def _repr_markdown_(self) -> str:
        lines = ["| parameter | value |", "|---|---|"]
        lines += [f"| {k} | `{v}` |" for k, v in self._rows()]
        return "\n".join(lines)


def notebook_setup(
    notebook: str,
    *,
    params: str | Path | None = None,
    outcome: str | None = None,
    data_path: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> NotebookSetup:
    """Resolve a notebook's parameters: the one resolution shared by the runner, Papermill and Run All.

    Parameters
    ----------
    notebook : str
        The notebook's name, e.g. ``"10_outcome_analysis"``.
    params : str or pathlib.Path, optional
        A parameter folder or a resolved parameter JSON (see
        :func:`~rp2pr_eval.pipeline.config.load_run_config`); ``None`` (default): the project's
        ``parameters/``.
    outcome : str, optional
        The outcome of ``10_outcome_analysis`` (required there): a registry name. Its
        ``outcomes/<outcome>.yaml`` is layered over the base settings.
    data_path : str or pathlib.Path, optional
        The patient table; ``None``: the one named by the parameters.
    output_dir : str or pathlib.Path, optional
        Where ``results/``, ``figures/`` and ``tables/`` go; ``None``: ``outputs/interactive`` under
        :func:`rp2pr_eval.paths.default_output_root`.

    Returns
    -------
    NotebookSetup

    Raises
    ------
    ParameterError
        For an unknown notebook or outcome, a missing or invalid parameter file (named), or a
        missing data file.
    """
    if notebook not in NOTEBOOKS:
        raise ParameterError(f"notebook {notebook!r} is not one of {', '.join(NOTEBOOKS)}")
    config = load_run_config(params)
    if notebook == "10_outcome_analysis":
        if not isinstance(outcome, str):
            raise ParameterError(f"10_outcome_analysis needs the parameter outcome (a registry name such as "
                                 f"'active_treatment'), got {outcome!r}")
        if outcome not in OUTCOMES:
            raise ParameterError(f"outcome {outcome!r} is not a registry outcome; expected one of {', '.join(OUTCOMES)}")
    elif outcome is not None:
        raise ParameterError(f"{notebook} takes no outcome (got {outcome!r})")
    data = Path(config.data if data_path is None else data_path).expanduser()
    if notebook != "30_power" and notebook != "20_summary" and not data.is_file():
        raise ParameterError(f"{data}: data file not found (set data_path, or 'data' in {config.params_dir}/run.yaml)")
    out = paths.default_output_root() / INTERACTIVE if output_dir is None else Path(output_dir).expanduser()
    shown_data = shown_outputs = None
    if params is not None and str(params).endswith(".json"):
        import json

        wrapper = json.loads(Path(params).read_text(encoding="utf-8"))   # load_run_config read it already
        if isinstance(wrapper, dict) and "run_id" in wrapper:
            shown_data = f"{wrapper.get('data')} (validated copy)" if data_path is None else None
            shown_outputs = f"{wrapper.get('run_dir')} (run {wrapper['run_id']})" if output_dir is not None else None
    return NotebookSetup(notebook=notebook, config=config, outcome=outcome, data_path=data, output_dir=out,
                         shown_data=shown_data, shown_outputs=shown_outputs)


__all__ = ["INTERACTIVE", "NotebookSetup", "notebook_setup"]
