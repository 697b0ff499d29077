"""Label Studio's ML backend protocol: setup, predictions for many tasks, "Start training"."""
