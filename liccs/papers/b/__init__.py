"""Paper B, *A training-free defense framework for robust learned image compression*: distortion and rate attacks
on the codec, the random K-way defense (encode the image and transformed copies, keep the lowest R + λD, signal the
choice), and adaptive attacks against it.

:mod:`.stage` is the run stage (``[paper_b]``); :mod:`.transforms`, :mod:`.defense` and :mod:`.defense_random` are
the defense, :mod:`.adaptive` and :mod:`.adaptive_select` the adaptive attacks (EoT over the defense's draw, the
selection-aware soft minimum), :mod:`.attacks` and :mod:`.tasks` craft on the executor, :mod:`.measure`,
:mod:`.eval` and :mod:`.strength` measure, :mod:`.claims`, :mod:`.findings` and :mod:`.tables` decide and report,
:mod:`.deployed` replays on the deployed codec.
"""
