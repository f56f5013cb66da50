"""Run records, metrics files and trackers: everything a run writes about itself."""
