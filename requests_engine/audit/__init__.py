"""The audit log's checks beyond the hash chains (events.chain_breaks): sealed checkpoints kept outside the
database, consistency of the records with their histories, and telling people when a check fails."""
