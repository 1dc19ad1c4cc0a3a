"""A prepared Python that forks one process per trial: the warm start (docs/speed.md).

Why: a small trial's segment spent ~5 s starting Python and importing torch and scikit-learn
again, for 0.2 s of training. This server imports them once; each trial is a fork of it that
runs the script as ``__main__`` (``runpy.run_path``) with its own argv, environment, working
directory, CPU affinity and output file. What a fresh process gives is kept:

- one process per trial, in a process group of its own: a crash, ``os.abort()`` or an OOM
  kill ends that trial alone, and the launcher reads its exit status as from ``Popen``;
- the server was started with the trials' thread settings (``OMP_NUM_THREADS`` and the like
  are read when the OpenMP and MKL libraries load) and never runs a parallel op, so its
  OpenMP and MKL thread pools are those of a fresh process; MKL's vector-math kernels are
  picked on one thread at import (``snakesweep.session.kernel_warmup``), as in a fresh
  process; a request whose start-up variables (``STARTUP_PREFIXES``) differ is refused;
- the server refuses to fork once CUDA is initialised or a second thread exists (a fork
  copies neither a CUDA context nor other threads); refused trials start fresh.

Process tree: server -> one handler per request (reads it, forks the trial, waits for it and
sends its wait status back) -> the trial. The server exits when its owner (the process whose
jobs it serves) has ended, on SIGTERM, or after ``idle_s`` without requests.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from snakesweep.cluster.host_process import pid_alive

#: Environment variables read when the interpreter starts or a library loads (thread pools,
#: hash seed, paths): a trial may differ from its server in none of them.
STARTUP_PREFIXES = (
    "PYTHON",
    "OMP_",
    "MKL_",
    "KMP_",
    "GOMP_",
    "GOTO_",
    "OPENBLAS_",
    "VECLIB_",
    "NUMEXPR_",
    "LD_",
)
#: What every trial imports, preloaded before the user's modules (``warm_modules``).
BASE_MODULES = ("numpy", "torch", "snakesweep.session.trial_session")
#: What most trials import later: torch's optimizers import ``torch._dynamo`` when the first
#: one is built (~1 s on the 2-core test machine). Preloaded when they import.
LIKELY_MODULES = ("torch.optim", "torch._dynamo")
#: Largest request (JSON of argv and environment) a handler reads.
MAX_REQUEST = 1 << 20
#: Signals a fresh interpreter ignores; every other one is back to its default in a trial.
IGNORED_BY_PYTHON = (signal.SIGPIPE, signal.SIGXFSZ)


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """The start-up variables of ``env`` (``STARTUP_PREFIXES``)."""
    return {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES)}


def os_thread_count() -> int:
    """Threads of this process, native ones included (OpenMP, MKL, user threads)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def why_not_fork() -> str | None:
    """Why this process must not fork trials now (None: it may)."""
    if cuda_initialized():
        return "CUDA was initialised in the warm-start server (a fork cannot share it)"
    threads = max(os_thread_count(), threading.active_count())
    if threads > 1:
        return (
            f"the warm-start server runs {threads} threads after its imports (a module "
            "starts threads at import; a fork would copy none of them)"
        )
    return None


def preload(modules: Sequence[str]) -> str | None:
    """Import what every trial imports; why the server cannot serve (None: it can)."""
    for name in (*BASE_MODULES, *modules):
        try:
            importlib.import_module(name)
        except BaseException as error:  # noqa: BLE001 (any failure means: start trials fresh)
            return f"cannot import {name} in the warm-start server: {type(error).__name__}: {error}"
    for name in LIKELY_MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 (a trial that needs it imports it itself)
            say(f"not preloaded: {name} ({type(error).__name__}: {error})")
    settle_for_fork()
    return why_not_fork()


