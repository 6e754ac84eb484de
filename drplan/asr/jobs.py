"""ASR jobs: fetch, find the one in flight for an item, wait with a deadline on drplan's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from drplan.asr import convert
from drplan.asr.base import AsrBase, Started, log
from drplan.asr.errors import job_failure
from drplan.errors import DrplanError, JobTimeout, NotFoundError
from drplan.observed import ItemRef, ItemState, Job, JobStatus

ACTIVE = (JobStatus.not_started, JobStatus.in_progress)
#: a job the item still names after this many seconds of waiting is read itself (in case the item lags)
JOB_CHECK_EVERY = 300.0


class JobsMixin(AsrBase):
    def _settle(
        self,
        result: Started | Job,
        *,
        vm: str,
        target: str,
        operation: str,
        scenario: str,
        wait: bool,
        timeout: float | None,
        accept_suspended: bool = False,
        note_reuse: bool = False,
        item: tuple[ItemRef, Callable[[ItemState], Job | None]] | None = None,
    ) -> Job:
        """The job an idempotent action ends with: the one it started (awaited when ``wait``), or the running
        or done one it reused (``reused``); an action answered 200 finished synchronously.

        ``item``: the item the job works on and the action's phase rule; the job is then awaited on the
        item's shared reads (:meth:`await_on_item`) instead of by polls of its own."""
        first_delay = None
        if isinstance(result, Started):
            if result.job is None:  # answered 200: finished synchronously
                return Job(name="", scenario=scenario, state=JobStatus.succeeded, target=target)
            if not wait:  # ASR just accepted it: not read back (the caller polls after ``poll_after``)
                return Job(
                    name=result.job,
                    scenario=scenario,
                    state=JobStatus.not_started,
                    target=target,
                    poll_after=result.retry_after,
                )
            name, first_delay = result.job, result.retry_after
        else:
            if result.done or not wait or not result.name:
                return result
            if note_reuse:
                log.info("%s of %s: awaiting job %s already running", operation, vm, result.name)
            name = result.name
        if item is not None and not accept_suspended:
            job = self.await_on_item(
                item[0],
                name,
                item[1],
                scenario=scenario,
                timeout=timeout,
                operation=operation,
                first_delay=first_delay,
            )
            return replace(job, reused=not isinstance(result, Started))
        job = self.wait_job(
            name,
            timeout=timeout,
            vm=vm,
            operation=operation,
            first_delay=first_delay,
            check=True,
            accept_suspended=accept_suspended,
        )
        return replace(job, reused=not isinstance(result, Started))

    def get_job(self, name: str, *, vm: str = "", operation: str = "get job") -> Job:
        """One GET of ``replicationJobs/{name}``."""
        return convert.job(self._call(vm or name, operation, self._sdk.replication_jobs.get, name))

    def wait_job(
        self,
        name: str,
        deadline: float | None = None,
        *,
        timeout: float | None = None,
        vm: str = "",
        operation: str = "",
        first_delay: float | None = None,
        check: bool = False,
        accept_suspended: bool = False,
    ) -> Job:
        """Poll a job until it ends (or is Suspended, waiting for a user action), sleeping on ``self.clock``.

        ``deadline`` is a ``self.clock.monotonic()`` value; ``timeout`` (seconds from now) is the alternative,
        ``self.job_timeout`` the default. Polls every ``polling_interval`` seconds at most, sooner when the
        server's ``Retry-After`` (``first_delay``: a job just started is first polled after it) says so.
        Raises :class:`JobTimeout` at the deadline
        (the job may still run). With ``check``, a job that did not succeed raises the mapped
        :class:`AsrError`.
        """
        if deadline is None:
            deadline = self.clock.monotonic() + (self.job_timeout if timeout is None else timeout)
        vm = vm or name
        operation = operation or "wait for job"
        if first_delay:  # a job just started: its first poll comes after the server's Retry-After
            left = deadline - self.clock.monotonic()
            self.clock.sleep(max(0.0, min(first_delay, self.polling_interval, left)))
        delay = self.polling_interval
        while True:
            job = self.get_job(name, vm=vm, operation=operation)
            if job.done or job.state is JobStatus.suspended:
                break
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise JobTimeout(
                    f"{operation} of VM {vm}: job {name} ({job.scenario}) is still {job.state} at its "
                    "deadline; it keeps running in ASR, a re-run awaits it instead of starting another",
                    vm=vm,
                    operation=operation,
                    job=name,
                )
            self.clock.sleep(min(delay, left))
            delay = self.polling_interval
        log.info("job %s (%s) of %s ended %s", name, job.scenario, vm, job.state)
        if check:
            ok = job.state is JobStatus.succeeded or (accept_suspended and job.state is JobStatus.suspended)
            if not ok:
                raise job_failure(name, job.errors, vm=vm, operation=operation, state=str(job.state))
        return job

    def await_on_item(
        self,
        ref: ItemRef,
        name: str,
        decide: Callable[[ItemState], Job | None],
        *,
        scenario: str,
        timeout: float | None,
        operation: str,
        first_delay: float | None = None,
    ) -> Job:
        """Wait for job ``name`` on ``ref`` by reading the item (in the shared read rounds), not the job.

        The item names its running job (``currentScenario``); once it names another or none, the action's
        phase rule ``decide`` is asked: work done means the job succeeded. Anything else (the job failed,
        the item's phase lags) is settled by one GET of the job, as is a job the item still names after
        :data:`JOB_CHECK_EVERY` seconds. A failed job raises the mapped :class:`AsrError`; at the deadline,
        :class:`JobTimeout` (the job may still run).
        """
        deadline = self.clock.monotonic() + (self.job_timeout if timeout is None else timeout)
        if first_delay:  # a job just started: first read after the server's Retry-After
            self.clock.sleep(
                max(0.0, min(first_delay, self.polling_interval, deadline - self.clock.monotonic()))
            )
        checked = self.clock.monotonic()
        while True:
            state = self.item_state(ref, operation=operation)
            if (state.current_job or "").lower() != name.lower():
                try:
                    outcome = decide(state)
                except DrplanError:
                    outcome = None
                if outcome is not None and outcome.done and not outcome.name:  # the work is done
                    log.info("job %s (%s) of %s ended: the item shows it done", name, scenario, ref.vm)
                    return Job(
                        name=name,
                        scenario=scenario,
                        state=JobStatus.succeeded,
                        target=ref.vm,
                        end=self.clock.now(),
                        item=state,
                    )
                job = self._ended(name, vm=ref.vm, operation=operation)
                if job is not None:
                    return job
            elif self.clock.monotonic() - checked >= JOB_CHECK_EVERY:
                checked = self.clock.monotonic()
                job = self._ended(name, vm=ref.vm, operation=operation)
                if job is not None:
                    return job
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise JobTimeout(
                    f"{operation} of VM {ref.vm}: job {name} ({scenario}) is still running at its deadline; "
                    "it keeps running in ASR, a re-run awaits it instead of starting another",
                    vm=ref.vm,
                    operation=operation,
                    job=name,
                )
            self.clock.sleep(min(self.polling_interval, left))

    def _ended(self, name: str, *, vm: str, operation: str) -> Job | None:
        """One GET of the job: ``None`` while it runs; a failed job raises its mapped error."""
        job = self.get_job(name, vm=vm, operation=operation)
        if not job.done:
            return None
        log.info("job %s (%s) of %s ended %s", name, job.scenario, vm, job.state)
        if job.state is not JobStatus.succeeded:
            raise job_failure(name, job.errors, vm=vm, operation=operation, state=str(job.state))
        return job

    def _running(self, job_name: str | None, *, vm: str, operation: str) -> Job | None:
        """The named job if it still runs (not started, in progress); ``None`` otherwise or if it is gone."""
        if not job_name:
            return None
        try:
            job = self.get_job(job_name, vm=vm, operation=operation)
        except NotFoundError:
            return None
        return job if job.state in ACTIVE else None

    def inflight_job(self, ref: ItemRef) -> Job | None:
        """The job running on this item now, if any: ``currentScenario.jobId`` first, then the job list.

        This is how a fresh client (a re-run after a crash) finds the work of the one before it.
        """
        state = self.item_state(ref)  # provided by DiscoveryMixin
        job = self._running(state.current_job, vm=ref.vm, operation="find in-flight job")
        return job if job is not None else self._listed_inflight(ref)

    def current(self, state: ItemState, *, operation: str) -> tuple[ItemState, Job | None]:
        """The item's state to decide on and the job running on it.

        When the job the item named has ended since the item was read, that read is stale (its phase is
        from before the job's outcome): the item is read once more and the decision is taken on that.
        """
        vm = state.ref.vm
        running = self._running(state.current_job, vm=vm, operation=operation)
        if running is None and state.current_job:
            state = self.item_state(state.ref, operation=operation)
            running = self._running(state.current_job, vm=vm, operation=operation)
        return state, running

    def _listed_inflight(self, ref: ItemRef) -> Job | None:
        """The active job the vault's job list shows for this item (one listing), if any."""
        active = "JobStatus eq 'NotStarted,InProgress'"
        for model in self._list(ref.vm, "find in-flight job", self._sdk.replication_jobs.list, filter=active):
            candidate = convert.job(model)
            target_id = (model.properties.target_object_id or "").lower()
            mine = (
                candidate.target == ref.vm
                or (ref.id and target_id == ref.id.lower())
                or (target_id and target_id == ref.item.lower())
            )
            if mine and candidate.state in ACTIVE:
                return candidate
        return None
