"""Fixtures shared by every client test.

`broker` starts a fresh shardlog on a free port with a fresh data dir (under target/test-data)
and yields it; tests use `broker.bootstrap`. `broker.restart()`, `broker.restart(kill9=True)`
and `broker.kill9()` drive crash tests on the same data dir. On teardown the broker is stopped;
if the test failed, or the broker exited without being asked to, the tail of its stderr is
printed and its data dir is kept. A broker that died on its own fails the test (as an error),
even if the test body passed: a crash is always a defect.

`broker_factory(name, **kw)` starts additional brokers with other settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Broker  # noqa: E402


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request) -> bool:
    return any(getattr(request.node, f"rep_{phase}", None) is not None
               and getattr(request.node, f"rep_{phase}").failed for phase in ("setup", "call"))


def _finish(request, brokers: list[Broker]) -> None:
    failed = _failed(request)
    crashed = [b for b in brokers if b.died_unexpectedly()]
    for b in brokers:
        if failed or b in crashed:
            sys.stderr.write(f"\n==== broker {b.bootstrap} data={b.data_dir} ====\n")
            sys.stderr.write(b.stderr_tail() + "\n")
        b.cleanup(keep=failed or b in crashed)
    if crashed and not failed:
        pytest.fail("broker exited on its own during the test:\n"
                    + "\n".join(b.stderr_tail() for b in crashed), pytrace=False)


@pytest.fixture
def broker(request):
    b = Broker(request.node.name)
    started = [b]
    try:
        b.start()
        yield b
    finally:
        _finish(request, started)


@pytest.fixture
def broker_factory(request):
    started: list[Broker] = []

    def make(name: str = "extra", **kwargs) -> Broker:
        b = Broker(f"{request.node.name}-{name}", **kwargs)
        started.append(b)
        return b.start()

    try:
        yield make
    finally:
        _finish(request, started)
