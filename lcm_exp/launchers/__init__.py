"""Where a job's training runs: in this process, or in workers started by a child `accelerate launch`."""
