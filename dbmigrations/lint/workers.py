"""Our rules over many files on two cores: a forked child lints the second half while we lint the first.

A file's analysis is pure Python and holds the interpreter's lock, so threads would take turns;
a child process forked once the parser is loaded starts at once, with everything imported. It
hands its results back through a pipe (``marshal``: plain lists and strings) and ends with
``os._exit``, so nothing of the parent's (buffered output, ``atexit``, connections) runs twice.
Forking is left out where it is unsafe or pointless: another thread alive (a lock it holds would
stay held in the child; test runners, servers), macOS (its system libraries are not fork-safe),
Windows (no fork), one core, or few files. Whatever goes wrong in the child, its half is done here.
"""

from __future__ import annotations

import gc
import marshal
import os
import sys
import threading
from collections.abc import Callable, Sequence

#: Below this many files a second process costs more (its start, copied memory) than it saves.
MIN_ITEMS = 200


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether forking a worker is safe and useful here: POSIX (not macOS), one thread, two cores or more."""
    return hasattr(os, "fork") and sys.platform != "darwin" and threading.active_count() == 1 and cores() >= 2


class Workers:
    """``with Workers() as workers: workers.map(function, items)``; leaving the block reaps the child.

    A child that has sent its results may still be ending (the system unmaps its copy of our memory:
    milliseconds); reaping it only when the caller is done with everything else does not wait for that.
    """

    def __init__(self):
        self._children: list[int] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info) -> None:
        for pid in self._children:
            os.waitpid(pid, 0)
        self._children = []

    def map(self, function: Callable, items: Sequence) -> list:
        """``[function(item) for item in items]``, the second half computed in a forked child when that helps.

        ``function``'s results must be ``marshal``-able (lists, tuples, strings, numbers, None).
        """
        if len(items) < MIN_ITEMS or not can_fork():
            return [function(item) for item in items]
        middle = len(items) // 2
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its half, to the pipe, and out, whatever happens
            status = 1
            try:
                os.close(read_end)
                gc.freeze()  # a collection would touch (and so copy) every object shared with the parent
                data = marshal.dumps([function(item) for item in items[middle:]])
                with open(write_end, "wb") as pipe:
                    pipe.write(data)
                status = 0
            finally:
                os._exit(status)
        self._children.append(pid)
        os.close(write_end)
        with open(read_end, "rb") as pipe:  # closed even if our half fails: a child still writing then ends
            first = [function(item) for item in items[:middle]]
            data = pipe.read()
        try:
            second = marshal.loads(data)
        except (EOFError, ValueError, TypeError):  # the child failed: its half is done here
            second = None
        if not isinstance(second, list) or len(second) != len(items) - middle:
            second = [function(item) for item in items[middle:]]
        return first + second
