"""Constructs: one module each. Stacks compose them; they never read context."""