def settle_for_fork() -> None:
    """Fork once and let the child exit at once, so that thread pools which stop themselves
    before a fork (OpenBLAS's, started when numpy or scipy load; its next call in a trial
    starts it again, as in a fresh process) are gone: threads left are ones a fork loses."""
    flush_std()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def serve(
    sock_path: str,
    modules: Sequence[str],
    owner_pid: int | None,
    owner_start: str | None,
    idle_s: float,
) -> None:
    """Import, listen on ``sock_path`` and fork one trial per request until told to stop."""
    before = dict(os.environ)
    refusal = preload(modules)
    say(f"ready (pid {os.getpid()}); " + (f"refusing: {refusal}" if refusal else "serving"))
    mine = startup_env(before)
    # Variables the imports set (scikit-learn sets KMP_*): a fresh process has them too.
    set_at_import = {k: v for k, v in os.environ.items() if before.get(k) != v}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    listener.bind(sock_path)
    os.chmod(sock_path, 0o600)
    inode = os.stat(sock_path).st_ino
    listener.listen(64)
    handlers: set[int] = set()
    last = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], 1.0)
            handlers = {pid for pid in handlers if not _reaped(pid)}
            if ready:
                conn, _ = listener.accept()
                last = time.monotonic()
                handlers.add(_fork_handler(conn, listener, mine, set_at_import, refusal))
                conn.close()
            elif owner_pid is not None and not pid_alive(owner_pid, owner_start):
                say(f"owner {owner_pid} ended; exiting")
                break
            elif not handlers and time.monotonic() - last > idle_s:
                say(f"idle for {idle_s:g} s; exiting")
                break
            elif not _is_ours(sock_path, inode):
                say("socket removed or replaced; exiting")
                break
    finally:
        listener.close()
        if _is_ours(sock_path, inode):
            os.unlink(sock_path)


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def _is_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _fork_handler(
    conn: socket.socket,
    listener: socket.socket,
    mine: dict[str, str],
    set_at_import: dict[str, str],
    refusal: str | None,
) -> int:
    """Fork the handler of one request; its pid."""
    flush_std()
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        listener.close()
        code = handle(conn, mine, set_at_import, refusal)
    except BaseException:  # noqa: BLE001 (a handler always leaves through os._exit)
        traceback.print_exc()
        code = 1
    finally:
        flush_std()
        os._exit(code)


def handle(
    conn: socket.socket,
    mine: Mapping[str, str],
    set_at_import: Mapping[str, str],
    refusal: str | None,
) -> int:
    """One request: refuse it, or fork its trial, send its pid, wait, send its wait status."""
    message, fds = recv_request(conn)
    reason = refusal or why_not_fork() or _env_mismatch(mine, message["env"])
    if reason is None and message.get("python") != sys.executable:
        reason = f"the trial's python {message.get('python')} is not the server's {sys.executable}"
    if reason is not None:
        send_line(conn, {"refused": reason})
        return 0
    flush_std()
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_trial(message, fds[0], set_at_import)  # never returns
    for fd in fds:
        os.close(fd)
    send_line(conn, {"pid": pid})
    status = wait_with_launcher(pid, conn)
    try:
        send_line(conn, {"status": status})
    except OSError:
        pass  # the launcher is gone
    return 0


def wait_with_launcher(pid: int, conn: socket.socket) -> int:
    """Wait for the trial; kill it if its launcher goes first (the connection closes), as a
    killed job step takes its script with it: no trial runs on without its trial lock."""
    if not hasattr(os, "pidfd_open"):
        return os.waitpid(pid, 0)[1]
    pidfd = os.pidfd_open(pid)
    watch: list[Any] = [pidfd, conn]
    try:
        while True:
            ready, _, _ = select.select(watch, [], [])
            if pidfd in ready:
                return os.waitpid(pid, 0)[1]
            if conn in ready and not conn.recv(4096):
                os.kill(pid, signal.SIGKILL)
                watch = [pidfd]
    finally:
        os.close(pidfd)


