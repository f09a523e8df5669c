"""Development and test aids shipped with the package, never used on the production path."""
