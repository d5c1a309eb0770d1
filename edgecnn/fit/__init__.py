"""`edgecnn fit`: the model that fits a latency budget on this machine, with the best
accuracy on the user's data (issue 22).

Reading order: space (the candidates), latency (a per-layer latency table measured here,
checked against whole models), executor (training a candidate in its own process), search
(successive halving), netadapt (pruning the best near-miss toward the budget by measured
latency), choose (the one decision), report (fit.json, report.md, the plot), run (the phases,
resumable).
"""
