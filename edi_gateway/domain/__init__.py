"""Pure domain logic: identifiers, the request model, kodeverk, states, routing and retry policy.

Nothing in this package performs I/O; its tests need neither broker nor database.
"""
