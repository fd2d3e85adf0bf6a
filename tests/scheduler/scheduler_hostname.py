"""Airflow's ``[core] hostname_callable`` for the real-scheduler suite: each Celery worker names itself.

Two workers on one machine would otherwise both report the machine's name in every task instance's
``hostname``, and the suite could not tell where a task ran. Standard library only: every task
process imports it.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """``DATASHARE_WORKER_HOSTNAME`` if the process has one, else the machine's fully qualified name."""
    return os.environ.get("DATASHARE_WORKER_HOSTNAME") or socket.getfqdn()
