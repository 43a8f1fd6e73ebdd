"""edgecc.passes: IR -> IR transformations, their registry, pipelines and pass manager.

Each pass lives in its own module and registers itself by name; importing this package makes
them all available to `parse_pipeline` and the CLI's `--passes`.
"""

from .base import NOTE, REJECTION, Pass, PassContext, PassOptionError, Remark, all_passes, get_pass, register_pass
from .manager import PassError, PassManager
from .pipeline import Fixpoint, format_pipeline, opt_level_pipeline, parse_pipeline, pipeline_names, without_passes
from .rewrite import Builder, Match, MatchResult, RewriteRule, any_, apply_rewrites, const, op

from . import (  # noqa: F401  (registration)
    convert_layout,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_batch_norm,
    fold_constants,
    fuse,
    lower_qdq,
    pad_conv_channels,
    partition_npu,
    prune_zero_channels,
    quantize,
    remove_identity,
    shift_to_uint8,
    simplify_arithmetic,
    simplify_shape_chains,
    winograd,
)

__all__ = [
    "Builder", "Fixpoint", "Match", "MatchResult", "NOTE", "Pass", "PassContext", "PassError", "PassManager",
    "PassOptionError", "REJECTION", "Remark", "RewriteRule", "all_passes", "any_", "apply_rewrites", "const",
    "format_pipeline", "get_pass", "op", "opt_level_pipeline", "parse_pipeline", "pipeline_names",
    "register_pass", "without_passes",
]
