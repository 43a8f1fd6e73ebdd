"""edgecc.runtime: load a built model and run it with numpy arrays."""

from .module import Module, TimingResult, load, random_inputs

__all__ = ["Module", "TimingResult", "load", "random_inputs"]
