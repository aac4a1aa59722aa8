"""What ``evalgate ci`` writes into its outputs folder.

- ``junit.xml``: ``<testsuites>`` with one ``<testsuite name=CANDIDATE>`` per candidate and one
  ``<testcase name=EVALUATOR/COHORT>`` per policy check. ``regress``, ``below_floor`` and
  ``too_many_flips`` are ``<failure type=VERDICT>``, and so is ``inconclusive`` when the policy blocks on
  it; the message gives the reason, the oriented delta and the interval the verdict was tested at. A
  candidate that was not evaluated is one ``<testcase name="training">``: ``<error>`` when its training
  failed, ``<skipped>`` otherwise (diverged), with its training status.
- ``summary.md``: GitHub-flavoured Markdown for ``$GITHUB_STEP_SUMMARY``: the recommendation, the table
  ``rate | status | verdict | target gain [CI] | ood delta [CI] | why not recommended`` (the ood delta
  of the out-of-domain check that decides the candidate, named in its cell), the per-cohort eval-fail
  rates, the dataset label and hash, the policy name and hash, the baseline, and where the HTML report
  is.
- ``report.html``: the sweep report (``evalgate.report.sweep.render_sweep_report``), written by the caller.
- ``result.json``: ``{"exit_code", "recommended", "recommended_candidate_id", "promoted", "error",
  "mode", "server", "sweep_id", "dataset": {"label", "sha256"}, "policy": {"name", "sha256",
  "inconclusive"}, "objective", "baseline", "candidates": [{"label", "candidate_id", "learning_rate",
  "status", "diagnosis", "error", "verdict", "decision_id", "candidate_run_id", "baseline_run_id",
  "gain", "why_not_recommended", "checks": [{"check", "verdict", "reason", "blocking", "oriented_delta",
  "interval", "margin", "n", "baseline_mean", "candidate_mean", "flips"}]}], "fail_rates": {"columns":
  ["baseline", CANDIDATE...], "rows": [{"evaluator", "cohort", "fail_rate": {COLUMN: share},
  "n": {COLUMN: rows}}]} or null}``: the per-cohort eval-fail rates (``evalgate.report.fail_rates``).

After an error only ``result.json`` (``exit_code`` 2 and ``error``), ``summary.md`` and a one-case
``junit.xml`` carrying the error are written.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalgate.ci.result import (
    CHECK_FIELDS,
    EXIT_ERROR,
    CandidateResult,
    CiResult,
    decisive_ood,
    is_failure,
    rate_label,
    result_data,
    verdict_interval,
)

OUTPUT_FILES = ("junit.xml", "summary.md", "report.html", "result.json")


def write_outputs(result: CiResult, folder: Path, *, report_note: str) -> list[Path]:
    """Write ``junit.xml``, ``summary.md`` and ``result.json`` into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "junit.xml": junit_xml(result),
        "summary.md": summary_markdown(result, report_note),
        "result.json": json.dumps(result_data(result), indent=2) + "\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in files]


def clear_outputs(folder: Path) -> None:
    """Remove a previous run's outputs from ``folder`` (nothing else in it), so none is left stale."""
    for name in OUTPUT_FILES:
        (folder / name).unlink(missing_ok=True)


