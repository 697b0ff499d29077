"""The flow board: the labeling flow as columns, work in progress, timing and the bottleneck."""
