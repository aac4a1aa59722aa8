"""``alembic upgrade head`` then ``alembic check`` on a fresh PostgreSQL database (run by ``make test``).

python -m tests.migrations_check
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def main() -> int:
    """Create a scratch database, run the two alembic commands against it, drop it; return their status."""
    admin_url = os.environ.get(
        "EVALGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"evalgate_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    env = {
        **os.environ,
        "EVALGATE_DATABASE_URL": make_url(admin_url).set(database=name).render_as_string(False),
    }
    alembic = [sys.executable, "-m", "alembic"]
    try:
        for step in (["upgrade", "head"], ["check"]):
            print(f"alembic {' '.join(step)} on {name}", flush=True)
            if subprocess.run([*alembic, *step], env=env, check=False).returncode != 0:
                return 1
        return 0
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
