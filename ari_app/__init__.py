"""callguard ARI application: Python decides, Asterisk does media (SPEC §0)."""
