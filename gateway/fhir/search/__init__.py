"""Search request parsing and page links."""
