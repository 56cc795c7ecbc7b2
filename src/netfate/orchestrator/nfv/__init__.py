"""The lifecycle coordinator: desired state in the database, agents converge to it."""
