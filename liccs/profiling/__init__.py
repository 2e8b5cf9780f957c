"""Measurements over runners: timing (:mod:`.timer`), stage profiles and sweeps (:mod:`.profile`),
FLOPs and the machine's ceiling (:mod:`.flops`), transfer metrics (:mod:`.transfer`).

Kept free of imports: import the submodule you need.
"""
