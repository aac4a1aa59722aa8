"""Database layer: typed SQLAlchemy 2.0 models, engine/session helpers and migrations glue."""
