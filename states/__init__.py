"""Declarative definitions: Nova's state enumerations and the startup policy table.

Nothing in this package performs I/O; `recovery` compiles it into a machine.
"""
