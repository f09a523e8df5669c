"""Use cases wiring domain, xml, registers, store and transport together (outbound, demo, ...)."""
