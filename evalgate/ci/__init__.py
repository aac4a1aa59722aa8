"""The weekly CI job: its config, its result, its outputs, run in-process or through the REST service."""
