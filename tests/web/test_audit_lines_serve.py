"""``serve`` writes the audit log in one batch per loop iteration,
and writes what is waiting whenever it returns: a flush scheduled on the loop may
never run once ``serve`` is done (a start that failed, a stop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from consentgate.audit.events import AuditEvent
from consentgate.core.startup_errors import StartupError
from consentgate.serving import server
from consentgate.web.appkeys import AUDIT
from tests.conftest import make_config

#: configure_logging and serve change the consentgate logger: put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


async def test_the_audit_lines_of_a_start_that_failed_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def failing_start(config: Any, app: web.Application, **options: Any) -> Any:
        app[AUDIT].emit(AuditEvent("tamper", "a record failed verification", severity="warning"))
        raise StartupError("cannot listen")

    monkeypatch.setattr(server, "start", failing_start)
    with pytest.raises(StartupError):
        await server.serve(make_config(tmp_path, "http://127.0.0.1:9"))
    # Before this test awaits anything: the loop has not run the scheduled flush.
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "tamper" in line]
    assert " WARNING consentgate.audit a record failed verification event=tamper" in line
