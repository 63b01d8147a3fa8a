"""Below every package: the run-root layout (`layout`), storage with atomic writes
(`storage`), and the packed-shard contract between shard-corpus and pretraining
(`shard_format`). Imports nothing heavier than pyarrow, so the training core may use it."""
