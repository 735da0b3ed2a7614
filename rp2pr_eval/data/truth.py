"""The planted truth of a synthetic dataset: attached to the frame and written beside it as JSON.

A data concept (the loader reads the sidecar; the generator writes it), so it lives with the data
layer and the generator imports it from here.
"""
from __future__ import annotations


class Truth(dict):
    """The planted truth attached to a simulated frame (``frame.attrs["truth"]``): a plain JSON-able dict.

    pandas deep-copies ``attrs`` on nearly every operation; a deep copy of this dict returns the same
    object (treat it as read-only), which makes every operation on a simulated or loaded frame ≈ 30 ms
    faster at ILCOP scale.
    """

    def __deepcopy__(self, memo):  # noqa: D105
        return self

    def __copy__(self):  # noqa: D105
        return self
