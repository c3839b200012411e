"""Load and validate a configuration (dict, TOML file or JSON file) into a :class:`Policy`.

OWNER: config helper. Every problem raises ConfigError(key_path, reason-with-fix).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .policy import Policy


def load_policy(obj: Mapping[str, Any] | str | os.PathLike[str]) -> Policy:
    """Validate ``obj`` (a mapping, or a path to a ``.toml`` / ``.json`` file)."""
    raise NotImplementedError
