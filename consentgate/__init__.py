"""consentgate: a consent gate in front of single-client OAuth proxies.

A single-client OAuth proxy forwards every dynamically registered client to the
third-party IdP under one fixed client_id, so the IdP may skip its consent screen
and an attacker's client can receive a victim's authorization code (the MCP
"confused deputy" problem). consentgate relays all traffic, but asks the person
before an unapproved client's authorization request reaches the proxy, and binds
the upstream flow to the browser that approved it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
