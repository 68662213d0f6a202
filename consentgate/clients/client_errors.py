"""The one root of the client rules' errors.

Each rule raises its own subclass with a message that names what is wrong (the
field, the part of the URL, the bad value), so the fetcher can log it and the page
can say it without a traceback. They are ``ValueError`` s: the configuration loader
turns a ``ValueError`` from a value parser into "<key path>: <message>".
"""

from __future__ import annotations


class ClientRuleError(ValueError):
    """A client_id, a metadata document or a policy entry the gate refuses."""
