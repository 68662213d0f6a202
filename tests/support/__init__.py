"""Helpers shared by the tests: real peers and drivers on loopback (a raw HTTP client, a
browser, gate processes, a throwaway PostgreSQL cluster, nginx in front, a document host).
Not tests themselves; pytest collects nothing here."""
