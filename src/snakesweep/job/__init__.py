"""The Snakemake job around a trial's segment: launch, continuation, locks and provenance."""
