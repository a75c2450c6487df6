"""API tokens, roles and the principal behind a request."""
