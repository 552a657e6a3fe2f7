"""The pass/fail tally the release checks share: `check(ok, what)` counts and
prints failures; `finish()` prints `NAME: N passed, N failed` and exits non-zero
on any failure."""

import sys


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failures = []

    def __call__(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL {what}")
        return ok

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {len(self.failures)} failed")
        sys.exit(1 if self.failures else 0)
