"""One `ticketing up` per data directory; a killed run never blocks the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticketing_devstack.instance import (
    LOCK_FILE,
    AlreadyRunningError,
    ChildRecord,
    InstanceInfo,
    InstanceLock,
    running_instance,
    stop_leftovers,
)

URL = "http://127.0.0.1:8000"


def test_second_instance_is_refused_naming_the_running_pid_and_url(tmp_path: Path) -> None:
    with InstanceLock.acquire(tmp_path, URL), pytest.raises(AlreadyRunningError) as refused:
        InstanceLock.acquire(tmp_path, "http://127.0.0.1:9999")

    assert refused.value.info == InstanceInfo(os.getpid(), URL)
    assert f"PID {os.getpid()}" in str(refused.value)
    assert URL in str(refused.value)


def test_refused_instance_leaves_the_holders_record_intact(tmp_path: Path) -> None:
    with InstanceLock.acquire(tmp_path, URL) as lock:
        lock.record([ChildRecord("auth", 4242, 1.5)])
        with pytest.raises(AlreadyRunningError):
            InstanceLock.acquire(tmp_path, "http://127.0.0.1:9999")

        assert running_instance(tmp_path) == InstanceInfo(
            os.getpid(), URL, (ChildRecord("auth", 4242, 1.5),)
        )


def test_lock_of_a_killed_run_does_not_block_the_next_run(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from ticketing_devstack.instance import InstanceLock\n"
            f"lock = InstanceLock.acquire(pathlib.Path({str(tmp_path)!r}), {URL!r})\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"locked"
        assert running_instance(tmp_path) is not None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)

    with InstanceLock.acquire(tmp_path, URL) as lock:
        assert lock.previous is not None
        assert lock.previous.pid == holder.pid


def test_lock_file_with_unreadable_content_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("not json {")

    with InstanceLock.acquire(tmp_path, URL) as lock:
        assert lock.previous is None
        assert running_instance(tmp_path) == InstanceInfo(os.getpid(), URL)


def test_after_release_nothing_is_running_and_the_file_is_emptied(tmp_path: Path) -> None:
    lock = InstanceLock.acquire(tmp_path, URL)
    lock.release()

    assert running_instance(tmp_path) is None
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_process_left_running_by_a_killed_run_is_stopped_by_its_recorded_pid() -> None:
    leftover = subprocess.Popen(["sleep", "60"])
    record = ChildRecord.of("auth", leftover.pid)
    assert record is not None

    stopped = stop_leftovers(InstanceInfo(1, URL, (record,)), timeout=5)

    assert stopped == [record]
    assert not record.is_running()
    leftover.wait(5)


def test_a_recorded_pid_now_used_by_another_process_is_not_signalled() -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        reused = ChildRecord("auth", bystander.pid, time.time() - 3600)

        stopped = stop_leftovers(InstanceInfo(1, URL, (reused,)), timeout=1)

        assert stopped == []
        assert bystander.poll() is None
    finally:
        bystander.terminate()
        bystander.wait(5)
