"""drplan's Prefect tasks: one generic task per step kind (:data:`tasks.steps.TASKS`), re-configured per node,
and one for plan-level reads (:data:`tasks.steps.read`). The work itself is the library's
(:func:`drplan.run.steps.run_step`); the run comes from :data:`drplan.run.context.CURRENT`."""
