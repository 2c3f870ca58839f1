"""The demo data set and the guided walk-through (`care-gateway demo`)."""
