"""The command line: one module per command group, ``main`` holds the typer app."""
