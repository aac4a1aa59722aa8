"""A training pipeline's last step, using only the evalgate client: register, evaluate, decide, promote.

    evalgate serve --with-worker &                        # or the docker-compose stack
    export EVALGATE_TOKEN=$(evalgate tokens create pipeline --scope write)
    python examples/pipeline.py --adapter ~/.evalgate/artifacts/sweeps/1/lr-0.0003/adapter \\
        --learning-rate 3e-4 --dataset evalgate-suite@v1 --policy examples/policy.yaml

Exit codes: 0 the candidate passed and was promoted; 1 it was blocked (promotion refused); 2 error.
An error (connection refused, a timeout, a server error, a failed job, an unreadable policy) ends with one
line on stderr, ``error: ...``, and exit status 2, never a traceback. Requests that may be repeated are
retried first (``--retries``, with the client's back-off); ``--request-timeout`` bounds each request.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import yaml

from evalgate.client import ApiError, Client, JobFailed
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL

EXIT_PROMOTED, EXIT_BLOCKED, EXIT_ERROR = 0, 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("EVALGATE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("EVALGATE_TOKEN"), help="default: $EVALGATE_TOKEN")
    parser.add_argument("--adapter", required=True, help="absolute path of the trained PEFT adapter folder")
    parser.add_argument("--name", default="pipeline-candidate")
    parser.add_argument("--base-model", default=EMBEDDED_DEFAULT_MODEL)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--dataset", required=True, help="NAME@vN of the evaluation set")
    parser.add_argument("--policy", required=True, help="gate policy YAML")
    parser.add_argument(
        "--evaluation", default="{}", help="evaluation options as YAML/JSON, e.g. '{batch_size: 16}'"
    )
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds to wait for the evaluation")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds one request may take")
    parser.add_argument("--retries", type=int, default=5, help="retries of a request that may be repeated")
    return parser.parse_args(argv)


def run(client: Client, args: argparse.Namespace) -> int:
    """Register the adapter, evaluate it, ask for a decision, promote it if it passed."""
    candidate = client.register_candidate(
        args.name, base_model=args.base_model, adapter_uri=args.adapter, learning_rate=args.learning_rate
    )
    print(f"registered candidate {candidate['id']} ({candidate['adapter_hash'][:12]})")
    job = client.evaluate(candidate["id"], args.dataset, yaml.safe_load(args.evaluation) or {})
    print(f"evaluation job {job['id']} queued; waiting")
    client.wait_for_job(job["id"], timeout=args.timeout)
    with open(args.policy) as handle:
        policy = yaml.safe_load(handle)
    decision = client.decide(candidate["id"], policy)
    print_decision(decision)
    try:
        promotion = client.promote(candidate["id"])
    except ApiError as refused:
        if refused.status != 409:
            raise
        print(f"not promoted: {refused.detail}")
        return EXIT_BLOCKED
    print(f"promoted candidate {promotion['candidate_id']} as the baseline of {promotion['base_model']}")
    return EXIT_PROMOTED


def print_decision(decision: dict[str, Any]) -> None:
    """One line per check: verdict, oriented delta with its interval, and the reason."""
    print(f"decision {decision['id']}: {decision['verdict'].upper()}")
    for check in decision["evidence"]["checks"]:
        low, high = check["ci_95"]
        print(f"  {check['check']:<32} {check['verdict']:<14} delta {check['oriented_delta']:+.3f} "
              f"[{low:+.3f}, {high:+.3f}] n={check['n']}  {check['reason']}")  # fmt: skip


def describe(error: Exception, url: str) -> str:
    """One line saying what went wrong, for stderr."""
    if isinstance(error, httpx.TimeoutException):
        text = f"no answer from {url} in time ({type(error).__name__})"
    elif isinstance(error, httpx.TransportError):
        text = f"cannot reach {url}: {error or type(error).__name__}"
    elif isinstance(error, yaml.YAMLError):
        text = f"invalid YAML: {error}"
    else:
        text = str(error) or type(error).__name__
    return "error: " + " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.token:
        print("error: give --token or set EVALGATE_TOKEN", file=sys.stderr)
        return EXIT_ERROR
    try:
        with Client(args.url, args.token, timeout=args.request_timeout, retries=args.retries) as client:
            return run(client, args)
    except (ApiError, JobFailed, TimeoutError, OSError, httpx.HTTPError, yaml.YAMLError) as error:
        print(describe(error, args.url), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
