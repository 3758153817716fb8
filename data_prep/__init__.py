"""Data preparation: one builder per data set, the RIR synthesis pipeline, and the mini data."""
