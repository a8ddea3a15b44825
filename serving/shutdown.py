"""How a server shuts down, declared once: its default drain time and its exit codes.

Import-light (nothing but the standard library), so the process toolkit, the local
launcher and the manifest checks read the same numbers as the servers themselves.
The meaning of each exit code is in docs/reliability.md ("Shutdown").
"""

from __future__ import annotations

# Seconds a server drains in-flight calls after SIGTERM before it cancels what is left
# (--grace-s); also how long a stopper waits before SIGKILL.
DRAIN_GRACE_S = 30.0

EXIT_DRAINED = 0  # drained cleanly within the grace
EXIT_LOAD_FAILED = 1  # the model failed to load
EXIT_SETUP = 2  # a bad flag, setting, file or port: nothing was loaded
EXIT_GRACE_EXPIRED = 3  # the grace ran out with work still on the device
EXIT_SECOND_SIGNAL = 4  # a second SIGTERM/SIGINT cut the drain short
