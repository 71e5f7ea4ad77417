"""pytest's --ctrf PATH where pytest-json-ctrf (PyPI only) cannot be installed: Warren's stand-in.

Loaded into every pytest of an offline test run (PYTEST_PLUGINS=warren_ctrf, with the stand-ins'
folder on PYTHONPATH; docs/eval.md, "Offline test scripts"). Inert where the real plugin is
installed. Writes a CTRF report (ctrf.io's Common Test Report Format) at the end of the session:
{"results": {"tool": {"name": "pytest"}, "summary": {...}, "tests": [{"name", "status",
"duration"}]}}, one entry per test, named by its node id, with durations in milliseconds.
Written for any Python 3 an image may have: no f-strings, no dataclasses.
"""
import json
import os
import time


def _real_plugin_installed():
    try:
        from importlib import metadata
    except ImportError:  # Python before 3.8: pkg_resources, if it is there
        try:
            import pkg_resources

            pkg_resources.get_distribution("pytest-json-ctrf")
            return True
        except Exception:
            return False
    try:
        metadata.version("pytest-json-ctrf")
        return True
    except Exception:
        return False


_ACTIVE = not _real_plugin_installed()


def _now_ms():
    return int(time.time() * 1000)


class _Report(object):
    def __init__(self, path):
        self.path = path
        self.start = _now_ms()
        self.order = []  # node ids, in the order their first phase reported
        self.status = {}
        self.duration = {}

    def pytest_runtest_logreport(self, report):
        node = report.nodeid
        if node not in self.status:
            self.order.append(node)
            self.status[node] = "passed"
            self.duration[node] = 0.0
        self.duration[node] += getattr(report, "duration", 0.0) * 1000.0
        # A failed phase fails the test; a skip (or an expected failure) in setup or call skips
        # it; a test that passed keeps passing through a clean teardown.
        if report.failed:
            self.status[node] = "failed"
        elif report.skipped and self.status[node] != "failed":
            self.status[node] = "skipped"

    def pytest_sessionfinish(self, session):
        stop = _now_ms()
        tests = []
        counts = {"passed": 0, "failed": 0, "skipped": 0, "pending": 0, "other": 0}
        for node in self.order:
            status = self.status[node]
            counts[status] += 1
            tests.append(
                {"name": node, "status": status, "duration": int(round(self.duration[node]))}
            )
        summary = {"tests": len(tests), "start": self.start, "stop": stop}
        summary.update(counts)
        document = {"results": {"tool": {"name": "pytest"}, "summary": summary, "tests": tests}}
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            os.makedirs(folder)
        with open(self.path, "w") as out:
            json.dump(document, out, indent=2)


def pytest_addoption(parser):
    if _ACTIVE:
        parser.addoption(
            "--ctrf",
            action="store",
            dest="warren_ctrf",
            default=None,
            metavar="PATH",
            help="write a CTRF report to PATH (Warren's offline stand-in for pytest-json-ctrf)",
        )


def pytest_configure(config):
    if not _ACTIVE:
        return
    path = config.getoption("warren_ctrf", None)
    # Once per session: pytest-xdist's workers report through the controller.
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Report(path), "warren-ctrf-report")
