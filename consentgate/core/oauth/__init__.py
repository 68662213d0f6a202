"""The OAuth request rules: what an authorization request is, which of the gate's rules a
path falls under, whether a request is a person's navigation, the consent decision, the
upstream's issuer and guarded endpoints, and the RFC 6749 error codes.
"""
