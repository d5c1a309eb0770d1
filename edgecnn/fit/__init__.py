"""`edgecnn fit`: the model that fits a latency budget on this machine or a device
(--remote), with the best accuracy on the user's data (issue 22).

Reading order: space (the candidates), latency (a per-layer latency table measured on the
device, checked against whole models; int8 from fp32's prediction and measured ratios),
executor (training a candidate in its own process), search (successive halving), netadapt
(pruning the best near-miss toward the budget by measured latency), choose (the one
decision), report (fit.json, report.md, the plot), run (the phases, resumable).
"""
