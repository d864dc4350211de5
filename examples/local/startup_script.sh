#!/bin/bash
# Runs once on every instance. On the local provider an "instance" is a process group on this
# machine that starts in the directory of the configuration file, with the Python environment
# that runs cloud_tasks; on a cloud VM this is where you would install your code first.
set -euo pipefail
export MY_WORKER_RESULTS_DIR="${MY_WORKER_RESULTS_DIR:-$PWD/results}"
exec python3 my_worker.py
