"""The gate's own OpenID Connect sign-in ([identity]): the provider's I/O (metadata,
keys, the token exchange), the start of a sign-in from the authorization endpoint, its
callback, the session and sign-out. The rules are ``core/identity/``."""
