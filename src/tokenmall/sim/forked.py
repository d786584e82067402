"""Two independent pieces of work at once, the second in a forked child process.

The fast path of `tokenmall simulate` writes metrics.csv and report.html from the same
columns in memory, and each takes about as long as all the runs before them. A forked child
shares the parent's memory (copy on write: nothing is pickled or copied), does its part, tells
the parent how it went through a pipe (the exception it raised, pickled) and leaves with
`os._exit`, so that it runs no atexit handler and flushes none of the parent's buffers again.

Where a fork is not safe or would not help, the two run one after the other here: on systems
other than Linux (Windows has no fork; macOS's system libraries are not fork-safe), when this
process may use one CPU only, or while other Python threads run (a fork copies the calling
thread alone, and a lock another thread held would stay held in the child).
"""

import contextlib
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn


class ChildFailed(Exception):
    """The child's work failed with an exception that could not be sent back as itself."""


def both(here: Callable[[], None], there: Callable[[], None]) -> None:
    """Run `here` in this process and `there` in a forked child at the same time; return when
    both are done. An exception of either is raised here (`here`'s first)."""
    if not fork_helps():
        here()
        there()
        return
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        _run_child(there, write_end)
    os.close(write_end)
    try:
        here()
    finally:  # whatever `here` did, the child is waited for (no zombie is left)
        with os.fdopen(read_end, "rb") as pipe:
            said = pipe.read()
        _, status = os.waitpid(child, 0)
    if said:
        error = pickle.loads(said)  # our own child's exception, through our pipe
        raise error
    if status != 0:
        raise ChildFailed(f"the child process ended with wait status {status}")


def fork_helps() -> bool:
    return (
        sys.platform == "linux"
        and len(os.sched_getaffinity(0)) > 1
        and threading.active_count() == 1
    )


def _run_child(work: Callable[[], None], write_end: int) -> NoReturn:
    code = 0
    try:
        work()
    except BaseException as error:  # every failure goes to the parent
        code = 1
        try:
            message = pickle.dumps(error)
        except Exception:  # one that does not pickle: its text
            text = "".join(traceback.format_exception(error))
            message = pickle.dumps(ChildFailed(text))
        with contextlib.suppress(OSError):  # the parent learns of it from the exit status
            _write_all(write_end, message)
    os._exit(code)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
