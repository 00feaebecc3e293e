"""A part that keeps dying: ``statbox up`` restarts it with a growing back-off, then gives up
with one line naming it, and stops the rest cleanly (exit code 1, nothing left). The limit is
the settings' (local.restarts), here smaller than the default to keep the tier lean.

Its own stack: the proxy's command is a wrapper that runs the real proxy until a flag file
appears, then fails at once, as a proxy whose port or binary went bad would.
"""

from __future__ import annotations

import time

import pytest

from statbox.modes.local.stack import find_proxy
from statbox.modes.local.supervisor import RECORD_FILE, RecordBook
from tests.integration.conftest import assert_all_gone, make_stack, stopped_whatever_happens

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def test_a_part_that_keeps_dying_ends_the_run_with_one_clear_line(stack_settings):
    folder = stack_settings.parent
    flag = folder / "proxy-broken"
    wrapper = folder / "proxy-wrapper"
    real = find_proxy()
    assert real is not None
    wrapper.write_text(f'#!/bin/sh\n[ -e "{flag}" ] && exit 1\nexec "{real[0]}" "$@"\n')
    wrapper.chmod(0o755)
    with stack_settings.open("a") as settings:
        settings.write("local:\n  restarts: {limit: 2, window_seconds: 120}\n")
    stack = make_stack(stack_settings)
    stack.env["STATBOX_PROXY"] = str(wrapper)
    with stopped_whatever_happens(stack):
        stack.start()
        tree = stack.process_tree()
        flag.touch()
        began = time.monotonic()
        proxy = RecordBook.load(stack.state_dir / "run" / RECORD_FILE).living()["proxy"]
        proxy.kill()
        assert stack.proc is not None
        code = stack.proc.wait(60)
        took = time.monotonic() - began
        assert code == 1
        output = stack.output()
        # back-off 0.5 + 1 s between the deaths, then no more
        assert output.count("The proxy stopped") == 2
        assert "The proxy died 3 times within 120 s; giving up and stopping Statbox." in output
        assert 1.5 <= took <= 20, took
        assert_all_gone(tree)
        assert not (stack.state_dir / "run" / RECORD_FILE).exists()