def _env_mismatch(mine: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    theirs = startup_env(env)
    if theirs == mine:
        return None
    keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    return f"start-up variables differ from the server's: {', '.join(keys)}"


def run_trial(
    request: Mapping[str, Any], out_fd: int, set_at_import: Mapping[str, str] | None = None
) -> None:
    """In the forked trial: become a fresh ``python script args...`` and exit as it would."""
    code = 1
    try:
        os.setpgid(0, 0)  # a script's killpg(0) reaches its own processes only
        _reset_signals()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(devnull)
        os.close(out_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in (set_at_import or {}).items():
            os.environ.setdefault(name, value)  # as the imports would, in a fresh process
        if request.get("affinity") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, request["affinity"])
        _reseed()
        script, *args = request["argv"]
        sys.argv = [script, *args]
        sys.path[0] = os.path.dirname(os.path.realpath(script))
        code = _run_main(script)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    finally:
        flush_std()
        os._exit(code)


def _run_main(script: str) -> int:
    """Run ``script`` as ``__main__``; the exit code the interpreter would have, after its exit
    steps (non-daemon threads joined, ``atexit`` functions run)."""
    interrupted = False
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:
        etype, value, tb = sys.exc_info()
        traceback.print_exception(etype, value, _from_script(tb, script))
        code, interrupted = 1, True
    except BaseException:  # noqa: BLE001 (as the interpreter: print it, exit 1)
        etype, value, tb = sys.exc_info()
        # The hook prints the exception's own __traceback__ when it has one, not ``tb``.
        assert value is not None
        value = value.with_traceback(_from_script(tb, script))
        sys.excepthook(etype, value, value.__traceback__)
        code = 1
    threading_shutdown = getattr(threading, "_shutdown", None)
    if threading_shutdown is not None:
        threading_shutdown()
    atexit._run_exitfuncs()
    flush_std()
    if interrupted:  # Python ends by SIGINT after an uncaught KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _from_script(tb: Any, script: str) -> Any:
    """The traceback from the script's first frame on, as a fresh interpreter prints it: the
    server's and runpy's frames above it would lengthen the log's tail, which a failed trial's
    record quotes."""
    wanted = os.path.realpath(script)
    frame = tb
    while frame is not None:
        if os.path.realpath(frame.tb_frame.f_code.co_filename) == wanted:
            return frame
        frame = frame.tb_next
    return tb


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _reset_signals() -> None:
    """Signal dispositions and mask of a fresh interpreter."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if sig == signal.SIGINT:
                signal.signal(sig, signal.default_int_handler)
            elif sig in IGNORED_BY_PYTHON:
                signal.signal(sig, signal.SIG_IGN)
            else:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _reseed() -> None:
    """Entropy-seeded generators differ between fresh processes: so between forks.
    (``random`` reseeds itself after a fork; torch's default seed is fixed, as when fresh.)"""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One JSON line, and the file descriptors sent with its first bytes."""
    data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 4)
    while not data.endswith(b"\n"):
        more = conn.recv(MAX_REQUEST)
        if not more:
            break
        data += more
    return json.loads(data), list(fds)


def send_line(conn: socket.socket, message: Mapping[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} snakesweep warm-start server: {text}", file=sys.stderr)
    flush_std()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="snakesweep's warm-start fork server (internal)")
    p.add_argument("--socket", required=True)
    p.add_argument("--module", action="append", default=[])
    p.add_argument("--owner-pid", type=int)
    p.add_argument("--owner-start")
    p.add_argument("--idle-s", type=float, default=600.0)
    p.add_argument("--path", help="the scripts' folder: sys.path[0], as for `python script.py`")
    args = p.parse_args(argv)
    if args.path:
        sys.path[0] = args.path  # instead of the working directory `-m` put there
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through serve()'s cleanup
    serve(args.socket, args.module, args.owner_pid, args.owner_start, args.idle_s)


if __name__ == "__main__":
    main()
