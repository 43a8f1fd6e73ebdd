"""edgecc.runtime: load a built model and run it with numpy arrays (natively or emulated)."""

from .module import Module, TimingResult, library_arch, load, load_any
from .profile import KernelProfile, format_kernel_profile
from .specs import LibrarySpecs, check_inputs, random_inputs
from .threads import available_cores, use_threads

__all__ = ["KernelProfile", "LibrarySpecs", "Module", "TimingResult", "available_cores", "check_inputs",
           "format_kernel_profile", "library_arch", "load", "load_any", "random_inputs", "use_threads"]
