"""Stateful stand-ins for the outside world: libvirt (``libvirt.py``) and the command runner
(``runner.py``).  They keep real state and answer with real error codes, so tests assert what
happened to a domain rather than which mock method was called.
"""
