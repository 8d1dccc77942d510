"""Ablations in miniature: every gate rule from one warm start, several seeds, one report (see __main__)."""
