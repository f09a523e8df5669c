"""Pure XML work: hardened parsing, compiled schemas, MsgHead/Dialogmelding/AppRec build and parse, signing.

No network, no files written; schemas are read once from the shipped resources.
"""
