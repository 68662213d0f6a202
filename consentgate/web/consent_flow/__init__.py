"""The consent flow, from the authorization request to the IdP's callback: the request
checked and the page shown, the person's answer, the approved request relayed and bound
to the browser, the callback only from that browser, the errors sent back to the client,
and the self-service approvals page.
"""
