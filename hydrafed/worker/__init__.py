"""Party worker: round loop, local training, models, data and aggregation. Never imports kopf."""
