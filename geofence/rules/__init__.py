"""Rules: region codes and their checks, path globs, one class per condition, compiled rules.

- :func:`check_code` and friends: which ISO 3166 codes a policy may name, with a helpful
  reason (and "did you mean") for the ones it may not.
- :func:`compile_globs`: path globs (``/v1/*``) as one anchored regular expression.
- :class:`Condition` and its subclasses (:data:`CONDITIONS`): what a rule requires, each
  matched on the client's :class:`geofence._model.Facts`.
- :class:`Rule`: a :class:`geofence.config.RulePolicy` compiled once at load time, with its
  grace schedule (:meth:`Rule.action_at`).
"""

# Codes and globs first: they need nothing else from geofence, and the config loader (which
# the modules below import, through geofence.config) imports them from here.
from geofence.rules._globs import GlobError, compile_globs, glob_to_regex, has_dot_segment
from geofence.rules._regions import (
    ANY,
    GROUP_NAME,
    UNKNOWN,
    RegionCodeError,
    check_code,
    is_country,
    is_subdivision,
    region_name,
)

# isort: split
from geofence.rules._conditions import (
    CONDITIONS,
    Anonymizers,
    Condition,
    ExceptRegions,
    HomeMismatch,
    HomeRegions,
    Methods,
    Paths,
    Regions,
)
from geofence.rules._rule import Rule, micros

__all__ = [
    "ANY",
    "CONDITIONS",
    "GROUP_NAME",
    "UNKNOWN",
    "Anonymizers",
    "Condition",
    "ExceptRegions",
    "GlobError",
    "HomeMismatch",
    "HomeRegions",
    "Methods",
    "Paths",
    "RegionCodeError",
    "Regions",
    "Rule",
    "check_code",
    "compile_globs",
    "glob_to_regex",
    "has_dot_segment",
    "is_country",
    "is_subdivision",
    "micros",
    "region_name",
]
