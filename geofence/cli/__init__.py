"""The ``geofence`` command (``python -m geofence`` runs the same).

``geofence check IP ...`` shows the decision for one request and why (``--account``: for an
account, read from its store, never written); ``geofence accounts show|clear|list`` shows,
clears and lists accounts' state in the shared store; ``geofence demo`` serves a small app
behind the example policy; ``geofence --version``. Exit status 0 whatever the decision, 1 when
the account store failed (``accounts``), 2 for a usage or configuration error (one line on
stderr, no traceback); a closed pipe (``| head``) ends a command quietly. See DESIGN "Command
line" and "Accounts".

:func:`main` takes the arguments (default: ``sys.argv[1:]``) and returns the exit status;
:func:`example_policy` is the policy used without ``--config``. Not public API: the supported
interface is the command itself.
"""

from geofence.cli._example import example_policy
from geofence.cli._main import main

__all__ = ["example_policy", "main"]
