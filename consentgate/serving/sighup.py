"""SIGHUP in a running gate: re-read the configuration, apply what can change now.

The order matters:

1. the file is read again with the loader the gate started with
   (``app[CONFIG_SOURCE]``: the same path, environment overrides and secret files);
   a file with any error is refused whole: the configuration in force stays, and
   nothing else is re-read either (no key ring, no admin token, no logging change),
   so a refused reload changes nothing at all;
2. :func:`~consentgate.config.reload_rules.plan_reload` splits the difference: keys read
   per request are applied, keys used at start to open something keep their
   running values until a restart;
3. the settings snapshot is swapped in one assignment (requests already running,
   streams included, finish under the one they started with);
4. every reload a resource registered runs (the key ring; ``serve``'s logging, so
   ``[log]`` changes take effect here);
5. then the outcome is logged, already in the new format and level: one ERROR per
   problem of a refused file, one WARNING naming each key that waits for a restart
   with its old and new value (secrets masked), one INFO naming the keys applied.
"""

from __future__ import annotations

import logging

from aiohttp import web

from consentgate.config.loading import ConfigError
from consentgate.config.reload_rules import ReloadPlan, plan_reload
from consentgate.web.appkeys import CONFIG_SOURCE, LIVE_SETTINGS, RELOAD_HOOKS

log = logging.getLogger("consentgate")


def reload(app: web.Application) -> tuple[str, ...]:
    """SIGHUP: the configuration (when the app was given where to read it), then every
    registered reload, unless the file was refused. Returns the problems that refused
    the configuration file, or ``()`` when it applied (or there was no file to read)."""
    source = app.get(CONFIG_SOURCE)
    plan: ReloadPlan | None = None
    problems: tuple[str, ...] = ()
    if source is not None:
        try:
            plan = plan_reload(app[LIVE_SETTINGS].current.config, source())
        except ConfigError as exc:
            problems = tuple(exc.problems)
        else:
            problems = plan.problems
        if plan is not None and not plan.refused and plan.applied:
            app[LIVE_SETTINGS].swap(plan.config)
    if problems:
        _report_refused(problems)
        return problems
    app[RELOAD_HOOKS].run()
    if plan is not None:
        _report(plan)
    return problems


def _report_refused(problems: tuple[str, ...]) -> None:
    for problem in problems:
        log.error("configuration error", extra={"fields": {"problem": problem}})
    log.error(
        "configuration not reloaded; the one in force stays",
        extra={"fields": {"errors": len(problems)}},
    )


def _report(plan: ReloadPlan) -> None:
    if plan.ignored:
        log.warning(
            "configuration changes ignored until restart",
            extra={"fields": {change.key: str(change) for change in plan.ignored}},
        )
    if plan.applied:
        log.info(
            "configuration reloaded",
            extra={"fields": {"changed": ",".join(change.key for change in plan.applied)}},
        )
    else:
        log.info("configuration reloaded; nothing to apply")
