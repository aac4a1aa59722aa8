"""Every route of the app with the access it should need, for the scope and database-outage tests.

``SCOPES`` is the one place that says who may call what; ``routes(app)`` lists what the app really
serves, so a route added without an entry here fails ``test_every_route_is_in_the_scope_table``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

PUBLIC, LOGIN, VIEWER, READ, WRITE, ADMIN = "public", "login", "viewer", "read", "write", "admin"
"""Access kinds: no token; the login form (checks the token it is given); a dashboard page (read token
from the header or the cookie, else a redirect to /login); and the three token scopes."""

SCOPES: dict[tuple[str, str, str], str] = {
    ("GET", "/openapi.json", "openapi"): PUBLIC,
    ("GET", "/docs", "swagger_ui_html"): PUBLIC,
    ("GET", "/docs/oauth2-redirect", "swagger_ui_redirect"): PUBLIC,
    ("GET", "/redoc", "redoc_html"): PUBLIC,
    ("GET", "/healthz", "health"): PUBLIC,
    ("GET", "/livez", "livez"): PUBLIC,
    ("GET", "/readyz", "readyz"): PUBLIC,
    ("GET", "/problems/{slug}", "problem_type"): PUBLIC,
    ("GET", "/metrics", "metrics"): ADMIN,  # from another host; a loopback client needs no token
    ("GET", "/login", "login_form"): PUBLIC,
    ("POST", "/login", "login"): LOGIN,
    ("GET", "/logout", "logout"): PUBLIC,
    ("POST", "/logout", "logout"): PUBLIC,
    ("GET", "/", "home"): VIEWER,
    ("GET", "/sweeps/{sweep_id}", "sweep"): VIEWER,
    ("GET", "/candidates/{candidate_id}/rows", "candidate_rows"): VIEWER,
    ("GET", "/datasets/{name}/history", "history"): VIEWER,
    ("GET", "/datasets", "list_versions"): READ,
    ("GET", "/datasets/{ref}", "get_version"): READ,
    ("GET", "/datasets/{name}/diff", "diff"): READ,
    ("GET", "/sweeps/{sweep_id}", "get_sweep"): READ,
    ("GET", "/sweeps", "list_sweeps"): READ,
    ("GET", "/candidates/{candidate_id}", "get_candidate"): READ,
    ("GET", "/candidates", "list_candidates"): READ,
    ("GET", "/evaluations/{run_id}", "get_evaluation"): READ,
    ("GET", "/evaluations", "list_evaluations"): READ,
    ("GET", "/evaluations/{run_id}/scores", "row_scores"): READ,
    ("GET", "/gate/decisions/{decision_id}", "get_one"): READ,
    ("GET", "/gate/decisions", "list_all"): READ,
    ("GET", "/gate/baseline", "baseline"): READ,
    ("GET", "/jobs/{job_id}", "get_job"): READ,
    ("GET", "/jobs", "list_jobs"): READ,
    ("POST", "/datasets/{name}/versions", "upload_version"): WRITE,
    ("POST", "/sweeps", "submit_sweep"): WRITE,
    ("POST", "/candidates", "register"): WRITE,
    ("POST", "/evaluations", "start_evaluation"): WRITE,
    ("POST", "/gate/decide", "decide"): WRITE,
    ("POST", "/gate/candidates/{candidate_id}/promote", "promote_candidate"): WRITE,
    ("POST", "/jobs/{job_id}/cancel", "cancel_job"): WRITE,
    ("POST", "/tokens", "create"): ADMIN,
    ("GET", "/tokens", "list_all"): ADMIN,
    ("DELETE", "/tokens/{name}", "revoke"): ADMIN,
}
REQUIRED_QUERY = {"/datasets/{name}/diff": "old=1&new=2", "/gate/baseline": "base_model=m"}
"""Query parameters a route cannot do without (so a call reaches its handler, not a 422)."""
BELOW = {READ: None, WRITE: READ, ADMIN: WRITE}
"""The scope one step too low for each token scope (nothing is below read)."""


@dataclass(frozen=True)
class Route:
    """One method of one path, as the app serves it."""

    method: str
    path: str
    name: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.path, self.name)

    @property
    def url(self) -> str:
        """The path with every parameter filled with a dummy id (an unknown id answers 404), plus the
        query parameters it requires."""
        query = REQUIRED_QUERY.get(self.path) if self.method == "GET" else None
        return re.sub(r"\{[^}]+\}", "1", self.path) + (f"?{query}" if query else "")


def routes(app: FastAPI) -> list[Route]:
    """Every (method, path, endpoint name) the app serves, routers included (HEAD left out)."""
    found = []
    for context in iter_route_contexts(app.routes):
        for method in sorted(context.methods or ()):
            if method != "HEAD" and context.path is not None:
                found.append(Route(method, context.path, context.name or ""))
    return found
