"""The consent store's parts, one subject each, composed by
:class:`~consentgate.store.facade.ConsentStore`: consents, client registrations,
consent-page marks and flow bindings, the audit table, key publication, and the
verifier they share. Each works over the backend protocol
(:mod:`consentgate.store.protocol`) through one :class:`~.context.StoreContext`."""
