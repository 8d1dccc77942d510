"""Blind pairwise listening tests over `wavalign predict` folders: build a session, serve it to raters, let an HTTP
judge vote by the same protocol, and report win rates (docs/listening.md)."""
