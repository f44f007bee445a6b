"""``ispflow worker``: the rq worker that runs jobs, and the scheduler that enqueues periodic ones.

The periodic jobs are plain data (``ispflow.jobs.PERIODIC_JOBS``). At start the scheduler makes
rq's cron scheduler hold exactly that list (reconciling, so restarting or reconciling twice adds
nothing twice) and resumes each job's timetable from its last enqueue recorded in Redis, so a
restart does not re-run the daily retention. Several ``ispflow worker`` processes may run; a
Redis lock with a time-to-live lets only one of them schedule, and another takes over within a
minute if it dies.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Iterable

from redis import Redis
from redis.exceptions import RedisError
from rq import Retry, Worker
from rq.cron import CronJob, CronScheduler, get_cron_job_history_key
from rq.exceptions import DuplicateSchedulerError, SchedulerNotFound

from .config import Settings
from .jobs import PERIODIC_JOBS, PeriodicJob, queue, redis_connection

log = logging.getLogger(__name__)

LOCK_KEY = "ispflow:scheduler:lock"
LOCK_TTL = 60                          # seconds a dead scheduler keeps the lock
RETRY_INTERVALS = (60, 300, 900)       # seconds before the 1st, 2nd, 3rd retry
FAILED_JOBS_KEPT = 14 * 24 * 3600      # failures stay on the status page for two weeks

# Renew only while we still own the lock; release only our own lock.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def scheduler_owner(connection: Redis) -> str | None:
    """Name of the scheduler holding the lock (alive within the last LOCK_TTL seconds), or None."""
    owner = connection.get(LOCK_KEY)
    return owner.decode() if owner else None


def resolve(function: str):
    """The callable named ``module:function`` (an error names the bad PERIODIC_JOBS entry)."""
    module, _, name = function.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"periodic job function {function!r} cannot be imported; use 'module:function'") from None


def checked(periodic_jobs: Iterable[PeriodicJob]) -> dict[str, PeriodicJob]:
    """The jobs by name; ValueError for a name declared twice or a function that cannot be imported."""
    wanted = {}
    for job in periodic_jobs:
        if job.name in wanted:
            raise ValueError(f"periodic job {job.name!r} is declared twice in PERIODIC_JOBS")
        resolve(job.function)
        wanted[job.name] = job
    return wanted


class PeriodicCronJob(CronJob):
    """rq's CronJob for one PeriodicJob, with its retries (which rq's CronJob cannot store)."""

    def __init__(self, periodic: PeriodicJob, queue_name: str):
        # ttl: a run still queued when the next is due (the worker busy with a long job) is dropped,
        # so a backlog of the every-minute job never piles up behind a long retention run.
        super().__init__(queue_name, func=resolve(periodic.function), interval=periodic.interval,
                         job_timeout=periodic.timeout, ttl=periodic.interval, failure_ttl=FAILED_JOBS_KEPT,
                         name=periodic.name)
        self.periodic = periodic
        if periodic.retries:
            self.job_options["retry"] = Retry(max=periodic.retries, interval=list(RETRY_INTERVALS[:periodic.retries]))

    def to_dict(self) -> dict:
        data = super().to_dict()
        data.pop("retry", None)
        data["retries"] = self.periodic.retries
        return data


class PeriodicScheduler(CronScheduler):
    """rq's cron scheduler, fed from PERIODIC_JOBS instead of a config file."""

    def reconcile(self, periodic_jobs: Iterable[PeriodicJob], queue_name: str) -> list[CronJob]:
        """Make the registered jobs exactly ``periodic_jobs``; idempotent.

        Changed definitions replace the old registration; each new registration resumes from the
        last time a job of that name was enqueued (kept by rq in Redis), so restarts do not
        enqueue everything at once.
        """
        wanted = checked(periodic_jobs)
        registered = self.get_jobs()  # rq's own list, edited in place
        registered[:] = [c for c in registered
                         if isinstance(c, PeriodicCronJob) and wanted.get(c.name) == c.periodic
                         and c.queue_name == queue_name]
        present = {c.name for c in registered}
        for name, job in wanted.items():
            if name in present:
                continue
            cron_job = PeriodicCronJob(job, queue_name)
            last = self.connection.zrevrange(get_cron_job_history_key(name), 0, 0, withscores=True)
            if last:
                cron_job.set_enqueue_time(datetime.fromtimestamp(last[0][1], timezone.utc))
            registered.append(cron_job)
            log.info("scheduler: %s every %d s runs %s", name, job.interval, job.function)
        return registered


