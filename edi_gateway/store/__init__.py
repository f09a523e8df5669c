"""The store: SQLAlchemy Core tables, queries and Alembic migrations. The only package that knows SQL."""
