"""The ``geofence`` command (``python -m geofence`` runs the same).

``geofence check IP ...`` shows the decision for one request and why; ``geofence demo`` serves
a small app behind the example policy; ``geofence --version``. Exit status 0 whatever the
decision, 2 for a usage or configuration error (one line on stderr, no traceback); a closed
pipe (``| head``) ends a command quietly. See DESIGN "Command line".

:func:`main` takes the arguments (default: ``sys.argv[1:]``) and returns the exit status;
:func:`example_policy` is the policy used without ``--config``. Not public API: the supported
interface is the command itself.
"""

from geofence.cli._example import example_policy
from geofence.cli._main import main

__all__ = ["example_policy", "main"]
