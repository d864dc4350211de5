"""Runs many CLI and worker invocations quickly: import once, fork a fresh process for each.

Started as ``python -m tests.badinput.prefork``; reads one JSON request per line on stdin
(``{"argv": [...], "cwd": ..., "env": {...}, "stdout": path, "stderr": path}``; ``argv[0]`` is
``cloud_tasks`` for the CLI or the path of a worker script) and answers each with the exit
status of a forked child that ran it exactly as ``python -m cloud_tasks`` or
``python worker.py`` would: same code, fresh process, its own cwd, environment and streams.
Importing the CLI once instead of once per command makes a corpus of a few hundred commands
affordable; ``test_corpus`` also runs a few commands as plain subprocesses to show that both
ways agree.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from typing import Any

import cloud_tasks.entrypoints.cli.main as cli_main
import cloud_tasks.worker  # noqa: F401 - imported once for every forked worker


def _child(request: dict[str, Any]) -> None:
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    argv: list[str] = request["argv"]
    code = 0
    try:
        if argv[0] == "cloud_tasks":
            sys.argv = argv
            cli_main.main(argv[1:])
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                _child(request)
            finally:
                os._exit(70)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
