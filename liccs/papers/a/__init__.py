"""Paper A, *Transferable learned-image-compression-resistant adversarial perturbations*: adversarial images
crafted through a codec at one quality and a classifier, their transfer across qualities, architectures and deployed
engines, and the choice of which qualities to ensemble by a saliency (coverage) score.

:mod:`.stage` is the run stage (``[paper_a]``); :mod:`.attacks` crafts, :mod:`.cells` and :mod:`.outcomes` evaluate
per image, :mod:`.saliency` scores quality sets, :mod:`.sampling` tests the score as a method, :mod:`.claims` and
:mod:`.deployed` decide the declared claims, :mod:`.rates` and :mod:`.tables` shape the report's tables.
"""
