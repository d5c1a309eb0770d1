"""The main job end to end: train -> prune + fine-tune -> export fp32/int8 -> check -> bench.

    edgecnn pipeline export/pipeline.yaml

Each stage writes into one run directory and is skipped when its outputs are there and its
inputs did not change, so an interrupted pipeline resumes where it stopped (training resumes
mid-run from its last completed epoch).
"""
