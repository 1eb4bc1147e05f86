"""The one-shot supernet (issue 39): one weight-sharing network trained once (sandwich rule, in-place
distillation), whose subnets are evaluated with inherited weights in seconds, a quality predictor
fitted on those evaluations, and the pick's weights read off it for export: no training per
candidate, for every target and budget.

  config.py     SupernetConfig (what `rcai supernet train` trains)
  net.py        build the network, the supernet file (supernet.pt), a subnet with inherited weights
  train.py      the training loop (one job: `SupernetJob`), resumable, data-parallel under torchrun
  inherited.py  inherited quality of subnets, the predictor's data (resumable) and its fit
  predictor.py  the quality predictor: per-slot op effects, fitted on inherited evaluations
"""