class Scheduler:
    """One scheduling participant: takes the lock when free, then enqueues what is due.

    ``step()`` does one round and says how long to wait before the next; ``close()`` gives the
    lock up. ``run_scheduler`` loops over them; tests call them directly.
    """

    def __init__(self, settings: Settings, periodic_jobs: Iterable[PeriodicJob] | None = None,
                 connection: Redis | None = None):
        self.settings = settings
        self.periodic_jobs = list(PERIODIC_JOBS if periodic_jobs is None else periodic_jobs)
        self.connection = connection or Redis.from_url(settings.REDIS_URL)
        self.cron = PeriodicScheduler(self.connection)
        self.holding = False

    @property
    def name(self) -> str:
        return self.cron.name

    def step(self) -> float:
        if self.holding:
            self.holding = bool(self.connection.eval(_RENEW, 1, LOCK_KEY, self.name, LOCK_TTL))
            if not self.holding:
                log.warning("scheduler %s lost its lock; another scheduler runs the periodic jobs", self.name)
                self._unregister()
        elif self.connection.set(LOCK_KEY, self.name, nx=True, ex=LOCK_TTL):
            self.holding = True
            self.cron.reconcile(self.periodic_jobs, self.settings.QUEUE_NAME)
            try:
                self.cron.register_birth()
            except DuplicateSchedulerError:  # still registered from before its lock was lost
                self.cron.save()
            log.info("scheduler %s holds the lock and schedules %d jobs", self.name, len(self.cron.get_jobs()))
        if not self.holding:
            return LOCK_TTL / 3
        if self.cron.enqueue_jobs():
            self.cron.save()
        self.cron.heartbeat()
        return max(0.0, min(self.cron.calculate_sleep_interval(), LOCK_TTL / 3))

    def close(self) -> None:
        if self.holding:
            self._unregister()
            self.connection.eval(_RELEASE, 1, LOCK_KEY, self.name)
            self.holding = False

    def _unregister(self) -> None:
        try:
            self.cron.register_death()
        except SchedulerNotFound:  # already pruned from rq's registry
            log.debug("scheduler %s was not registered", self.name)


def run_scheduler(settings: Settings, stop, parent_pid: int | None = None, poll: float = 1.0) -> None:
    """Schedule until ``stop()`` is true (checked at least every ``poll`` seconds), or the parent is gone."""
    scheduler = Scheduler(settings)
    pause = threading.Event()  # never set: an interruptible sleep
    try:
        while not stop():
            if parent_pid is not None and os.getppid() != parent_pid:
                break
            try:
                wait = scheduler.step()
            except RedisError as exc:  # Redis restarting: keep trying, the lock's TTL guards the rest
                log.warning("scheduler: Redis unavailable (%s); retrying", exc)
                wait = LOCK_TTL / 3
            deadline = time.monotonic() + wait
            while not stop() and time.monotonic() < deadline:
                pause.wait(min(poll, max(deadline - time.monotonic(), 0.0)))
    finally:
        scheduler.close()


def _scheduler_process(settings: Settings, parent_pid: int) -> None:
    # The handler only flips a flag. Setting a multiprocessing Event from a handler deadlocked:
    # the handler interrupts this process inside the Event's own wait, and the Event's
    # condition then waits forever for a sleeper (this very process) to wake, holding a lock
    # the parent needs too; Ctrl-C to the process group hung both processes on a futex.
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_scheduler(settings, lambda: bool(stopping), parent_pid)


class ShutdownAwareWorker(Worker):
    """rq's worker, which also honours a SIGINT or SIGTERM that came while it was starting.

    rq installs its signal handlers only after registering itself; a Ctrl-C before that killed
    the process and left it registered in Redis. ``early_signals`` collects those signals and the
    work loop then stops at its first turn, unregistering properly.
    """

    early_signals: list[int]

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        if getattr(self, "early_signals", None):
            self._shutdown_requested_date = datetime.now(timezone.utc)
            for signum in (signal.SIGINT, signal.SIGTERM):  # a second signal forces the stop, as in rq
                signal.signal(signum, self.request_force_stop)
            self._stop_requested = True


def run_worker(settings: Settings, burst: bool = False) -> bool:
    """Run the rq worker in this process and, unless ``burst``, the scheduler in a child process.

    SIGTERM or SIGINT (to this process or its whole group, as Ctrl-C sends it) lets the current
    job finish, then both stop. Returns whether any job ran.
    """
    early_signals: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: early_signals.append(number))
    scheduler = None
    if not burst:
        context = multiprocessing.get_context("fork")  # before the worker starts: no threads to copy yet
        scheduler = context.Process(target=_scheduler_process, args=(settings, os.getpid()),
                                    name="ispflow-scheduler", daemon=True)
        scheduler.start()
    try:
        worker = ShutdownAwareWorker([queue(settings)], connection=redis_connection(settings.REDIS_URL))
        worker.early_signals = early_signals
        # rq's own scheduler moves retried jobs back to the queue after their retry interval.
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        if scheduler is not None:
            scheduler.terminate()  # SIGTERM: the scheduler gives its lock up and exits
            scheduler.join(timeout=LOCK_TTL / 3)
            if scheduler.is_alive():
                scheduler.kill()
                scheduler.join()
