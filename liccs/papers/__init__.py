"""Paper reproductions, each a registered stage of ``liccs run`` (:class:`liccs.stage.Stage`).

A config turns a paper's stage on by its section: ``[sampling]`` runs paper A (:mod:`.paper_a`, *Transferable
learned-image-compression-resistant adversarial perturbations*), ``[defense]`` runs paper B (:mod:`.paper_b`, *A
training-free defense framework for robust learned image compression*); each driver registers a
:class:`~liccs.papers.driver.PaperStage`. They import the stage contract (:mod:`liccs.stage`) and the
layers below it, never the run job or the generic stages.
"""

from liccs.papers import paper_a, paper_b

__all__ = ["paper_a", "paper_b"]
