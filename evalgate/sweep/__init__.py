"""Training LoRA candidates over a learning-rate search: the sweep run and its config, records,
loss diagnosis, the learning-rate range test, self-replay, Ray Tune, and candidates trained elsewhere."""
