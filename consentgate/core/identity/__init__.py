"""The gate's own OpenID Connect sign-in, as pure rules: the provider's metadata, the
ID token's checks, the sign-in transaction (state, nonce, PKCE) and the person it
yields. The I/O (discovery, keys, the token exchange) is ``web/identity/``."""
