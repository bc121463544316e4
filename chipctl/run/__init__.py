"""Running a protocol: the runner (states), the executor (steps -> devices), run control,
interlocks, fluidics (pump runs), the run clock and the run's events."""
