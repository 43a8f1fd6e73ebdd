"""edgecc.runtime: load a built model and run it with numpy arrays."""

from .module import Module, TimingResult, library_arch, load, load_any, random_inputs

__all__ = ["Module", "TimingResult", "library_arch", "load", "load_any", "random_inputs"]
