"""Protocols: what is trained on what and what is measured."""
