"""Cost models: what an architecture costs on a target (FLOPs, params, table latency, predictor)."""
