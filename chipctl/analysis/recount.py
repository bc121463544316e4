"""Batch re-analysis: re-count the saved frames of many recorded runs with the current counter.

`recount(runs, scheduler)` plans each run (chipctl.analysis.recount_plan), has the scheduler
(chipctl.analysis.schedulers: this process, a local process pool or a Dask cluster) count every
kept frame as a task of its own, and writes each run's re-count as soon as its last frame is in
(chipctl.analysis.recount_output). A frame that cannot be read is reported with its path and
left out; the batch goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Sequence

from chipctl.analysis.recount_output import write_recount
from chipctl.analysis.recount_plan import (
    FrameOutcome,
    RecountOptions,
    RecountResult,
    RunPlan,
    count_saved_frame,
    counter_version,
    plan_run,
)
from chipctl.analysis.schedulers import Scheduler, TaskFailed
from chipctl.runs.folder import RunFolder


def recount(runs: Sequence[RunFolder], scheduler: Scheduler,
            options: RecountOptions | None = None,
            on_frame: Callable[[FrameOutcome], None] | None = None,
            on_run: Callable[[RecountResult], None] | None = None,
            on_start: Callable[[int], None] | None = None) -> list[RecountResult]:
    """Re-count every kept frame of `runs` on `scheduler`; one result per run, in the order
    the runs finish (skipped runs first). `on_start` hears how many frames will be counted,
    `on_frame` of each frame, `on_run` of each run."""
    options, version = options or RecountOptions(), counter_version()
    results: list[RecountResult] = []

    def finished(result: RecountResult) -> None:
        results.append(result)
        if on_run is not None:
            on_run(result)

    plans: list[RunPlan] = []
    for run in runs:
        plan = plan_run(run, options, version)
        if isinstance(plan, RecountResult):
            finished(plan)
        else:
            plans.append(plan)
    order = [(p, j) for p in plans for j in range(len(p.tasks))]
    args = [(str(p.run.path / p.tasks[j].file), p.params, scheduler.parallel) for p, j in order]
    left = {id(p): len(p.tasks) for p in plans}
    if on_start is not None:
        on_start(len(args))
    # NOTE: one writer thread writes each finished run's counts and report while the
    # scheduler goes on counting the next runs' frames (a report takes about a second).
    with cf.ThreadPoolExecutor(1, thread_name_prefix="recount-writer") as writer:
        writing: list[cf.Future[RecountResult]] = []
        for index, outcome in scheduler.map_unordered(count_saved_frame, args):
            plan, j = order[index]
            if isinstance(outcome, TaskFailed):
                outcome = FrameOutcome(str(args[index][0]), error=f"task failed: {outcome.error}")
            plan.outcomes[j] = outcome
            if on_frame is not None:
                on_frame(outcome)
            left[id(plan)] -= 1
            if left[id(plan)] == 0:
                writing.append(writer.submit(_write, plan, version, scheduler.description))
            while writing and writing[0].done():
                finished(writing.pop(0).result())
        for future in writing:
            finished(future.result())
    return results


def _write(plan: RunPlan, version: str, scheduler: str) -> RecountResult:
    try:
        return write_recount(plan, version, scheduler)
    except OSError as exc:
        return RecountResult(plan.run.run_id, frames=len(plan.tasks),
                             error=f"cannot write the re-count in {plan.target}: {exc}")
