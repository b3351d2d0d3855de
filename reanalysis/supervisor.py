"""Run a script's work in a child process that the script's own process supervises, so that
Ctrl-C stops everything within a fraction of a second and leaves nothing behind.

A signal handler in the working process cannot stop it safely: Python runs handlers only
between bytecodes, so a SIGINT that arrives during XLA compilation, inside NumPyro's compiled
sampler or in another C extension waits until that returns (the default fit ran on for
150 s and wrote its result), and a ``KeyboardInterrupt`` raised in the middle of JAX's
start-up crashed the process (``docs/decisions/interrupts.md``).  So the script's own process
(the *supervisor*) only parses the command line; the work runs in a child started in a
session of its own, which the terminal's Ctrl-C does not reach.  The supervisor takes
SIGINT (and SIGTERM, SIGHUP), kills the child's whole process group with SIGKILL (figure
workers, pool workers and JAX's threads with it), waits until no member is left, removes
the output the child announced (:func:`announce`) and exits with 130 (128 + the signal).

The child watches the supervisor through a socket: when the supervisor dies (even by
SIGKILL) the socket closes and the child kills its own process group, so nothing outlives
the command.

:func:`phase` marks the phases of the work.  With ``K2_PHASE_TRACE`` set it prints
``phase: <name>`` on stderr, and with ``K2_PHASE_PAUSE=<name>`` the work waits at that phase
until it is killed: the tests interrupt each phase that way instead of guessing with sleeps.
Only the standard library is imported here, so ``--help`` stays fast.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

# EXIT_INTERRUPTED: 128 + SIGINT, as a shell reports a run stopped by Ctrl-C
from reanalysis.settings import EXIT_ERROR, EXIT_INTERRUPTED

#: Set in the child's environment: the file descriptor of its end of the supervisor's socket.
CHILD_ENV = "K2_SUPERVISOR_FD"
#: Test hooks (see the module docstring).
TRACE_ENV, PAUSE_ENV = "K2_PHASE_TRACE", "K2_PHASE_PAUSE"
#: Signals the supervisor turns into "stop everything".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Longest wait for the killed process group to disappear before cleaning up.
GROUP_TIMEOUT = 5.0

_channel: socket.socket | None = None


def run(main: Callable[[list], int], parse: Callable[[list], object], argv: list | None = None, command: list | None = None) -> int:
    """The command-line entry point of a script whose work ``main(argv)`` returns an exit code.

    In the supervisor: ``parse(argv)`` first, so that ``--help`` and usage errors are
    answered here at once (argparse exits); then the script runs again as a supervised
    child (:func:`supervise`): ``command`` followed by ``argv`` (default: this Python and
    ``sys.argv[0]``; the console script adds its subcommand).  In that child: ``main(argv)``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if CHILD_ENV in os.environ:
        return _child(main, argv)
    try:
        parse(argv)
    except KeyboardInterrupt:
        return _interrupted_message(signal.SIGINT, [], complete=None)
    return supervise([*(command or [sys.executable, sys.argv[0]]), *argv])


