"""JUnit XML for CI systems that show test reports: one testcase per pipeline.

A regression, a missing pipeline or a new bottleneck is a ``<failure>``; a
gate that could not compare at all (bad baseline, failing script) is one
testcase with an ``<error>``, so the CI's report says why instead of finding
no file. Pure: returns the XML as a string.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from plumber.gate.compare import PASS, GateResult, Row, rate_text

SUITE = "plumber gate"


def gate_junit(result: GateResult, suite: str = SUITE) -> str:
    """A ``<testsuites>`` document with one ``<testcase>`` per row of ``result``."""
    failures = sum(row.verdict != PASS and row.baseline is not None for row in result.rows)
    root, suite_el = _suite(suite, tests=len(result.rows), failures=failures, errors=0)
    properties = ET.SubElement(suite_el, "properties")
    for name, value in (
        ("tolerance", f"{result.tolerance:g}"),
        ("speed_ratio", f"{result.speed_ratio:.4g}"),
        ("repeats", str(result.measured.repeats)),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for row in result.rows:
        case = ET.SubElement(suite_el, "testcase", classname=suite, name=row.key)
        detail = _detail(row)
        if row.verdict == PASS or row.baseline is None:
            ET.SubElement(case, "system-out").text = detail
        else:
            failure = ET.SubElement(case, "failure", type=row.verdict, message=row.reason)
            failure.text = detail
    return _serialise(root)


def error_junit(name: str, message: str, suite: str = SUITE) -> str:
    """A one-testcase document whose ``<error>`` says why nothing could be compared."""
    root, suite_el = _suite(suite, tests=1, failures=0, errors=1)
    case = ET.SubElement(suite_el, "testcase", classname=suite, name=name)
    ET.SubElement(case, "error", type=name, message=message).text = message
    return _serialise(root)


def _detail(row: Row) -> str:
    """The numbers behind a verdict, for the report's failure or output text."""
    measured = f"measured median {rate_text(row.measured.rate) if row.measured else '-'}"
    if row.baseline is None:
        return f"{measured}: {row.reason}"
    return (
        f"expected {rate_text(row.expected_rate)} (baseline {rate_text(row.baseline.rate)} "
        f"x {row.scale:.3g} for machine speed), {measured}: {row.reason}"
    )


def _suite(name: str, tests: int, failures: int, errors: int) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("testsuites", name=name, tests=str(tests), failures=str(failures),
                      errors=str(errors))
    suite = ET.SubElement(root, "testsuite", name=name, tests=str(tests),
                          failures=str(failures), errors=str(errors), skipped="0")
    return root, suite


def _serialise(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
