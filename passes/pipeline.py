"""Pipeline strings and the opt-level pipelines.

A pipeline string lists passes separated by commas, each with optional options in braces:
`fold-constants,fuse{max-inputs=8},eliminate-dead-code`.
"""

from __future__ import annotations

from .base import Pass, PassOptionError, get_pass

__all__ = ["parse_pipeline", "opt_level_pipeline", "format_pipeline"]

#: always-safe clean-ups, in order
SIMPLIFY = [
    "remove-identity",
    "simplify-shape-chains",
    "fold-constants",
    "eliminate-common-subexpressions",
    "eliminate-dead-code",
]

#: passes each opt level adds on top of the level below
OPT_LEVELS: dict[int, list[str]] = {
    0: [],
    1: SIMPLIFY,
    2: ["fold-batch-norm", "simplify-arithmetic", "prune-zero-channels", "lower-qdq", "fold-constants",
        "eliminate-dead-code"],
    3: [],
}

#: where target-chosen passes (layout, quantization lowering, fusion) go at opt level >= 2
TARGET_SLOT = 2


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PassOptionError(f"unbalanced '}}' in pipeline {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PassOptionError(f"unbalanced '{{' in pipeline {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_pipeline(text: str) -> list[Pass]:
    """`"a,b{k=v}"` -> [A(), B(k=v)]; PassOptionError names what is wrong."""
    passes = []
    for element in _split_top(text):
        name, _, rest = element.partition("{")
        options: dict[str, str] = {}
        if rest:
            if not rest.endswith("}"):
                raise PassOptionError(f"bad pipeline element {element!r}")
            for item in _split_top(rest[:-1]):
                key, eq, value = item.partition("=")
                if not eq:
                    raise PassOptionError(f"option {item!r} of pass '{name}' needs key=value")
                options[key.strip()] = value.strip()
        passes.append(get_pass(name.strip()).from_options(options))
    return passes


def opt_level_pipeline(opt_level: int, target_passes: list[str] | None = None) -> list[Pass]:
    """The passes of -O<opt_level>, with a target's own passes at opt level 2 and up."""
    if opt_level not in OPT_LEVELS:
        raise PassOptionError(f"opt level must be 0..3, got {opt_level}")
    names: list[str] = []
    for level in range(1, opt_level + 1):
        names += OPT_LEVELS[level]
        if level == TARGET_SLOT and target_passes:
            names += list(target_passes)
    return parse_pipeline(",".join(names)) if names else []


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(p.spec() for p in passes)