def supervise(command: list[str]) -> int:
    """Run ``command`` in a new session and return its exit code; on SIGINT, SIGTERM or
    SIGHUP kill its process group, remove what it announced as unfinished output and return
    128 + the signal number.  A child killed by a signal of its own (a crash) gives
    :data:`EXIT_ERROR` and the same clean-up."""
    ours, theirs = socket.socketpair()
    state: dict = {"signal": None, "pgid": None}

    def stop(signum, frame):
        if state["signal"] is None:
            state["signal"] = signum
        if state["pgid"] is not None:
            _kill_group(state["pgid"])

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        env = {**os.environ, CHILD_ENV: str(theirs.fileno())}
        # a session of its own: the terminal's Ctrl-C reaches only this process, and the
        # child (no controlling terminal) is never stopped for writing to it
        proc = subprocess.Popen(command, env=env, pass_fds=(theirs.fileno(),), start_new_session=True)
        state["pgid"] = proc.pid
        theirs.close()
        if state["signal"] is not None:  # arrived while the child was being started
            _kill_group(proc.pid)
        messages: list[tuple[str, str]] = []
        reader = threading.Thread(target=_read_messages, args=(ours, messages), daemon=True)
        reader.start()
        code = proc.wait()
        # whatever the outcome, nothing the child started may outlive it
        _kill_group(proc.pid)
        _wait_group_gone(proc.pid)
        # the channel closes once every holder (the child, its forked workers) is gone; the
        # messages were sent before the output they announce was made, so all are read
        reader.join(1.0)
        ours.close()
        complete = any(kind == "complete" for kind, _ in messages)
        if state["signal"] is not None:
            return _cleanup_after_stop(state["signal"], messages, complete)
        if code < 0:
            _remove_unfinished(messages, complete)
            print(f"error: {Path(command[1]).name} stopped by signal {signal.Signals(-code).name}"
                  f"{'' if complete else '; no result folder was written'}", file=sys.stderr)
            return EXIT_ERROR
        _remove_unfinished(messages, complete=True)  # a staging folder left by a crash
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _cleanup_after_stop(signum: int, messages: list, complete: bool) -> int:
    _remove_unfinished(messages, complete)
    return _interrupted_message(signum, messages, complete)


def _interrupted_message(signum: int, messages: list, complete: bool | None) -> int:
    finals = [p for kind, p in messages if kind == "final"]
    if complete and finals:
        print(f"\ninterrupted after the results were complete: {', '.join(finals)}", file=sys.stderr)
    else:
        print("\ninterrupted: every process stopped; no result folder was written", file=sys.stderr)
    return 128 + int(signum)


def _remove_unfinished(messages: list, complete: bool) -> list[str]:
    """Remove the announced staging paths (always) and final paths (unless the run was
    complete); returns the paths removed."""
    removed = []
    for kind, path in messages:
        if kind == "staging" or (kind == "final" and not complete):
            p = Path(path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(path)
            elif p.exists() or p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(path)
    if not complete:
        # folders the run created for its output, deepest first, if nothing else is in them
        for path in reversed([p for kind, p in messages if kind == "mkdir"]):
            try:
                os.rmdir(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def _read_messages(sock: socket.socket, out: list) -> None:
    with sock.makefile("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            kind, _, path = line.rstrip("\n").partition("\t")
            out.append((kind, path))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``.  Linux reads ``/proc``;
    elsewhere a group with only zombies left counts as alive."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, timeout: float = GROUP_TIMEOUT) -> None:
    # SIGKILL is delivered at once, but a member leaves the group only when the kernel has
    # torn it down; the output folder is removed after that, so no worker writes into it
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


# -- in the child ------------------------------------------------------------------------------
def _child(main: Callable[[list], int], argv: list) -> int:
    global _channel
    fd = int(os.environ.pop(CHILD_ENV))
    _channel = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    # Ctrl-C is the supervisor's; a stray SIGINT sent to this process alone changes nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_supervisor, args=(_channel,), daemon=True).start()
    code = main(argv)
    announce("complete")
    return code


def _watch_supervisor(sock: socket.socket) -> None:
    try:
        while sock.recv(64):  # the supervisor never writes: b"" means it is gone
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)


def announce(kind: str, path: str | Path = "") -> None:
    """Tell the supervisor about output, before making it: ``"staging"``, a folder or file
    that must not survive an interrupted run; ``"final"``, what a staging path is about to
    be renamed to (removed too if the run is stopped before it completes); ``"mkdir"``, a
    folder about to be created for the output (removed if still empty); ``"complete"``, the
    work is done (sent by :func:`run`).  Does nothing outside a supervised child."""
    if _channel is not None:
        _channel.sendall(f"{kind}\t{os.path.abspath(path) if path else ''}\n".encode())


def phase(name: str) -> None:
    """Mark the start of a phase of the work (test hooks: see the module docstring)."""
    if os.environ.get(TRACE_ENV):
        print(f"phase: {name}", file=sys.stderr, flush=True)
    if os.environ.get(PAUSE_ENV) == name:
        while True:  # until the test's SIGINT makes the supervisor kill this process
            time.sleep(60)
