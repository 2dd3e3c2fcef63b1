"""The base of every config section (unknown keys and non-finite numbers are errors, assignments
are validated), the YAML reader every config file goes through, and the check of text templates.

They live in the lowest layer so that every component's config class (and a file it names, such
as `update.cai.principles_file`) is read and checked the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ConfigError(ValueError):
    """A user-facing configuration problem: the message names the field and the fix."""


# --- YAML ------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-5` as a string; read it as the number everyone means (YAML 1.2).
    A key given twice in one mapping is an error (plain YAML lets the last one win, silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in first_line
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given at line {first_line[key] + 1})",
                        key_node.start_mark)
                first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; a syntax error is one line naming `where`, the position and the fix."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if problem.startswith("duplicate key"):
            hint = "give each key once"
        elif "\t" in text and "\\t" in repr(problem):
            hint = "indent with spaces, not tabs"
        else:
            hint = "fix the YAML syntax"
        raise ConfigError(f"{where}: invalid YAML{at}: {problem}; {hint}") from None


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """The YAML in `path`; a missing, unreadable, binary or malformed file is one ConfigError
    naming `what` (the field or option that named the file) and the file."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{what} {str(path)!r} is a directory; give a YAML file") from None
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read ({err.strerror}); give a readable YAML file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (a binary file?); give a YAML file") from None
    return parse_yaml(text, str(path) if what == "config file" else f"{what} {str(path)!r}")


# --- templates -------------------------------------------------------------------------

# `{name}` where a placeholder would be: not LaTeX's `\frac{a}{b}` or `\boxed{x}` (the brace
# follows a command name or another group), which templates may well contain.
_PLACEHOLDER = re.compile(r"(?<![\\\w}])\{([A-Za-z_]\w*)\}")


def check_template(template: str, required: tuple[str, ...], known: tuple[str, ...] = ()) -> str:
    """`template` contains every `{slot}` in `required` and no other `{name}` placeholder.

    Templates are filled by plain replacement, so an unknown `{problem}` would stay in the text
    as is and a missing `{prompt}` would make every request the same: both are errors.
    """
    allowed = set(required) | set(known)
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in allowed})
    missing = [slot for slot in required if "{" + slot + "}" not in template]
    slots = ", ".join("{" + s + "}" for s in sorted(allowed))
    if missing:
        found = f" (it has {', '.join('{' + u + '}' for u in unknown)})" if unknown else ""
        raise ValueError(f"needs the placeholder {', '.join('{' + m + '}' for m in missing)}{found}; "
                         f"its placeholders are {slots}")
    if unknown:
        raise ValueError(f"unknown placeholder {', '.join('{' + u + '}' for u in unknown)}; "
                         f"its placeholders are {slots}")
    return template
