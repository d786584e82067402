"""forked.both: the second piece of work in a forked child, at the same time as the first."""

import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenmall.sim import forked

needs_fork = pytest.mark.skipif(sys.platform != "linux", reason="forked.both forks on Linux only")


@pytest.fixture(autouse=True)
def fork_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork even with a second CPU busy or a thread another test left behind (this worker's
    state is not the test's subject; these tests' children take no lock)."""
    monkeypatch.setattr(forked, "fork_helps", lambda: True)


def children() -> set[int]:
    """This process's child processes (live or not yet waited for), as Linux lists them."""
    found: set[int] = set()
    for listed in Path("/proc/self/task").glob("*/children"):
        found |= {int(pid) for pid in listed.read_text().split()}
    return found


@pytest.fixture
def no_child_left() -> Iterator[None]:
    """The test leaves no child process of its own behind (other tests' may run)."""
    before = children()
    yield
    assert children() <= before


@needs_fork
@pytest.mark.usefixtures("no_child_left")
def test_the_two_run_at_once_and_both_are_done_on_return(tmp_path: Path) -> None:
    """`here` waits for a file that only the child writes: one after the other, it never
    would appear (and `here` fails)."""
    signal_file = tmp_path / "from-the-child"

    def here() -> None:
        deadline = time.monotonic() + 30
        while not signal_file.exists():
            assert time.monotonic() < deadline, "the child did not run beside this process"
            time.sleep(0.01)
        (tmp_path / "here").write_text(str(os.getpid()))

    def there() -> None:
        signal_file.write_text(str(os.getpid()))

    forked.both(here, there)
    assert int((tmp_path / "here").read_text()) == os.getpid()
    assert int(signal_file.read_text()) != os.getpid()  # made in another process


@needs_fork
@pytest.mark.usefixtures("no_child_left")
def test_the_childs_error_is_raised_here_as_itself(tmp_path: Path) -> None:
    def there() -> None:
        (tmp_path / "missing" / "report.html").write_text("x")

    with pytest.raises(FileNotFoundError) as raised:
        forked.both(lambda: None, there)
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == str(tmp_path / "missing" / "report.html")


@needs_fork
@pytest.mark.usefixtures("no_child_left")
def test_an_error_that_does_not_pickle_comes_back_as_its_text() -> None:
    class Unpicklable(Exception):
        def __reduce__(self) -> str | tuple[object, ...]:
            raise TypeError("no pickling")

    def there() -> None:
        raise Unpicklable("the report could not be made")

    with pytest.raises(forked.ChildFailed, match="the report could not be made"):
        forked.both(lambda: None, there)


@needs_fork
@pytest.mark.usefixtures("no_child_left")
def test_a_child_that_dies_is_an_error() -> None:
    parent = os.getpid()

    def there() -> None:
        assert os.getpid() != parent, "not in a child: this would kill the test's process"
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(forked.ChildFailed, match="wait status"):
        forked.both(lambda: None, there)


@needs_fork
@pytest.mark.usefixtures("no_child_left")
def test_an_error_here_is_raised_after_the_child_is_done(tmp_path: Path) -> None:
    def here() -> None:
        raise ValueError("metrics.csv failed")

    def there() -> None:
        time.sleep(0.2)
        (tmp_path / "report").write_text("done")

    with pytest.raises(ValueError, match=r"metrics\.csv failed"):
        forked.both(here, there)
    assert (tmp_path / "report").read_text() == "done"  # waited for, not left running


def test_forks_only_where_they_are_safe_and_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real condition
    assert forked.fork_helps() == (
        sys.platform == "linux"
        and len(os.sched_getaffinity(0)) > 1
        and threading.active_count() == 1
    )
    started, stop = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        started.wait(10)
        assert not forked.fork_helps()  # another thread runs: no fork
    finally:
        stop.set()
        thread.join()


def test_without_a_fork_the_two_run_here_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked, "fork_helps", lambda: False)
    done: list[tuple[str, int]] = []
    forked.both(
        lambda: done.append(("here", os.getpid())), lambda: done.append(("there", os.getpid()))
    )
    assert done == [("here", os.getpid()), ("there", os.getpid())]
