"""The worker's agents and timers, one module each: the join stage's ingest and the model stage's timer."""
