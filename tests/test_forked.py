"""forked.both: the second piece of work in a forked child, at the same time as the first."""

import errno
import os
import signal
import time
from pathlib import Path

import pytest

from tokenmall.sim import forked

needs_fork = pytest.mark.skipif(not forked.fork_helps(), reason="no fork here (see forked.py)")


def no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@needs_fork
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
    assert no_child_left()


@needs_fork
def test_the_childs_error_is_raised_here_as_itself(tmp_path: Path) -> None:
    def there() -> None:
        (tmp_path / "missing" / "report.html").write_text("x")

    with pytest.raises(FileNotFoundError) as raised:
        forked.both(lambda: None, there)
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == str(tmp_path / "missing" / "report.html")
    assert no_child_left()


@needs_fork
def test_an_error_that_does_not_pickle_comes_back_as_its_text() -> None:
    class Unpicklable(Exception):
        def __reduce__(self) -> str | tuple[object, ...]:
            raise TypeError("no pickling")

    def there() -> None:
        raise Unpicklable("the report could not be made")

    with pytest.raises(forked.ChildFailed, match="the report could not be made"):
        forked.both(lambda: None, there)


@needs_fork
def test_a_child_that_dies_is_an_error() -> None:
    def there() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(forked.ChildFailed, match="wait status"):
        forked.both(lambda: None, there)
    assert no_child_left()


@needs_fork
def test_an_error_here_is_raised_after_the_child_is_done(tmp_path: Path) -> None:
    def here() -> None:
        raise ValueError("metrics.csv failed")

    def there() -> None:
        time.sleep(0.2)
        (tmp_path / "report").write_text("done")

    with pytest.raises(ValueError, match=r"metrics\.csv failed"):
        forked.both(here, there)
    assert (tmp_path / "report").read_text() == "done"  # waited for, not left running
    assert no_child_left()


def test_without_a_fork_the_two_run_here_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked, "fork_helps", lambda: False)
    done: list[tuple[str, int]] = []
    forked.both(
        lambda: done.append(("here", os.getpid())), lambda: done.append(("there", os.getpid()))
    )
    assert done == [("here", os.getpid()), ("there", os.getpid())]
