"""Who a client is: the rules for clients that name themselves by a URL.

The MCP authorization specification (2025-11-25, "Client ID Metadata Documents";
the 2026-07-28 release deprecates dynamic client registration) makes a URL the
preferred client_id: an ``https`` URL with a path, at which the client publishes a
JSON document naming itself and its redirect URIs. The authorization server — here
the gate, before it asks anyone for consent — fetches that document and checks it.

This package holds the pure part of that: which client_ids are URLs
(:mod:`.client_id_urls`), what a fetched document must say (:mod:`.metadata_documents`),
which addresses the gate may connect to when it fetches one (:mod:`.fetch_addresses`),
which client hosts an operator blocks or allows (:mod:`.domain_policy`), and how long a
fetched document is kept (:mod:`.cache_policy`). Nothing here touches the network, a
file or the event loop (an import-linter contract keeps it so); the fetcher, the
consent page and the store use these rules. See docs/references.md.
"""
