"""The service's background side: the job queue, the worker and its handlers, API tokens."""
