"""A child of the supervisor dies with it (Linux), asked for by the child itself.

The supervisor (common.stack) starts each engine process with OE_PARENT_PID set to its own pid.
The process calls `die_with_parent()` first thing: Linux then sends it SIGTERM when the thread that
started it ends (PR_SET_PDEATHSIG), so a supervisor killed with SIGKILL leaves no orphans; if the
supervisor is already gone by then, the process stops at once. Done after exec, in the child, rather
than in a `preexec_fn` between fork and exec: that runs Python in a forked copy of a process with
threads (gRPC's, a test runner's), which can deadlock before the exec (the subprocess docs warn of
it; a test run hung there). Without OE_PARENT_PID (compose, Kubernetes, a process started by hand)
it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_PID_ENV = "OE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    parent = os.environ.get(PARENT_PID_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