def write_error_outputs(folder: Path, title: str, message: str) -> None:
    """The outputs of a run that stopped on an error (exit code 2)."""
    clear_outputs(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suites = ET.Element("testsuites", name=f"evalgate ci: {title}", tests="1", failures="0", errors="1")
    suite = ET.SubElement(suites, "testsuite", name="evalgate ci", tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", name="run", classname="evalgate ci")
    ET.SubElement(case, "error", message=message, type="error").text = message
    (folder / "junit.xml").write_text(_xml(suites), encoding="utf-8")
    summary = f"## evalgate ci: {_md(title)}\n\n**Error** (exit code {EXIT_ERROR}): {_md(message)}\n"
    (folder / "summary.md").write_text(summary, encoding="utf-8")
    data = {"exit_code": EXIT_ERROR, "error": message, "recommended": None, "candidates": []}
    (folder / "result.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- JUnit


def junit_xml(result: CiResult) -> str:
    """The JUnit XML document (see the module docstring)."""
    blocks = result.config.policy.inconclusive == "block"
    suites = ET.Element("testsuites", name=f"evalgate ci: {result.config.title}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for candidate in result.candidates:
        suite = ET.SubElement(suites, "testsuite", name=candidate.label, time="0")
        properties = ET.SubElement(suite, "properties")
        for name, value in _suite_properties(result, candidate).items():
            ET.SubElement(properties, "property", name=name, value=str(value))
        counts = dict.fromkeys(totals, 0)
        if candidate.decision is None:
            _training_case(suite, candidate, counts)
        for check in candidate.checks:
            case = ET.SubElement(suite, "testcase", name=check["check"], classname=candidate.label, time="0")
            counts["tests"] += 1
            if is_failure(check, blocks):
                failure = ET.SubElement(case, "failure", message=check_message(check), type=check["verdict"])
                failure.text = _evidence_text(check)
                counts["failures"] += 1
            elif check["verdict"] != "pass":
                ET.SubElement(case, "system-out").text = f"allowed by the policy: {check_message(check)}"
        for name, value in counts.items():
            suite.set(name, str(value))
            totals[name] += value
    for name, value in totals.items():
        suites.set(name, str(value))
    return _xml(suites)


def check_message(check: Mapping[str, Any]) -> str:
    """``VERDICT: reason`` with the oriented delta and the interval the verdict was tested at."""
    message = f"{check['verdict']}: {check['reason']}"
    interval = verdict_interval(check)
    if "interval" not in check["reason"] and interval is not None:
        low, high = interval
        message += f"; oriented delta {check['oriented_delta']:+.4f}, interval [{low:+.4f}, {high:+.4f}]"
    return message + f"; margin {check['margin']:.4f}, n={check['n']}"


def _training_case(suite: ET.Element, candidate: CandidateResult, counts: dict[str, int]) -> None:
    case = ET.SubElement(suite, "testcase", name="training", classname=candidate.label, time="0")
    counts["tests"] += 1
    detail = f"not evaluated: training {candidate.status}"
    detail += (
        f" ({candidate.diagnosis})" if candidate.diagnosis and candidate.diagnosis != candidate.status else ""
    )
    detail += f": {candidate.error}" if candidate.error else ""
    if candidate.status == "failed":
        ET.SubElement(case, "error", message=detail, type="training_failed").text = detail
        counts["errors"] += 1
    else:
        ET.SubElement(case, "skipped", message=detail)
        counts["skipped"] += 1


def _suite_properties(result: CiResult, candidate: CandidateResult) -> dict[str, Any]:
    decision = candidate.decision or {}
    properties = {
        "candidate_id": candidate.candidate_id,
        "learning_rate": "" if candidate.learning_rate is None else f"{candidate.learning_rate:g}",
        "training_status": candidate.status,
        "verdict": decision.get("verdict", "not evaluated"),
        "decision_id": decision.get("id", ""),
        "dataset": result.config.dataset,
        "dataset_sha256": result.dataset_hash,
        "policy_sha256": result.config.policy.sha256,
        "baseline": result.baseline,
    }
    return properties


def _evidence_text(check: Mapping[str, Any]) -> str:
    lines = [
        f"{name}: {check[name]}"
        for name in (*CHECK_FIELDS, "ci_95", "ci_holm_pass", "ci_holm_regress")
        if name in check
    ]
    return "\n".join(lines)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -------------------------------------------------------------------------------------------- Markdown


def summary_markdown(result: CiResult, report_note: str) -> str:
    """The job summary (see the module docstring)."""
    config, recommendation = result.config, result.recommendation
    chosen = result.recommended
    lines = [f"## evalgate ci: {_md(config.title)}", ""]
    if chosen is not None:
        gain = recommendation.gains.get(chosen.label)
        line = f"**Recommended: `{chosen.label}`** ({recommendation.objective} gain {_signed(gain)})"
        if result.promoted is not None:
            line += f"; promoted as the new baseline of `{config.model}`"
        lines.append(line + f". Exit code {result.exit_code}.")
    else:
        lines.append(f"**No candidate passed the gate.** Exit code {result.exit_code}.")
    lines += [
        "",
        "| rate | status | verdict | target gain [CI] | ood delta [CI] | why not recommended |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for candidate in result.candidates:
        status = candidate.status + (f" ({candidate.diagnosis})" if candidate.diagnosis else "")
        verdict = candidate.decision["verdict"] if candidate.decision else "not evaluated"
        why = "recommended" if candidate is chosen else recommendation.reasons.get(candidate.label, "-")
        cells = [
            rate_label(candidate, result.sweep_id is not None),
            status,
            verdict,
            _estimate(candidate, recommendation.objective),
            _ood_estimate(candidate),
            why,
        ]
        lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    lines += fail_rate_markdown(result)
    policy = config.policy
    lines += [
        "",
        f"Target gain: `{recommendation.objective}`; ood delta: the out-of-domain check that decides the "
        "candidate (the most severe verdict, then the least room to spare), named in its cell. Oriented: "
        "positive is better; intervals are the Holm-corrected ones each verdict was tested at.",
        "",
        f"- **dataset**: `{config.dataset}`, sha256 `{result.dataset_hash}`",
        f"- **policy**: `{_md(policy.name)}`, sha256 `{policy.sha256}` "
        f"(inconclusive checks {policy.inconclusive})",
        f"- **baseline**: {_md(result.baseline)}",
    ]
    if result.sweep_id is not None:
        lines.append(f"- **sweep**: {result.sweep_id}")
    if result.server is not None:
        lines.append(f"- **server**: {result.server}")
    lines.append(f"- **report**: {report_note}")
    return "\n".join(lines) + "\n"


def _estimate(candidate: CandidateResult, label: str | None) -> str:
    check = next((c for c in candidate.checks if c["check"] == label), None)
    if check is None:
        return "-"
    interval = verdict_interval(check)
    shown = f"{check['oriented_delta']:+.3f}"
    return shown + (f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "")


def fail_rate_markdown(result: CiResult) -> list[str]:
    """The per-cohort eval-fail-rate matrix as Markdown lines (none without rates): one row per
    evaluator x cohort, its row count, the baseline then each candidate in percent, with the points
    against the baseline."""
    rates = result.fail_rates
    if rates is None or not rates.rows:
        return []
    lines = [
        "",
        "**Eval-fail rate per cohort** (share of judged rows below each evaluator's threshold, %; lower "
        "is better; points against the baseline in brackets):",
        "",
        "| evaluator/cohort | rows | " + " | ".join(_md(column) for column in rates.columns) + " |",
        "| --- | ---: |" + " ---: |" * len(rates.columns),
    ]
    for row in rates.rows:
        base = row.rates[0]
        cells = [_percent(base, None)] + [_percent(rate, base) for rate in row.rates[1:]]
        lines.append(f"| {_md(row.label)} | {row.rows} | " + " | ".join(cells) + " |")
    return lines


def _percent(rate: float | None, baseline: float | None) -> str:
    if rate is None:
        return "-"
    text = f"{100 * rate:.1f}"
    return text if baseline is None else f"{text} ({100 * (rate - baseline):+.1f})"


def _ood_estimate(candidate: CandidateResult) -> str:
    check = decisive_ood(candidate)
    return "-" if check is None else f"{_estimate(candidate, check['check'])} ({check['check']})"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _md(text: str) -> str:
    """Safe inside a Markdown table cell: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")
