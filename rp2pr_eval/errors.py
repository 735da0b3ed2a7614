"""Errors raised by rp2pr_eval for problems in the user's data or parameters."""
from __future__ import annotations


class DataError(ValueError):
    """Input data break the data contract (DATA_CONTRACT.md).

    The message names the column, the first offending values, rows or trusts,
    and what was expected.
    """


class ParameterError(ValueError):
    """A parameter file or option is invalid; the message names the file and key."""
