"""callguard: call recording and nuisance-call rejection for Asterisk 22."""
