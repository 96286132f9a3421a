"""Bringing in a community's existing membership list: import it (with a dry run and a report of every
line it refuses), invite each person by email, or by letter where there is no email, and never invite the
same person twice."""
