"""Timing: the one harness every latency figure of the project comes from.

    loop     the timing plan, rotated inputs, warm-up and a timed block of calls
    harness  a group of compared cases timed in interleaved, rotated rounds, as records
    stats    latency samples summarized (mean, percentiles), units in the field names
    memory   the resident memory of the measuring process
    footprint  a model's memory in a fresh process running edgecnn.runtime alone (an app's)

Torch-free and below both export (which times its variants with it) and bench (which adds
targets, machine conditions and the roofline): it knows runners only through the runtime's
Runner interface.
"""
