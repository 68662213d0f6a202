"""The demo stack (a fake IdP, a single-client proxy and an MCP-like client, all on
loopback) behind ``consentgate demo``. Outside the product path: only the CLI
imports it, lazily, and an import-linter contract keeps it that way."""

from consentgate.demo.stack import DemoStack, demo_main, run_demo

__all__ = ["DemoStack", "demo_main", "run_demo"]
